"""linux.resources, update, pause/resume, ps, events and kill --all with real
containers on a pure cgroup v2 host. Run inside the guest (one guest for the
whole session):

    cd /work/main && CGROUP2_VM_BACKEND=uml /work/shared/tools/cgroup2-vm \\
        /opt/pyrunc-venv/bin/python -m pytest tests/cgroup2 -q
    # the qemu backend (default) also has cpuset, hugetlb, rdma and io.weight

Controllers or files the guest kernel lacks skip the tests that need them
(UML: cpu io memory pids only). Skipped on anything but a cgroup v2 host."""
import json
import os
import subprocess
import time

import pytest

from pyrunc.cgroups import detect

ROOT = "/sys/fs/cgroup"
MB = 1 << 20

pytestmark = [
    pytest.mark.cgroup2,
    pytest.mark.skipif(detect() != "v2",
                       reason="needs a pure cgroup v2 /sys/fs/cgroup (run in cgroup2-vm)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]


def cat(d: str, name: str) -> str:
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def controllers() -> set[str]:
    try:
        return set(cat(ROOT, "cgroup.controllers").split())
    except OSError:
        return set()        # not a v2 host: everything here is skipped anyway


def probe_file(name: str) -> bool:
    """Does a fresh child cgroup (all controllers enabled) have this file?"""
    d = os.path.join(ROOT, f"pyrunc-probe-{os.getpid()}")
    os.makedirs(d, exist_ok=True)
    try:
        return os.path.exists(os.path.join(d, name))
    finally:
        os.rmdir(d)


def needs(controller: str):
    return pytest.mark.skipif(controller not in controllers(),
                              reason=f"no {controller} controller in this guest")


# --- memory --------------------------------------------------------------------------

def test_memory_v1_values_converted(v2rt):
    cid = v2rt.run_d(v2rt.bundle({"memory": {
        "limit": 64 * MB, "swap": 96 * MB, "reservation": 16 * MB, "kernel": 64 * MB,
        "disableOOMKiller": False, "useHierarchy": True}}))
    d = v2rt.cgroup(cid)
    assert cat(d, "memory.max") == str(64 * MB)
    assert cat(d, "memory.swap.max") == str(32 * MB)        # swap - limit
    assert cat(d, "memory.low") == str(16 * MB)             # reservation


def test_memory_swap_equal_to_limit_means_no_swap_and_unlimited(v2rt):
    cid = v2rt.run_d(v2rt.bundle({"memory": {"limit": 64 * MB, "swap": 64 * MB}}))
    assert cat(v2rt.cgroup(cid), "memory.swap.max") == "0"
    cid = v2rt.run_d(v2rt.bundle({"memory": {"limit": -1}}))
    assert cat(v2rt.cgroup(cid), "memory.max") == "max"
    assert cat(v2rt.cgroup(cid), "memory.swap.max") == "max"


@pytest.mark.parametrize("resources, where", [
    ({"memory": {"swappiness": 10}}, "memory.swappiness"),
    ({"memory": {"disableOOMKiller": True}}, "memory.disableOOMKiller"),
    ({"memory": {"useHierarchy": False}}, "memory.useHierarchy"),
    ({"memory": {"limit": 64 * MB, "kernel": 8 * MB}}, "memory.kernel"),
    ({"memory": {"limit": 64 * MB, "kernelTCP": 8 * MB}}, "memory.kernelTCP"),
    ({"memory": {"swap": 64 * MB}}, "memory.swap"),
    ({"cpu": {"realtimeRuntime": 1000}}, "cpu.realtimeRuntime"),
    ({"blockIO": {"leafWeight": 100}}, "blockIO.leafWeight"),
    ({"network": {"classID": 1}}, "network"),
    ({"unified": {"memory/max": "1"}}, "unified"),
    ({"pids": {"limit": -3}}, "pids.limit"),
    ({"cpu": {"shares": 1}}, "cpu.shares"),
])
def test_what_v2_cannot_do_fails_before_fork(v2rt, resources, where):
    v2rt.fails(v2rt.bundle(resources), f"linux.resources.{where}")


def with_out_dir(v2rt, bundle, out):
    c = v2rt.config(bundle)
    c["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                        "options": ["rbind"]})
    v2rt.write_config(bundle, c)
    return bundle


def test_memory_limit_oom_kill_is_an_event(v2rt, tmp_path):
    """events is running (its first stats line is out) before the container
    allocates past its limit; the OOM kill is reported, then events ends with
    the container."""
    out = tmp_path / "out"
    out.mkdir()
    b = with_out_dir(v2rt, v2rt.bundle(
        {"memory": {"limit": 24 * MB, "swap": 24 * MB}},
        ("sh", "-c", "while [ ! -e /out/go ]; do sleep 0.1; done; "
                     "dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 1")), out)
    cid = v2rt.run_d(b)
    log = tmp_path / "events.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([os.environ.get("PYRUNC") or "/opt/pyrunc-venv/bin/pyrunc",
                                 "--root", v2rt.root, "events", "--interval", "100ms", cid],
                                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
    try:
        assert v2rt.wait_until(lambda: log.read_text().count("\n") >= 1, 120), log.read_text()
        (out / "go").touch()
        assert proc.wait(timeout=120) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = log.read_text().splitlines()
    assert '{"type":"oom","id":"%s"}' % cid in lines, lines[-3:]
    assert "oom_kill 1" in cat(v2rt.cgroup(cid), "memory.events")


# --- cpu, pids, io, cpuset, hugetlb, rdma -------------------------------------------------

def test_cpu_converted(v2rt):
    cid = v2rt.run_d(v2rt.bundle({"cpu": {"shares": 1024, "quota": 25000, "period": 50000,
                                          "burst": 5000, "idle": 0}}))
    d = v2rt.cgroup(cid)
    assert cat(d, "cpu.weight") == "39"                      # 1 + (1024-2)*9999/262142
    assert cat(d, "cpu.max") == "25000 50000"
    assert cat(d, "cpu.max.burst") == "5000"
    assert cat(d, "cpu.idle") == "0"


def test_cpu_period_alone_and_idle(v2rt):
    cid = v2rt.run_d(v2rt.bundle({"cpu": {"period": 200000, "idle": 1}}))
    assert cat(v2rt.cgroup(cid), "cpu.max") == "max 200000"
    assert cat(v2rt.cgroup(cid), "cpu.idle") == "1"


def test_pids_limit_stops_fork(v2rt):
    cid = v2rt.run_d(v2rt.bundle({"pids": {"limit": 3}},
                                 ("sh", "-c", "for i in 1 2 3 4 5; do sleep 60 & done; sleep 60")))
    d = v2rt.cgroup(cid)
    assert cat(d, "pids.max") == "3"
    assert v2rt.wait_until(lambda: "max 0" not in cat(d, "pids.events"))
    assert int(cat(d, "pids.current")) <= 3


def test_pids_limit_one_and_unlimited(v2rt):
    cid = v2rt.run_d(v2rt.bundle({"pids": {"limit": 1}}))
    assert cat(v2rt.cgroup(cid), "pids.max") == "1"
    cid = v2rt.run_d(v2rt.bundle({"pids": {"limit": -1}}))
    assert cat(v2rt.cgroup(cid), "pids.max") == "max"


def test_io_weight(v2rt):
    b = v2rt.bundle({"blockIO": {"weight": 500}})
    if probe_file("io.bfq.weight"):
        cid = v2rt.run_d(b)
        assert cat(v2rt.cgroup(cid), "io.bfq.weight").split()[-1] == "500"
    elif probe_file("io.weight"):
        cid = v2rt.run_d(b)
        assert cat(v2rt.cgroup(cid), "io.weight") == "default 4950"   # 1+(500-10)*9999/990
    else:
        v2rt.fails(b, "linux.resources.blockIO.weight", "io.weight")   # the kernel lacks it


def test_io_throttle(v2rt):
    devs = sorted(os.listdir("/sys/dev/block")) if os.path.isdir("/sys/dev/block") else []
    if not devs:
        v2rt.fails(v2rt.bundle({"blockIO": {"throttleReadBpsDevice": [
            {"major": 8, "minor": 0, "rate": 1}]}}), "linux.resources.blockIO")
        pytest.skip("no block device in this guest (the error path was checked)")
    major, minor = map(int, devs[0].split(":"))
    cid = v2rt.run_d(v2rt.bundle({"blockIO": {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]}}))
    line = cat(v2rt.cgroup(cid), "io.max")
    assert line.startswith(f"{major}:{minor} rbps=1048576") and "wiops=100" in line


@needs("cpuset")
def test_cpuset(v2rt):
    cid = v2rt.run_d(v2rt.bundle({"cpu": {"cpus": "0", "mems": "0"}}))
    assert cat(v2rt.cgroup(cid), "cpuset.cpus") == "0"
    assert cat(v2rt.cgroup(cid), "cpuset.mems") == "0"


def test_cpuset_without_the_controller(v2rt):
    if "cpuset" in controllers():
        pytest.skip("this guest has cpuset")
    v2rt.fails(v2rt.bundle({"cpu": {"cpus": "0"}}), "linux.resources.cpu.cpus", "cpuset")


@needs("hugetlb")
def test_hugetlb(v2rt):
    cid = v2rt.run_d(v2rt.bundle({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MB}]}))
    d = v2rt.cgroup(cid)
    assert cat(d, "hugetlb.2MB.max") == str(4 * MB)
    if os.path.exists(os.path.join(d, "hugetlb.2MB.rsvd.max")):
        assert cat(d, "hugetlb.2MB.rsvd.max") == str(4 * MB)
    v2rt.fails(v2rt.bundle({"hugepageLimits": [{"pageSize": "4MB", "limit": 0}]}),
               "linux.resources.hugepageLimits[0].pageSize")


def test_hugetlb_without_the_controller(v2rt):
    if "hugetlb" in controllers():
        pytest.skip("this guest has hugetlb")
    v2rt.fails(v2rt.bundle({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}),
               "linux.resources.hugepageLimits", "hugetlb")


def test_rdma(v2rt):
    b = v2rt.bundle({"rdma": {"mlx5_0": {"hcaHandles": 2, "hcaObjects": 100}}})
    if "rdma" not in controllers():
        v2rt.fails(b, "linux.resources.rdma", "rdma")
        return
    # no RDMA device in the guest: the kernel refuses, the error names field and file
    v2rt.fails(b, "linux.resources.rdma.mlx5_0", "rdma.max")


def test_unified(v2rt):
    cid = v2rt.run_d(v2rt.bundle({"unified": {"pids.max": "9", "memory.high": str(80 * MB)},
                                  "pids": {"limit": 20}}))
    d = v2rt.cgroup(cid)
    assert cat(d, "pids.max") == "9"                  # unified is written last
    assert cat(d, "memory.high") == str(80 * MB)
    missing = next(c for c in ("hugetlb", "rdma", "misc", "cpuset", "perf_event")
                   if c not in controllers())
    v2rt.fails(v2rt.bundle({"unified": {f"{missing}.max": "1"}}),
               f"linux.resources.unified.{missing}.max", missing)


def test_nested_cgroups_path(v2rt):
    b = v2rt.bundle({"pids": {"limit": 11}})
    cid = v2rt.new_id()
    c = v2rt.config(b)
    c["linux"]["cgroupsPath"] = f"/{cid}-p/a/{cid}"
    v2rt.write_config(b, c)
    v2rt.ok("run", "-d", "--bundle", b, cid)
    assert v2rt.cgroup(cid) == f"{ROOT}/{cid}-p/a/{cid}"
    assert cat(v2rt.cgroup(cid), "pids.max") == "11"
    v2rt.ok("delete", "--force", cid)
    assert not os.path.exists(f"{ROOT}/{cid}-p")


# --- update ------------------------------------------------------------------------------

def test_update(v2rt):
    cid = v2rt.run_d(v2rt.bundle({"memory": {"limit": 64 * MB}, "cpu": {"period": 50000}}))
    d = v2rt.cgroup(cid)
    v2rt.ok("update", "--memory", "100m", "--memory-swap", "150m", "--cpu-quota", "20000",
            "--cpu-share", "2048", "--pids-limit", "40", cid)
    assert cat(d, "memory.max") == str(100 * MB)
    assert cat(d, "memory.swap.max") == str(50 * MB)
    assert cat(d, "cpu.max") == "20000 50000"          # the period is kept
    assert cat(d, "cpu.weight") == "79"
    assert cat(d, "pids.max") == "40"
    saved = v2rt.saved_resources(cid)
    assert saved["memory"] == {"limit": 100 * MB, "swap": 150 * MB}
    assert saved["cpu"] == {"period": 50000, "quota": 20000, "shares": 2048}
    # only swap: converted against the saved limit
    v2rt.ok("update", "--memory-swap", "300m", cid)
    assert cat(d, "memory.swap.max") == str(200 * MB)
    v2rt.ok("update", "-r", "-", cid, stdin=json.dumps({"unified": {"pids.max": "17"}}))
    assert cat(d, "pids.max") == "17"
    v2rt.ok("update", "--memory", "-1", cid)
    assert cat(d, "memory.max") == "max" and cat(d, "memory.swap.max") == "max"
    before = (cat(d, "memory.max"), cat(d, "pids.max"))
    for args, stdin, needle in (
            (["--memory", "-5"], None, "invalid size"),
            (["-r", "-"], '{"memory": {"swappiness": 5}}', "memory.swappiness"),
            (["-r", "-"], '{"cpu": {"realtimePeriod": 5}}', "cpu.realtimePeriod"),
            (["-r", "-"], '{"unified": {"x/y": "1"}}', "linux.resources.unified")):
        res = v2rt("update", *args, cid, stdin=stdin)
        assert res.returncode == 1 and needle in res.stderr and res.stderr.count("\n") == 1
    assert (cat(d, "memory.max"), cat(d, "pids.max")) == before


def test_update_check_before_update(v2rt, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    b = with_out_dir(v2rt, v2rt.bundle(
        {"memory": {"limit": 64 * MB, "checkBeforeUpdate": True}},
        ("sh", "-c", "x=$(head -c 8000000 /dev/zero | tr '\\0' a); touch /out/ready; "
                     "sleep 1000")), out)
    cid = v2rt.run_d(b)
    d = v2rt.cgroup(cid)
    assert v2rt.wait_until(lambda: (out / "ready").exists(), 120)
    current = int(cat(d, "memory.current"))
    below = max(4096, current // 2 // 4096 * 4096)
    res = v2rt("update", "--memory", str(below), cid)
    assert res.returncode == 1 and "checkBeforeUpdate" in res.stderr, (current, res)
    assert cat(d, "memory.max") == str(64 * MB)
    v2rt.ok("update", "--memory", str(96 * MB), cid)       # above the usage: fine
    assert cat(d, "memory.max") == str(96 * MB)


def test_update_stopped(v2rt):
    cid = v2rt.run_d(v2rt.bundle(args=("true",)))
    assert v2rt.wait_until(lambda: v2rt.state(cid)["status"] == "stopped")
    res = v2rt("update", "--pids-limit", "3", cid)
    assert res.returncode == 1 and res.stderr.strip() == "container not running"


# --- pause / resume, ps, kill --all, events ---------------------------------------------

def test_pause_resume(v2rt, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    b = v2rt.bundle(args=("sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /out/n; "
                                      "sleep 0.05; done"))
    c = v2rt.config(b)
    c["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                        "options": ["rbind"]})
    v2rt.write_config(b, c)
    cid = v2rt.run_d(b)
    n = out / "n"
    assert v2rt.wait_until(lambda: n.exists() and n.read_text().strip())
    v2rt.ok("pause", cid)
    assert v2rt.state(cid)["status"] == "paused"
    assert cat(v2rt.cgroup(cid), "cgroup.freeze") == "1"
    frozen = n.read_text()
    time.sleep(1)
    assert n.read_text() == frozen
    assert v2rt("pause", cid).stderr.strip() == "container not running"
    v2rt.ok("resume", cid)
    assert v2rt.state(cid)["status"] == "running"
    assert v2rt.wait_until(lambda: n.read_text() != frozen)
    assert v2rt("resume", cid).stderr.strip() == "container not paused"
    v2rt.ok("pause", cid)
    v2rt.ok("kill", cid, "KILL")                      # SIGKILL thaws
    assert v2rt.wait_until(lambda: v2rt.state(cid)["status"] == "stopped")


def test_ps_and_kill_all(v2rt):
    b = v2rt.bundle(args=("sh", "-c", "sleep 1001 & sleep 1002 & sleep 1003"))
    c = v2rt.config(b)
    c["linux"]["namespaces"] = [ns for ns in c["linux"]["namespaces"] if ns["type"] != "pid"]
    v2rt.write_config(b, c)
    cid = v2rt.run_d(b)
    assert v2rt.wait_until(lambda: len(json.loads(v2rt.ok("ps", "-f", "json", cid).stdout)
                                       or []) == 3)
    table = v2rt.ok("ps", cid, "-o", "pid,args").stdout.splitlines()
    assert table[0].split() == ["PID", "COMMAND"] and len(table) == 4
    v2rt.ok("kill", "--all", cid, "KILL")
    assert v2rt.wait_until(lambda: v2rt.ok("ps", "-f", "json", cid).stdout == "null\n")
    v2rt.ok("kill", "--all", cid, "KILL")


def test_events_stats(v2rt):
    cid = v2rt.run_d(v2rt.bundle({"memory": {"limit": 64 * MB}, "pids": {"limit": 30}}))
    ev = json.loads(v2rt.ok("events", "--stats", cid).stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    data = ev["data"]
    assert list(data) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                          "network_interfaces"]
    assert data["memory"]["usage"]["limit"] == 64 * MB
    assert data["pids"] == {"current": 1, "limit": 30}
    assert data["cpu"]["usage"]["total"] > 0
