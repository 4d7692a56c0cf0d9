"""podman 4 + conmon drive pyrunc (`podman --runtime <pyrunc>`).

conmon runs `create` (and `exec --detach`); podman itself runs `start`, `kill`, `pause`,
`resume`, `delete --force` (and `state` after a failed kill) with an almost empty
environment, and never passes `--root`: pyrunc's default root must be the same for all.
"""
import json
import os
import time

import pytest

from clientlib import IMAGE, cgroup_dir, cgroup_v2_only, ok, pyrunc_version, wait_for

pytestmark = pytest.mark.clients

LOOP_IGNORING_TERM = "trap '' TERM; echo started; while :; do sleep 0.1; done"


def _inspect(podman, name, fmt):
    return ok(podman("inspect", "--format", fmt, name)).strip()


def test_run_rm_output_and_exit_codes(podman):
    res = podman("run", "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 4")
    assert res.returncode == 4, res
    assert res.stdout == "out\n" and res.stderr == "err\n", res
    assert podman("run", "--rm", IMAGE, "true").returncode == 0
    # (a container killed by a signal: 128 + N, see the stop test: 137)


def test_detached_logs_exec_top_pause_stop_rm(podman):
    name = "pod-detached"
    cid = ok(podman("run", "-d", "--name", name, IMAGE, "sh", "-c", LOOP_IGNORING_TERM)).strip()
    try:
        wait_for(lambda: "started" in podman("logs", name).stdout, what="container log")
        assert _inspect(podman, name, "{{.State.Status}}") == "running"
        pid = int(_inspect(podman, name, "{{.State.Pid}}"))
        assert pid > 0 and os.path.exists(f"/proc/{pid}")
        res = podman("exec", name, "sh", "-c", "echo in-exec; echo exec-err >&2; exit 6")
        assert (res.returncode, res.stdout, res.stderr) == (6, "in-exec\n", "exec-err\n"), res
        top = ok(podman("top", name, "pid", "args"))
        assert "while :" in top, top
        ok(podman("pause", name))
        assert _inspect(podman, name, "{{.State.Status}}") == "paused"
        with open(cgroup_dir(pid, "freezer") / "freezer.state"
                  if not cgroup_v2_only() else cgroup_dir(pid, "") / "cgroup.freeze") as f:
            assert f.read().strip() in ("FROZEN", "1")
        ok(podman("unpause", name))
        assert _inspect(podman, name, "{{.State.Status}}") == "running"
        # pid 1 ignores SIGTERM: stop waits 2 s, then SIGKILL
        t0 = time.monotonic()
        ok(podman("stop", "-t", "2", name))
        took = time.monotonic() - t0
        assert 2 <= took < 15, took
        assert _inspect(podman, name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
        assert not os.path.exists(f"/proc/{pid}")
    finally:
        ok(podman("rm", "-f", "-t", "0", name))
    assert not os.path.exists(f"/run/pyrunc/{cid}")


def test_run_and_exec_with_terminal(podman):
    status, out = podman.pty("run", "--rm", "-t", IMAGE, "sh", "-c",
                             "tty; stty size; exit 7", rows=31, cols=97)
    assert status == 7, out
    assert "/dev/pts/0" in out and "31 97" in out, out
    name = "pod-tty"
    ok(podman("run", "-d", "--name", name, IMAGE, "sleep", "1000"))
    try:
        status, out = podman.pty("exec", "-t", name, "sh", "-c", "tty; stty size; exit 9",
                                 rows=21, cols=55)
        assert status == 9, out
        assert "/dev/pts/" in out and "21 55" in out, out
    finally:
        ok(podman("rm", "-f", "-t", "0", name))


def test_resources_reach_the_cgroup(podman):
    name = "pod-resources"
    ok(podman("run", "-d", "--name", name, "--memory", "64m", "--pids-limit", "77",
              "--cpus", "0.5", IMAGE, "sleep", "1000"))
    try:
        pid = int(_inspect(podman, name, "{{.State.Pid}}"))
        cid = _inspect(podman, name, "{{.Id}}")
        if cgroup_v2_only():
            cg = cgroup_dir(pid, "")
            assert (cg / "memory.max").read_text().strip() == str(64 << 20)
            assert (cg / "pids.max").read_text().strip() == "77"
            assert (cg / "cpu.max").read_text().split()[:2] == ["50000", "100000"]
        else:
            mem = cgroup_dir(pid, "memory")
            assert mem.name == f"libpod-{cid}", mem
            assert (mem / "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
            assert (cgroup_dir(pid, "pids") / "pids.max").read_text().strip() == "77"
            cpu = cgroup_dir(pid, "cpu")
            assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
            assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
    finally:
        ok(podman("rm", "-f", "-t", "0", name))


def test_user_readonly_caps_seccomp(podman, tmp_path):
    out = ok(podman("run", "--rm", "--user", "65534:65534", IMAGE, "id"))
    assert out.strip().startswith("uid=65534(nobody) gid=65534(nogroup)"), out
    # read-only rootfs (without podman's tmpcopyup tmpfs mounts, see the next test)
    res = podman("run", "--rm", "--read-only", "--read-only-tmpfs=false", IMAGE,
                 "sh", "-c", "touch /x")
    assert res.returncode == 1 and "Read-only file system" in res.stderr, res
    out = ok(podman("run", "--rm", "--cap-drop", "all", "--cap-add", "CAP_CHOWN", IMAGE,
                    "grep", "^Cap", "/proc/self/status"))
    caps = dict(ln.split(":\t") for ln in out.splitlines())
    assert caps["CapEff"] == caps["CapBnd"] == caps["CapPrm"] == "0000000000000001", caps
    res = podman("run", "--rm", "--cap-drop", "CAP_CHOWN", IMAGE, "chown", "1", "/tmp")
    assert res.returncode == 1 and "Operation not permitted" in res.stderr, res
    profile = tmp_path / "seccomp.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 1}]}))
    res = podman("run", "--rm", "--security-opt", f"seccomp={profile}", IMAGE,
                 "mkdir", "/tmp/d")
    assert res.returncode == 1 and "Operation not permitted" in res.stderr, res


def test_read_only_with_default_tmpfs(podman):
    # podman puts `tmpcopyup` tmpfs mounts on /tmp, /var/tmp, /run of --read-only containers
    res = podman("run", "--rm", "--read-only", IMAGE, "sh", "-c",
                 "touch /tmp/ok && ! touch /x 2>/dev/null")
    assert res.returncode == 0, res.stderr


def test_errors_reach_the_user(podman):
    # a missing entrypoint fails `create` (conmon relays pyrunc's stderr); podman maps
    # "no such file or directory" to 127
    res = podman("run", "--rm", IMAGE, "/nope")
    assert res.returncode == 127, res
    assert ('pyrunc create failed: unable to start container process: error during container '
            'init: exec: "/nope": stat /nope: no such file or directory') in res.stderr, res
    # not executable: "permission denied" => 126, the same text as runc's
    res = podman("run", "--rm", IMAGE, "/etc/passwd")
    assert res.returncode == 126, res
    assert ('pyrunc create failed: unable to start container process: error during container '
            'init: exec: "/etc/passwd": permission denied') in res.stderr, res


def test_podman_info_reports_pyrunc(podman):
    info = json.loads(ok(podman("info", "--format", "json")))
    rt = info["host"]["ociRuntime"]
    ver = pyrunc_version(podman.pyrunc)
    assert rt["path"] == podman.pyrunc
    assert rt["version"].splitlines()[0] == f"pyrunc version {ver['version']}", rt
    assert info["host"]["cgroupManager"] == "cgroupfs"


def test_runtime_command_lines(podman, tmp_path):
    """What conmon and podman send (logged by a wrapper that execs pyrunc)."""
    from clientlib import write_logging_wrapper
    log = tmp_path / "argv.log"
    wrapper = write_logging_wrapper(tmp_path / "pyrunc", podman.pyrunc, log)
    name = "pod-argv"
    cid = ok(podman("run", "-d", "--name", name, IMAGE, "sleep", "1000", runtime=wrapper)).strip()
    try:
        res = podman("exec", name, "true", runtime=wrapper)
        assert res.returncode == 0, res
        ok(podman("stop", "-t", "0", name, runtime=wrapper))
    finally:
        podman("rm", "-f", "-t", "0", name, runtime=wrapper)
    calls = [c for c in log.read_text().splitlines() if cid in c.split()]
    verbs = [c.split()[0] for c in calls]
    assert verbs[:2] == ["create", "start"], calls
    assert calls[0].startswith("create --bundle ") and " --pid-file " in calls[0]
    assert any(c.startswith("exec --pid-file ") and " --detach " in c for c in calls), calls
    assert any(c.startswith("kill ") for c in calls), calls
    assert calls[-1] == f"delete --force {cid}", calls
