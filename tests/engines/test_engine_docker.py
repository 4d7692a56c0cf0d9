"""dockerd 20.10 with `--exec-opt native.cgroupdriver=systemd` and pyrunc as its default
runtime (through the session's containerd and the runc v2 shim with SystemdCgroup):
cgroupsPath `system.slice:docker:<id>`, the scope docker-<id>.scope. Where the kernel has
AppArmor, dockerd loads docker-default and pyrunc applies it."""
import os
import time

import pytest

import sdlib
from clientlib import DOCKER_IMAGE, ok, wait_for
from enginelib import MB, active_scope, apparmor_up, cat, profile_of, wait_gone

pytestmark = pytest.mark.engines

LOOP_IGNORING_TERM = "trap '' TERM; echo started; while :; do sleep 0.1; done"


def _inspect(docker, name, fmt):
    return ok(docker("inspect", "--format", fmt, name)).strip()


def test_docker_systemd_driver_reported(dockerd):
    info = ok(dockerd("info", "--format", "{{.CgroupDriver}} {{.CgroupVersion}} {{.DefaultRuntime}}"))
    assert info.split() == ["systemd", "2", "pyrunc"], info


def test_docker_systemd_run(dockerd):
    res = dockerd("run", "--rm", "--net", "none", DOCKER_IMAGE, "sh", "-c",
                  "echo out; cat /proc/self/attr/current; exit 3", timeout=180)
    assert res.returncode == 3, res
    assert res.stdout.splitlines()[0] == "out", res
    if apparmor_up():
        assert profile_of(res.stdout) == "docker-default (enforce)", res.stdout


def test_docker_systemd_detached_exec_stop_with_memory(dockerd):
    name = "eng-dk"
    cid = ok(dockerd("run", "-d", "--name", name, "--net", "none", "--memory", "64m",
                     DOCKER_IMAGE, "sh", "-c", LOOP_IGNORING_TERM, timeout=180)).strip()
    unit = f"docker-{cid}.scope"
    try:
        wait_for(lambda: "started" in dockerd("logs", name).stdout, timeout=60,
                 what="container log")
        pid = int(_inspect(dockerd, name, "{{.State.Pid}}"))
        cgroup = active_scope(unit, pid, "system.slice")
        assert sdlib.show(unit, "MemoryMax") == {"MemoryMax": str(64 * MB)}
        assert cat(cgroup, "memory.max") == str(64 * MB)
        res = dockerd("exec", name, "sh", "-c", "echo in-exec; exit 5", timeout=120)
        assert (res.returncode, res.stdout) == (5, "in-exec\n"), res
        t0 = time.monotonic()
        ok(dockerd("stop", "-t", "2", name, timeout=180))
        assert time.monotonic() - t0 >= 2
        assert _inspect(dockerd, name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
        assert not os.path.exists(f"/proc/{pid}")
        wait_gone(unit, cgroup)
    finally:
        dockerd("rm", "-f", name, timeout=180)
    assert not (dockerd.exec_root / "runtime-runc" / "moby" / cid).exists()
