"""cgroup behaviour as runc 1.5's on a pure cgroup v2 host (the v1 side is
tests/integration/test_cgroup_parity.py): an existing cgroup that is frozen
(cgroup.freeze 1), under a frozen parent, or in use is refused before
anything is made; the device program every container gets; pids.limit 0;
cpu.burst without a quota."""
import os
import subprocess
import time

import pytest

from pyrunc.cgroups import detect

ROOT = "/sys/fs/cgroup"

pytestmark = [
    pytest.mark.cgroup2,
    pytest.mark.skipif(detect() != "v2",
                       reason="needs a pure cgroup v2 /sys/fs/cgroup (run in cgroup2-vm)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]


def cat(*parts: str) -> str:
    with open(os.path.join(*parts)) as f:
        return f.read().strip()


def put(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


@pytest.fixture
def premade():
    """cgroups made before the runtime runs (as another tool would); thawed,
    emptied and removed at the end."""
    made: list[str] = []

    def make(inner: str) -> str:
        d = os.path.join(ROOT, inner.strip("/"))
        os.makedirs(d)
        made.append(d)
        return d
    yield make
    for d in sorted(made, key=len, reverse=True):
        put(os.path.join(d, "cgroup.freeze"), "0")
        if os.path.exists(os.path.join(d, "cgroup.kill")):
            put(os.path.join(d, "cgroup.kill"), "1")
        deadline = time.monotonic() + 5
        while os.path.isdir(d):
            try:
                os.rmdir(d)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def with_path(v2rt, bundle, inner: str) -> None:
    c = v2rt.config(bundle)
    c["linux"]["cgroupsPath"] = inner
    v2rt.write_config(bundle, c)


def refused_under_frozen(v2rt, premade, frozen: str, inner: str, *needles: str) -> str:
    """create with cgroupsPath `inner` while `frozen` (made here) is frozen:
    one line with exit 1, nothing made; returns the frozen directory."""
    d = premade(frozen)
    put(os.path.join(d, "cgroup.freeze"), "1")
    b = v2rt.bundle()
    with_path(v2rt, b, inner)
    cid = v2rt.new_id()
    res = v2rt("create", "--bundle", b, cid, timeout=60)
    lines = res.stderr.splitlines()
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    for n in needles + (d,):
        assert n in lines[0], (n, lines[0])
    assert not os.path.exists(os.path.join(v2rt.root, cid))
    assert cat(d, "cgroup.procs") == "" and cat(d, "cgroup.freeze") == "1"
    return d


def test_create_in_a_frozen_cgroup_is_refused(v2rt, premade):
    tag = v2rt.new_id()
    refused_under_frozen(v2rt, premade, f"/{tag}", f"/{tag}",
                         "container's cgroup unexpectedly frozen")


def test_create_under_a_frozen_parent_is_refused(v2rt, premade):
    tag = v2rt.new_id()
    d = refused_under_frozen(v2rt, premade, f"/{tag}", f"/{tag}/ctr", "is under a frozen cgroup")
    assert not os.path.exists(os.path.join(d, "ctr"))


def test_create_in_a_cgroup_in_use_is_refused(v2rt, premade):
    cid = v2rt.new_id()
    d = premade(f"/{cid}")
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        put(os.path.join(d, "cgroup.procs"), str(sleeper.pid))
        b = v2rt.bundle()
        with_path(v2rt, b, f"/{cid}")
        line = v2rt.fails(b, "container's cgroup is not empty: 1 process(es) found")
        assert d in line
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_device_rules_are_runcs(v2rt):
    """No access to a linux.devices node the rules do not allow; mknod of any
    device (runc's "c *:* m", "b *:* m"); a replaced default loses its rule."""
    c_caps = ["CAP_MKNOD"]
    b = v2rt.bundle(args=("sh", "-c",
                          "(true </dev/fuse) 2>/dev/null && echo fuse-open;"
                          "mknod /dev/b70 b 7 0 && echo mknod-b;"
                          "(echo x >/dev/null) 2>/dev/null && echo null-open;"
                          "echo x >/dev/zero && echo zero-open"))
    c = v2rt.config(b)
    c["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666},
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]
    for k in ("bounding", "effective", "permitted"):
        c["process"]["capabilities"][k] += c_caps
    v2rt.write_config(b, c)
    cid = v2rt.new_id()
    res = v2rt.ok("run", "--bundle", b, cid)
    assert res.stdout.split() == ["mknod-b", "zero-open"]


def test_pids_limit_zero_is_written_as_one(v2rt):
    cid = v2rt.run_d(v2rt.bundle({"pids": {"limit": 0}}))
    assert cat(v2rt.cgroup(cid), "pids.max") == "1"
    v2rt.ok("update", "--pids-limit", "-1", cid)
    assert cat(v2rt.cgroup(cid), "pids.max") == "max"
    v2rt.ok("update", "--pids-limit", "0", cid)
    assert cat(v2rt.cgroup(cid), "pids.max") == "1"


def test_cpu_burst_without_a_quota(v2rt):
    probe = os.path.join(ROOT, f"pyrunc-probe-{os.getpid()}")
    os.makedirs(probe, exist_ok=True)
    try:
        has = os.path.exists(os.path.join(probe, "cpu.max.burst"))
    finally:
        os.rmdir(probe)
    if not has:
        pytest.skip("no cpu.max.burst in this guest")
    cid = v2rt.run_d(v2rt.bundle({"cpu": {"burst": 5000}}))
    d = v2rt.cgroup(cid)
    assert (cat(d, "cpu.max.burst"), cat(d, "cpu.max").split()[0]) == ("5000", "max")
