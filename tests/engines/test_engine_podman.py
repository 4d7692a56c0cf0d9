"""podman 4 with `--cgroup-manager systemd` (its default on systemd hosts) and
`--runtime <pyrunc>`: podman passes `--systemd-cgroup` and cgroupsPath
`machine.slice:libpod:<id>`; pyrunc makes the scope libpod-<id>.scope. Where the kernel
has AppArmor, podman applies its containers-default profile."""
import os
import time

import pytest

import sdlib
from clientlib import IMAGE, ok, wait_for
from enginelib import MB, active_scope, apparmor_up, cat, profile_of, wait_gone

pytestmark = pytest.mark.engines

LOOP_IGNORING_TERM = "trap '' TERM; echo started; while :; do sleep 0.1; done"


def _inspect(podman, name, fmt):
    return ok(podman("inspect", "--format", fmt, name)).strip()


def test_podman_systemd_run_rm(podman):
    res = podman("run", "--rm", IMAGE, "sh", "-c",
                 "echo out; echo err >&2; cat /proc/self/attr/current; exit 4", timeout=180)
    assert res.returncode == 4, res
    assert res.stdout.splitlines()[0] == "out" and res.stderr == "err\n", res
    if apparmor_up():
        assert profile_of(res.stdout).startswith("containers-default-"), res.stdout
        assert profile_of(res.stdout).endswith(" (enforce)"), res.stdout


def test_podman_systemd_detached_exec_pause_stop_rm_with_limits(podman):
    name = "eng-pod"
    cid = ok(podman("run", "-d", "--name", name, "--memory", "64m", "--cpus", "0.5",
                    "--pids-limit", "77", IMAGE, "sh", "-c", LOOP_IGNORING_TERM,
                    timeout=180)).strip()
    unit = f"libpod-{cid}.scope"
    try:
        wait_for(lambda: "started" in podman("logs", name).stdout, timeout=60,
                 what="container log")
        pid = int(_inspect(podman, name, "{{.State.Pid}}"))
        cgroup = active_scope(unit, pid, "machine.slice")
        # the limits reach the unit (what `systemctl daemon-reload` re-applies) and the files
        shown = sdlib.show(unit, "MemoryMax", "CPUQuotaPerSecUSec", "TasksMax")
        assert shown == {"MemoryMax": str(64 * MB), "CPUQuotaPerSecUSec": "500ms",
                         "TasksMax": "77"}, shown
        files = {"memory.max": str(64 * MB), "cpu.max": "50000 100000", "pids.max": "77"}
        assert {f: cat(cgroup, f) for f in files} == files
        # systemd re-applies the unit's properties: they equal what pyrunc wrote
        assert sdlib.systemctl("daemon-reload", timeout=120).returncode == 0
        assert {f: cat(cgroup, f) for f in files} == files

        res = podman("exec", name, "sh", "-c", "echo in-exec; exit 6", timeout=120)
        assert (res.returncode, res.stdout) == (6, "in-exec\n"), res
        ok(podman("pause", name, timeout=120))
        assert _inspect(podman, name, "{{.State.Status}}") == "paused"
        assert cat(cgroup, "cgroup.freeze") == "1"
        ok(podman("unpause", name, timeout=120))
        assert _inspect(podman, name, "{{.State.Status}}") == "running"
        assert cat(cgroup, "cgroup.freeze") == "0"
        t0 = time.monotonic()
        ok(podman("stop", "-t", "2", name, timeout=180))  # SIGTERM ignored, SIGKILL after 2 s
        assert time.monotonic() - t0 >= 2
        assert _inspect(podman, name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
        assert not os.path.exists(f"/proc/{pid}")
        ok(podman("rm", name, timeout=120))
        wait_gone(unit, cgroup)
    finally:
        podman("rm", "-f", "-t", "0", name, timeout=180)
    assert not os.path.exists(f"/run/pyrunc/{cid}")
