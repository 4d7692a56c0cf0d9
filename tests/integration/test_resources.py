"""linux.resources on the real kernel, cgroup v1 (this host; the v2 twin is
tests/cgroup2/test_cgroup2_resources.py): each resource is set by create,
read back from the cgroup files, and where practical its effect is observed
(a pids limit stops fork, a memory limit OOM-kills, a CPU quota throttles).
Bad values fail before anything is made: one error line naming the field.
Every container and cgroup is removed by the `pyrunc` fixture, which also
fails the test if anything is left behind."""
import json
import os
import time

import pytest

from pyrunc.cgroups import detect

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(detect() != "v1", reason="cgroup v1 host (v2: tests/cgroup2)"),
]

MB = 1 << 20
UNLIMITED = "9223372036854771712"      # v1's "no limit" (PAGE_COUNTER_MAX pages)


def cgroup_paths(pyrunc, cid) -> dict:
    with open(os.path.join(pyrunc.root, cid, "state.json")) as f:
        return json.load(f)["cgroup"]["paths"]


def cat(path: str, name: str) -> str:
    with open(os.path.join(path, name)) as f:
        return f.read().strip()


def created(pyrunc, bundle, resources: dict, *, run_detached=False) -> tuple[str, dict]:
    bundle.linux["resources"].update(resources)
    if run_detached:
        cid = pyrunc.new_id()
        pyrunc.ok("run", "-d", "--bundle", bundle.path, cid, bundle=bundle)
    else:
        cid, _ = pyrunc.create(bundle)
    return cid, cgroup_paths(pyrunc, cid)


def fails(pyrunc, bundle, resources: dict, *needles: str) -> str:
    bundle.linux["resources"].update(resources)
    cid = pyrunc.new_id()
    res = pyrunc("create", "--bundle", bundle.path, cid, bundle=bundle)
    line = pyrunc.one_line_error(res, *needles)
    assert not os.path.exists(os.path.join(pyrunc.root, cid)), "state left by a failed create"
    return line     # the fixture checks that no cgroup, mount or process is left


def block_device() -> str:
    """MAJ:MIN of a real block device (the kernel refuses limits for others)."""
    devs = sorted(os.listdir("/sys/dev/block"), key=lambda d: (d.startswith("7:"), d))
    if not devs:
        pytest.skip("no block device")
    return devs[0]


# --- memory ------------------------------------------------------------------------

def test_memory_limits_read_back(pyrunc, bundle):
    cid, p = created(pyrunc, bundle, {"memory": {
        "limit": 64 * MB, "reservation": 32 * MB, "swap": 96 * MB, "swappiness": 20,
        "disableOOMKiller": True, "kernelTCP": 16 * MB, "kernel": 64 * MB,
        "useHierarchy": True}})
    m = p["memory"]
    assert cat(m, "memory.limit_in_bytes") == str(64 * MB)
    assert cat(m, "memory.soft_limit_in_bytes") == str(32 * MB)
    assert cat(m, "memory.memsw.limit_in_bytes") == str(96 * MB)
    assert cat(m, "memory.swappiness") == "20"
    assert "oom_kill_disable 1" in cat(m, "memory.oom_control")
    assert cat(m, "memory.kmem.tcp.limit_in_bytes") == str(16 * MB)
    assert cat(m, "memory.use_hierarchy") == "1"


def test_memory_unlimited_means_swap_unlimited_too(pyrunc, bundle):
    cid, p = created(pyrunc, bundle, {"memory": {"limit": -1}})
    assert cat(p["memory"], "memory.limit_in_bytes") == UNLIMITED
    assert cat(p["memory"], "memory.memsw.limit_in_bytes") == UNLIMITED


def test_memory_limit_oom_kills(pyrunc, bundle):
    bundle.linux["resources"]["memory"] = {"limit": 24 * MB}
    bundle.sh("dd if=/dev/zero of=/dev/null bs=64M count=1; echo status=$?")
    out = pyrunc.run_ok(bundle)
    assert "status=137" in out      # SIGKILLed by the OOM killer


@pytest.mark.parametrize("memory, where, needle", [
    ({"limit": 64 * MB, "kernel": 16 * MB}, "memory.kernel", "kmem.limit_in_bytes"),
    ({"limit": 64 * MB, "swap": 32 * MB}, "memory.swap", ">= the memory limit"),
    ({"swap": 32 * MB}, "memory.swap", "needs a memory limit"),
    ({"limit": -2}, "memory.limit", "out of range"),
    ({"swappiness": 101}, "memory.swappiness", "0 to 100"),
    ({"limit": "64m"}, "memory.limit", ""),
])
def test_memory_bad_values(pyrunc, bundle, memory, where, needle):
    fails(pyrunc, bundle, {"memory": memory}, f"linux.resources.{where}", needle)


def test_kernel_refusal_names_field_and_file(pyrunc, bundle):
    """useHierarchy false: Linux >= 6 refuses memory.use_hierarchy=0 (EINVAL).
    The error comes after the fork and names the field and the file; create
    still leaves nothing behind."""
    probe = "/sys/fs/cgroup/memory/pyrunc-probe-%d" % os.getpid()
    os.mkdir(probe)
    try:
        try:
            with open(os.path.join(probe, "memory.use_hierarchy"), "w") as f:
                f.write("0")
            pytest.skip("this kernel still has non-hierarchical memory accounting")
        except OSError:
            pass
    finally:
        os.rmdir(probe)
    fails(pyrunc, bundle, {"memory": {"useHierarchy": False}},
          "linux.resources.memory.useHierarchy", "memory.use_hierarchy", "Invalid argument")


# --- cpu ------------------------------------------------------------------------------

def test_cpu_read_back(pyrunc, bundle):
    cid, p = created(pyrunc, bundle, {"cpu": {
        "shares": 512, "quota": 30000, "period": 60000, "burst": 10000, "idle": 0,
        "realtimeRuntime": 5000, "realtimePeriod": 100000, "cpus": "0", "mems": "0"}})
    c = p["cpu"]
    assert cat(c, "cpu.shares") == "512"
    assert cat(c, "cpu.cfs_quota_us") == "30000"
    assert cat(c, "cpu.cfs_period_us") == "60000"
    assert cat(c, "cpu.cfs_burst_us") == "10000"
    assert cat(c, "cpu.idle") == "0"
    assert cat(c, "cpu.rt_runtime_us") == "5000"
    assert cat(c, "cpu.rt_period_us") == "100000"
    assert cat(p["cpuset"], "cpuset.cpus") == "0"
    assert cat(p["cpuset"], "cpuset.mems") == "0"


def test_cpu_quota_throttles(pyrunc, bundle):
    bundle.args("sh", "-c", "while :; do :; done")
    cid, p = created(pyrunc, bundle, {"cpu": {"quota": 5000, "period": 100000}})
    pyrunc.ok("start", cid)
    assert pyrunc.wait_until(
        lambda: int(dict(line.split() for line in cat(p["cpu"], "cpu.stat").splitlines())
                    ["nr_throttled"]) > 0, timeout=5)


def test_cpu_idle_and_unlimited_quota(pyrunc, bundle):
    cid, p = created(pyrunc, bundle, {"cpu": {"idle": 1, "quota": -1}})
    assert cat(p["cpu"], "cpu.idle") == "1"
    assert cat(p["cpu"], "cpu.cfs_quota_us") == "-1"


@pytest.mark.parametrize("cpu, where", [
    ({"shares": 1}, "cpu.shares"), ({"quota": 10}, "cpu.quota"),
    ({"period": 10}, "cpu.period"), ({"cpus": "zero"}, "cpu.cpus"), ({"idle": 3}, "cpu.idle"),
    ({"quota": 10000, "burst": 20000}, "cpu.burst"),
    ({"idle": 1, "shares": 100}, "cpu.shares"),
])
def test_cpu_bad_values(pyrunc, bundle, cpu, where):
    fails(pyrunc, bundle, {"cpu": cpu}, f"linux.resources.{where}")


def test_cpuset_outside_the_host_is_refused_by_the_kernel(pyrunc, bundle):
    fails(pyrunc, bundle, {"cpu": {"cpus": "4095"}}, "linux.resources.cpu.cpus",
          "cpuset.cpus")


# --- pids --------------------------------------------------------------------------------

def test_pids_limit_stops_fork(pyrunc, bundle):
    bundle.sh("for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; sleep 30")
    cid, p = created(pyrunc, bundle, {"pids": {"limit": 4}})
    assert cat(p["pids"], "pids.max") == "4"
    pyrunc.ok("start", cid)
    assert pyrunc.wait_until(lambda: "max 0" not in cat(p["pids"], "pids.events"))
    assert int(cat(p["pids"], "pids.current")) <= 4


@pytest.mark.parametrize("limit, expect", [(1, "1"), (-1, "max"), (100, "100")])
def test_pids_limit_values(pyrunc, bundle, limit, expect):
    """1: only init may exist -- create needs 2 tasks while it forks, so such a
    limit is written once init runs alone (runc manages 1 as well)."""
    cid, p = created(pyrunc, bundle, {"pids": {"limit": limit}})
    assert cat(p["pids"], "pids.max") == expect
    pyrunc.ok("start", cid)
    assert pyrunc.state(cid)["status"] == "running"


def test_pids_bad_value(pyrunc, bundle):
    fails(pyrunc, bundle, {"pids": {"limit": -5}}, "linux.resources.pids.limit")


# --- blkio ---------------------------------------------------------------------------

def blkio_weight_file() -> str | None:
    """blkio.weight (CFQ) or blkio.bfq.weight (BFQ); None when the host's I/O
    scheduler offers neither (no BFQ here: mq-deadline/none have no weights)."""
    for name in ("blkio.weight", "blkio.bfq.weight"):
        if os.path.exists(os.path.join("/sys/fs/cgroup/blkio", name)):
            return name
    return None


def test_blkio_throttle(pyrunc, bundle):
    dev = block_device()
    major, minor = map(int, dev.split(":"))
    cid, p = created(pyrunc, bundle, {"blockIO": {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
        "throttleWriteBpsDevice": [{"major": major, "minor": minor, "rate": 2097152}],
        "throttleReadIOPSDevice": [{"major": major, "minor": minor, "rate": 100}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 200}]}})
    b = p["blkio"]
    assert cat(b, "blkio.throttle.read_bps_device") == f"{dev} 1048576"
    assert cat(b, "blkio.throttle.write_bps_device") == f"{dev} 2097152"
    assert cat(b, "blkio.throttle.read_iops_device") == f"{dev} 100"
    assert cat(b, "blkio.throttle.write_iops_device") == f"{dev} 200"


def test_blkio_weight(pyrunc, bundle):
    weight_file = blkio_weight_file()
    if weight_file is None:
        # runc writes blkio.weight too and fails the same way: one line naming the field
        fails(pyrunc, bundle, {"blockIO": {"weight": 300}}, "linux.resources.blockIO.weight",
              "blkio.weight does not exist")
        return
    cid, p = created(pyrunc, bundle, {"blockIO": {"weight": 300}})
    assert cat(p["blkio"], weight_file).split()[-1] == "300"


def test_blkio_unknown_device_and_bad_weight(pyrunc, bundle):
    fails(pyrunc, bundle, {"blockIO": {"throttleReadBpsDevice": [
        {"major": 259, "minor": 4000, "rate": 1}]}},
          "linux.resources.blockIO.throttleReadBpsDevice[0]", "259:4000 does not exist")
    fails(pyrunc, bundle, {"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight")


def test_blkio_leaf_weight_needs_cfq(pyrunc, bundle):
    if os.path.exists("/sys/fs/cgroup/blkio/blkio.leaf_weight"):
        pytest.skip("this kernel has CFQ leaf weights")
    fails(pyrunc, bundle, {"blockIO": {"leafWeight": 300}},
          "linux.resources.blockIO.leafWeight", "blkio.leaf_weight")


# --- controllers this host may lack ---------------------------------------------------

def mounted(controller: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(f" cgroup cgroup " in line and controller in line.split()[-1].split(",")
                   for line in f)


@pytest.mark.parametrize("controller, resources, where", [
    ("hugetlb", {"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 30}]}, "hugepageLimits"),
    ("net_cls", {"network": {"classID": 0x100001}}, "network.classID"),
    ("net_prio", {"network": {"priorities": [{"name": "lo", "priority": 3}]}},
     "network.priorities"),
    ("rdma", {"rdma": {"mlx5_0": {"hcaHandles": 1}}}, "rdma"),
])
def test_missing_controller_is_a_clear_error(pyrunc, bundle, controller, resources, where):
    if mounted(controller):
        pytest.skip(f"{controller} is mounted here")
    fails(pyrunc, bundle, resources, f"linux.resources.{where}", controller, "not mounted")


def test_hugepage_size_must_exist(pyrunc, bundle):
    if not mounted("hugetlb"):
        pytest.skip("hugetlb is not mounted here")
    fails(pyrunc, bundle, {"hugepageLimits": [{"pageSize": "3MB", "limit": 0}]},
          "linux.resources.hugepageLimits[0].pageSize")


def test_unified_is_refused_on_v1(pyrunc, bundle):
    fails(pyrunc, bundle, {"unified": {"pids.max": "10"}}, "linux.resources.unified",
          "cgroup v1")


def test_unknown_resource_key(pyrunc, bundle):
    fails(pyrunc, bundle, {"memory": {"limit": 64 * MB, "maxUsage": 1}},
          "linux.resources.memory", "maxUsage")


# --- devices with the defaults, cgroupsPath forms -------------------------------------

def test_device_rules_conflicting_with_the_defaults_fail_before_fork(pyrunc, bundle):
    fails(pyrunc, bundle, {"devices": [
        {"allow": True, "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "access": "rwm"}]},
        "linux.resources.devices", "c 1:3")


def test_bad_device_type(pyrunc, bundle):
    fails(pyrunc, bundle, {"devices": [{"allow": True, "type": "z", "access": "r"}]},
          "linux.resources.devices[0].type")


@pytest.mark.parametrize("form", ["absolute", "relative", "nested"])
def test_cgroups_path_forms_get_the_resources(pyrunc, bundle, form):
    cid = pyrunc.new_id()
    bundle.linux["cgroupsPath"] = {"absolute": f"/{cid}", "relative": f"{cid}",
                                   "nested": f"/{cid}-p/a/{cid}"}[form]
    bundle.linux["resources"].update({"pids": {"limit": 7}, "memory": {"limit": 48 * MB}})
    pyrunc.create(bundle, cid=cid)
    p = cgroup_paths(pyrunc, cid)
    assert p["pids"].endswith(bundle.linux["cgroupsPath"].lstrip("/"))
    assert cat(p["pids"], "pids.max") == "7"
    assert cat(p["memory"], "memory.limit_in_bytes") == str(48 * MB)
    with open(f"/proc/{pyrunc.state(cid)['pid']}/cgroup") as f:
        assert bundle.linux["cgroupsPath"].lstrip("/") in f.read()


def test_joining_an_existing_cgroup_sets_limits_and_keeps_it(pyrunc, bundle):
    name = f"pyrunc-join-{os.getpid()}-{time.monotonic_ns() % 100000}"
    dirs = [f"/sys/fs/cgroup/{c}/{name}" for c in ("pids", "memory")]
    for d in dirs:
        os.mkdir(d)
    try:
        bundle.linux["cgroupsPath"] = f"/{name}"
        cid, p = created(pyrunc, bundle, {"pids": {"limit": 9}})
        assert p["pids"] == dirs[0]
        assert cat(dirs[0], "pids.max") == "9"
        pyrunc.ok("delete", "--force", cid)
        assert all(os.path.isdir(d) for d in dirs)      # not ours to remove
    finally:
        for d in dirs:
            pyrunc.wait_until(lambda d=d: not cat(d, "cgroup.procs"))
            os.rmdir(d)
