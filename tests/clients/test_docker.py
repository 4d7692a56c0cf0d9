"""dockerd 20.10 drives pyrunc (`--add-runtime pyrunc=<pyrunc>`, also the default runtime)
through the session's containerd and the runc v2 shim (BinaryName = pyrunc,
Root = <exec-root>/runtime-runc)."""
import json
import os
import time

import pytest

from clientlib import (DOCKER_IMAGE, cgroup_dir, cgroup_v2_only, ok, pyrunc_version, run,
                       wait_for)

pytestmark = pytest.mark.clients

LOOP_IGNORING_TERM = "trap '' TERM; echo started; while :; do sleep 0.1; done"


def _inspect(docker, name, fmt):
    return ok(docker("inspect", "--format", fmt, name)).strip()


def test_docker_info_and_version_show_pyrunc(dockerd):
    ver = pyrunc_version(dockerd.pyrunc)
    info = ok(dockerd("info", "--format", "{{json .Runtimes}} {{.DefaultRuntime}} {{.RuncCommit.ID}}"))
    runtimes, default, commit = info.strip().rsplit(" ", 2)
    assert '"pyrunc":{"path":"' + dockerd.pyrunc + '"' in runtimes, runtimes
    assert default == "pyrunc"
    # dockerd runs `<default runtime> --version` and keeps the `commit:` line
    assert commit == ver["commit"], (commit, ver)
    comps = ok(dockerd("version", "--format", "{{range .Server.Components}}{{.Name}}={{.Version}} {{end}}"))
    assert f"pyrunc={ver['version']}" in comps.split(), comps


def test_import_and_run_rm_exit_code(dockerd):
    images = ok(dockerd("images", "--format", "{{.Repository}}:{{.Tag}}"))
    assert DOCKER_IMAGE in images.split()  # `docker import` of the rootfs tar (fixture)
    res = dockerd("run", "--runtime", "pyrunc", "--rm", "--net", "none", DOCKER_IMAGE,
                  "sh", "-c", "echo out; echo err >&2; exit 3")
    assert res.returncode == 3, res
    assert res.stdout == "out\n" and res.stderr == "err\n", res
    assert dockerd("run", "--runtime", "pyrunc", "--rm", "--net", "none", DOCKER_IMAGE,
                   "true").returncode == 0


def test_detached_exec_logs_top_pause_stop(dockerd):
    name = "dk-detached"
    cid = ok(dockerd("run", "--runtime", "pyrunc", "-d", "--name", name, "--net", "none",
                     DOCKER_IMAGE, "sh", "-c", LOOP_IGNORING_TERM)).strip()
    try:
        assert _inspect(dockerd, name, "{{.HostConfig.Runtime}}") == "pyrunc"
        wait_for(lambda: "started" in dockerd("logs", name).stdout, what="container log")
        pid = int(_inspect(dockerd, name, "{{.State.Pid}}"))
        res = dockerd("exec", name, "sh", "-c", "echo in-exec; echo exec-err >&2; exit 5")
        assert (res.returncode, res.stdout, res.stderr) == (5, "in-exec\n", "exec-err\n"), res
        top = ok(dockerd("top", name))  # shim: `pyrunc ps --format json`
        assert str(pid) in top.split() and "echo started" in top, top
        ok(dockerd("pause", name))
        assert _inspect(dockerd, name, "{{.State.Status}}") == "paused"
        ok(dockerd("unpause", name))
        assert _inspect(dockerd, name, "{{.State.Status}}") == "running"
        t0 = time.monotonic()
        ok(dockerd("stop", "-t", "2", name))  # SIGTERM ignored by pid 1, SIGKILL after 2 s
        took = time.monotonic() - t0
        assert 2 <= took < 15, took
        assert _inspect(dockerd, name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
        assert not os.path.exists(f"/proc/{pid}")
    finally:
        ok(dockerd("rm", "-f", name))
    assert not (dockerd.exec_root / "runtime-runc" / "moby" / cid).exists()


def test_terminal(dockerd):
    status, out = dockerd.pty("run", "--runtime", "pyrunc", "--rm", "-it", "--net", "none",
                              DOCKER_IMAGE, "sh", "-c", "tty; sleep 0.5; stty size; exit 8",
                              rows=25, cols=70)
    assert status == 8, out
    assert "/dev/pts/0" in out and "25 70" in out, out
    name = "dk-tty"
    ok(dockerd("run", "--runtime", "pyrunc", "-d", "--name", name, "--net", "none",
               DOCKER_IMAGE, "sleep", "1000"))
    try:
        # docker 20.10 sizes an exec tty with a resize call after start (with runc too)
        status, out = dockerd.pty("exec", "-it", name, "sh", "-c",
                                  "tty; sleep 0.5; stty size; exit 4", rows=22, cols=60)
        assert status == 4, out
        assert "/dev/pts/" in out and "22 60" in out, out
    finally:
        ok(dockerd("rm", "-f", name))


def test_memory_limit_reaches_the_cgroup(dockerd):
    name = "dk-mem"
    cid = ok(dockerd("run", "--runtime", "pyrunc", "-d", "--name", name, "--net", "none",
                     "--memory", "64m", DOCKER_IMAGE, "sleep", "1000")).strip()
    try:
        pid = int(_inspect(dockerd, name, "{{.State.Pid}}"))
        if cgroup_v2_only():
            assert (cgroup_dir(pid, "") / "memory.max").read_text().strip() == str(64 << 20)
        else:
            mem = cgroup_dir(pid, "memory")
            assert mem.name == cid, mem
            assert (mem / "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
        stats = ok(dockerd("stats", "--no-stream", "--format", "{{.MemUsage}}", name))
        assert "64MiB" in stats, stats
    finally:
        ok(dockerd("rm", "-f", name))


def test_missing_binary_error(dockerd):
    res = dockerd("run", "--runtime", "pyrunc", "--rm", "--net", "none", DOCKER_IMAGE, "/nope")
    assert res.returncode == 127, res
    assert ('OCI runtime create failed: pyrunc create failed: unable to start container '
            'process: error during container init: exec: "/nope": stat /nope: no such file or '
            'directory') in res.stderr, res


def test_shim_runs_pyrunc_with_dockers_root(dockerd):
    """dockerd hands the runc v2 shim BinaryName=<pyrunc path> and
    Root=<exec-root>/runtime-runc; pyrunc's state for the container is there."""
    name = "dk-shim"
    cid = ok(dockerd("run", "--runtime", "pyrunc", "-d", "--name", name, "--net", "none",
                     DOCKER_IMAGE, "sleep", "1000")).strip()
    try:
        bundle = dockerd.containerd.dir / "state" / "io.containerd.runtime.v2.task" / "moby" / cid
        assert (bundle / "init.pid").read_text().isdigit()  # no newline
        opts = json.loads((bundle / "options.json").read_text())  # written by the shim
        assert opts.get("binary_name") == dockerd.pyrunc, opts
        root = dockerd.exec_root / "runtime-runc" / "moby"
        assert opts.get("root") == str(dockerd.exec_root / "runtime-runc"), opts
        state = json.loads(ok(run([dockerd.pyrunc, "--root", root, "state", cid])))
        assert state["status"] == "running" and state["bundle"] == str(bundle), state
    finally:
        ok(dockerd("rm", "-f", name))
