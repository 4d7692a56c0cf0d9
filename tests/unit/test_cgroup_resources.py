"""linux.resources (not devices): validation, v1->v2 conversions, the exact
write sequences on v1 and v2 (on plain directory trees standing in for
cgroupfs), stats in runc's shape, and the update/events helpers."""
import json
import os

import pytest

from pyrunc.container import cgroup_ops
from pyrunc.cgroups import CgroupManager
from pyrunc.cgroups import resources as res
from pyrunc.cgroups import stats as stats_mod
from pyrunc.cgroups import fs, fs2
from pyrunc.cgroups.common import CgroupError, Target
from pyrunc.cgroups.devices import DEFAULT_ALLOWED_DEVICES
from pyrunc.errors import ConfigError, PyruncError

W = "linux.resources"


def err(resources, version=None, checks=True):
    with pytest.raises(ConfigError) as e:
        spec = res.parse(resources, W, version)
        if checks:
            res.check(spec, W, version or "v1")
    return e.value


# --- parse: accepted values and "not set" ------------------------------------------

FULL = {
    "memory": {"limit": 100 << 20, "reservation": 50 << 20, "swap": 200 << 20,
               "kernel": -1, "kernelTCP": 10 << 20, "swappiness": 10,
               "disableOOMKiller": True, "useHierarchy": True, "checkBeforeUpdate": False},
    "cpu": {"shares": 512, "quota": 50000, "burst": 10000, "period": 100000,
            "realtimeRuntime": 1000, "realtimePeriod": 10000, "cpus": "0-1", "mems": "0",
            "idle": 0},
    "pids": {"limit": 32},
    "blockIO": {"weight": 500, "leafWeight": 300,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 600}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 0}]},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 30}],
    "network": {"classID": 0x100001, "priorities": [{"name": "eth0", "priority": 5}]},
    "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
    "devices": [{"allow": False, "access": "rwm"}],
}


def test_parse_full_v1_keeps_everything_but_devices():
    spec = res.parse(FULL, W, "v1")
    res.check(spec, W, "v1")
    assert set(spec) == set(FULL) - {"devices"}
    assert spec["memory"] == FULL["memory"]
    assert spec["cpu"] == FULL["cpu"]
    assert spec["blockIO"]["weightDevice"] == [{"major": 8, "minor": 0, "weight": 600}]


def test_zero_means_not_set_like_runc_but_pids_zero_is_a_limit():
    spec = res.parse({"memory": {"limit": 0, "swap": 0, "reservation": 0, "kernel": 0},
                      "cpu": {"shares": 0, "quota": 0, "period": 0, "realtimeRuntime": 0,
                              "realtimePeriod": 0, "cpus": "", "mems": ""},
                      "blockIO": {"weight": 0, "leafWeight": 0},
                      "network": {"classID": 0}, "pids": {"limit": 0}})
    assert spec == {"pids": {"limit": 0}}
    # null is absent (Go's nil pointers), empty sections ask for nothing
    assert res.parse({"memory": None, "cpu": {}, "hugepageLimits": [], "unified": {}}) == {}
    # burst and idle are pointers in runc: 0 is a value
    assert res.parse({"cpu": {"burst": 0, "idle": 0}}) == {"cpu": {"burst": 0, "idle": 0}}


@pytest.mark.parametrize("resources, where", [
    ({"memory": {"limit": -2}}, "memory.limit"),
    ({"memory": {"limit": "1g"}}, "memory.limit"),
    ({"memory": {"limit": 1.5}}, "memory.limit"),
    ({"memory": {"limit": True}}, "memory.limit"),
    ({"memory": {"reservation": -7}}, "memory.reservation"),
    ({"memory": {"swappiness": 101}}, "memory.swappiness"),
    ({"memory": {"swappiness": -1}}, "memory.swappiness"),
    ({"memory": {"disableOOMKiller": 1}}, "memory.disableOOMKiller"),
    ({"memory": {"limt": 5}}, "memory"),
    ({"cpu": {"shares": 1}}, "cpu.shares"),
    ({"cpu": {"shares": 262145}}, "cpu.shares"),
    ({"cpu": {"quota": -2}}, "cpu.quota"),
    ({"cpu": {"quota": 999}}, "cpu.quota"),
    ({"cpu": {"period": 999}}, "cpu.period"),
    ({"cpu": {"period": 1000001}}, "cpu.period"),
    ({"cpu": {"realtimeRuntime": -2}}, "cpu.realtimeRuntime"),
    ({"cpu": {"cpus": "a-b"}}, "cpu.cpus"),
    ({"cpu": {"cpus": "3-1"}}, "cpu.cpus"),
    ({"cpu": {"mems": 0}}, "cpu.mems"),
    ({"cpu": {"idle": 2}}, "cpu.idle"),
    ({"pids": {"limit": -2}}, "pids.limit"),
    ({"pids": {"max": 3}}, "pids"),
    ({"blockIO": {"weight": 5}}, "blockIO.weight"),
    ({"blockIO": {"weight": 1001}}, "blockIO.weight"),
    ({"blockIO": {"weightDevice": [{"major": 8, "minor": 0}]}}, "blockIO.weightDevice[0]"),
    ({"blockIO": {"weightDevice": [{"minor": 0, "weight": 10}]}},
     "blockIO.weightDevice[0].major"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}},
     "blockIO.throttleReadBpsDevice[0].rate"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": -1, "minor": 0, "rate": 1}]}},
     "blockIO.throttleReadBpsDevice[0].major"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "hugepageLimits[0].pageSize"),
    ({"hugepageLimits": [{"pageSize": "2MB"}]}, "hugepageLimits[0].limit"),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}, {"pageSize": "2MB", "limit": 2}]},
     "hugepageLimits[1].pageSize"),
    ({"network": {"priorities": [{"priority": 1}]}}, "network.priorities[0].name"),
    ({"network": {"classID": 1 << 32}}, "network.classID"),
    ({"rdma": {"mlx": {}}}, "rdma.mlx"),
    ({"rdma": {"mlx": {"hcaHandles": -1}}}, "rdma.mlx.hcaHandles"),
    ({"unified": {"../memory.max": "1"}}, "unified"),
    ({"unified": {"memorymax": "1"}}, "unified"),
    ({"unified": {"memory.max": 1}}, "unified.memory.max"),
    ({"bogus": {}}, ""),
    ([], ""),
])
def test_parse_errors_name_the_field(resources, where):
    e = err(resources, checks=False)
    assert e.where == (f"{W}.{where}" if where else W)
    assert "\n" not in str(e)


@pytest.mark.parametrize("resources, version, where", [
    ({"unified": {"pids.max": "5"}}, "v1", "unified"),
    ({"memory": {"swappiness": 0}}, "v2", "memory.swappiness"),
    ({"memory": {"disableOOMKiller": True}}, "v2", "memory.disableOOMKiller"),
    ({"memory": {"useHierarchy": False}}, "v2", "memory.useHierarchy"),
    ({"cpu": {"realtimeRuntime": 5}}, "v2", "cpu.realtimeRuntime"),
    ({"cpu": {"realtimePeriod": 5}}, "v2", "cpu.realtimePeriod"),
    ({"blockIO": {"leafWeight": 10}}, "v2", "blockIO.leafWeight"),
    ({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "leafWeight": 10}]}}, "v2",
     "blockIO.weightDevice"),
    ({"network": {"classID": 1}}, "v2", "network"),
])
def test_what_a_cgroup_version_cannot_do_is_refused(resources, version, where):
    e = err(resources, version, checks=False)
    assert e.where == f"{W}.{where}"
    # ... and accepted by the other version
    res.parse(resources, W, "v2" if version == "v1" else "v1")


def test_v2_accepts_what_it_does_anyway():
    assert res.parse({"memory": {"disableOOMKiller": False, "useHierarchy": True}}, W, "v2") \
        == {"memory": {"disableOOMKiller": False, "useHierarchy": True}}


@pytest.mark.parametrize("resources, version, where, needle", [
    ({"memory": {"swap": 100}}, "v1", "memory.swap", "needs a memory limit"),
    ({"memory": {"limit": -1, "swap": 100}}, "v2", "memory.swap", "needs a memory limit"),
    ({"memory": {"limit": 200, "swap": 100}}, "v1", "memory.swap", ">="),
    ({"memory": {"limit": 200, "kernel": 100}}, "v1", "memory.kernel", "kmem.limit_in_bytes"),
    ({"memory": {"kernel": 100}}, "v1", "memory.kernel", "unlimited"),
    ({"memory": {"limit": 200, "kernelTCP": 100}}, "v2", "memory.kernelTCP", "cgroup v2"),
    ({"cpu": {"quota": 10000, "burst": 20000}}, "v1", "cpu.burst", "exceed"),
    ({"cpu": {"idle": 1, "shares": 1024}}, "v2", "cpu.shares", "idle"),
])
def test_cross_field_rules(resources, version, where, needle):
    e = err(resources, version)
    assert e.where == f"{W}.{where}"
    assert needle in e.message


def test_burst_without_a_quota_is_accepted_as_by_runc_1_5():
    for version in ("v1", "v2"):
        for c in ({"burst": 20000}, {"quota": -1, "burst": 20000}, {"quota": 20000, "burst": 20000}):
            res.check(res.parse({"cpu": c}, W, version), W, version)


def test_pids_limit_as_runc_1_5_writes_it():
    assert [res.pids_max(v) for v in (-5, -1, 0, 1, 7)] == ["max", "max", "1", "1", "7"]
    assert res.parse({"pids": {"limit": 0}}, W, "v2") == {"pids": {"limit": 0}}
    assert res.parse({"pids": {}}, W, "v2") == {}       # 1.3: limit is optional


def test_kernel_memory_covered_by_the_memory_limit_is_accepted():
    for version in ("v1", "v2"):
        for m in ({"limit": 100, "kernel": 100}, {"limit": 100, "kernel": 500},
                  {"limit": 100, "kernel": -1}, {"limit": 100, "kernelTCP": 100}):
            res.check(res.parse({"memory": m}, W, version), W, version)
    # v1 still has a working kernel TCP limit: any value is written
    res.check(res.parse({"memory": {"limit": 100, "kernelTCP": 5}}, W, "v1"), W, "v1")


def test_validate_via_manager_names_devices_and_resources():
    assert CgroupManager.validate(FULL, version="v1")[0].allow is False
    with pytest.raises(ConfigError) as e:
        CgroupManager.validate({"cpu": {"shares": 1}}, where="x")
    assert e.value.where == "x.cpu.shares"


# --- conversions -----------------------------------------------------------------------

def test_conversions_are_runcs():
    assert [res.cpu_shares_to_weight(s) for s in (0, 2, 1024, 262144)] == [0, 1, 39, 10000]
    assert [res.blkio_weight_to_io_weight(w) for w in (0, 10, 500, 1000)] == [0, 1, 4950, 10000]
    assert res.swap_to_v2(300, 100) == "200"
    assert res.swap_to_v2(100, 100) == "0"          # swap == limit: no swap at all
    assert res.swap_to_v2(-1, 100) == "max"
    assert res.swap_to_v2(0, -1) == "max"           # unlimited memory: unlimited swap too
    assert res.swap_to_v2(0, 100) is None           # not set: leave memory.swap.max alone


def test_host_page_sizes(tmp_path):
    for name in ("hugepages-2048kB", "hugepages-1048576kB", "hugepages-64kB", "junk"):
        (tmp_path / name).mkdir()
    assert res.host_page_sizes(str(tmp_path)) == ["1GB", "2MB", "64KB"]
    assert res.host_page_sizes(str(tmp_path / "missing")) == []


def test_check_host():
    spec = res.parse({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]})
    with pytest.raises(ConfigError) as e:
        res.check_host(spec, W, "v1", {"memory"}, ["2MB"])
    assert e.value.where == f"{W}.hugepageLimits" and "not mounted" in e.value.message
    with pytest.raises(ConfigError) as e:
        res.check_host(spec, W, "v1", {"hugetlb"}, ["1GB"])
    assert e.value.where == f"{W}.hugepageLimits[0].pageSize"
    res.check_host(spec, W, "v1", {"hugetlb"}, ["2MB"])
    spec = res.parse({"unified": {"io.max": "8:0 rbps=1", "cgroup.max.depth": "3"}})
    with pytest.raises(ConfigError) as e:
        res.check_host(spec, W, "v2", {"memory"})
    assert e.value.where == f"{W}.unified.io.max" and "cgroup.controllers" in e.value.message
    res.check_host(spec, W, "v2", {"io"})
    spec = res.parse({"cpu": {"cpus": "0"}, "network": {"priorities": [
        {"name": "lo", "priority": 1}]}})
    assert res.needed_controllers(spec, "v1") == [("cpuset", "cpu.cpus"),
                                                   ("net_prio", "network.priorities")]


def test_block_devices_must_exist(tmp_path):
    (tmp_path / "8:0").mkdir()
    spec = res.parse({"blockIO": {"throttleReadBpsDevice": [
        {"major": 8, "minor": 0, "rate": 1}, {"major": 8, "minor": 16, "rate": 1}]}})
    with pytest.raises(ConfigError) as e:
        res.check_block_devices(spec, W, str(tmp_path))
    assert e.value.where == f"{W}.blockIO.throttleReadBpsDevice[1]"


def test_merge_for_update():
    old = {"memory": {"limit": 100, "swap": 200}, "cpu": {"period": 100000},
           "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 5},
                                                 {"major": 8, "minor": 16, "rate": 6}]},
           "hugepageLimits": [{"pageSize": "2MB", "limit": 1}],
           "unified": {"a.b": "1"}, "devices": [{"allow": False, "access": "rwm"}]}
    new = res.parse({"memory": {"limit": 150}, "cpu": {"quota": 20000},
                     "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 9}]},
                     "hugepageLimits": [{"pageSize": "1GB", "limit": 2}],
                     "unified": {"c.d": "2"}})
    merged = res.merge(old, new)
    assert merged["memory"] == {"limit": 150, "swap": 200}
    assert merged["cpu"] == {"period": 100000, "quota": 20000}
    assert merged["blockIO"]["throttleReadBpsDevice"] == [
        {"major": 8, "minor": 0, "rate": 9}, {"major": 8, "minor": 16, "rate": 6}]
    assert merged["hugepageLimits"] == [{"pageSize": "2MB", "limit": 1},
                                        {"pageSize": "1GB", "limit": 2}]
    assert merged["unified"] == {"a.b": "1", "c.d": "2"}
    assert merged["devices"] == old["devices"]
    assert old["memory"] == {"limit": 100, "swap": 200}      # not modified


# --- writes on a fake tree ------------------------------------------------------------------

class Recorder(Target):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.log = []

    def write(self, field, ctrl, file, value):
        self.log.append((field.removeprefix(W + "."), file, value))
        super().write(field, ctrl, file, value)


V1_FILES = {
    "memory": {"memory.limit_in_bytes": "9223372036854771712",
               "memory.memsw.limit_in_bytes": "9223372036854771712",
               "memory.soft_limit_in_bytes": "9223372036854771712",
               "memory.kmem.tcp.limit_in_bytes": "9223372036854771712",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
               "memory.swappiness": "60", "memory.use_hierarchy": "1",
               "memory.usage_in_bytes": "4096", "memory.max_usage_in_bytes": "8192"},
    "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1",
            "cpu.cfs_burst_us": "0", "cpu.idle": "0", "cpu.rt_period_us": "1000000",
            "cpu.rt_runtime_us": "0"},
    "cpuset": {"cpuset.cpus": "0-1", "cpuset.mems": "0"},
    "pids": {"pids.max": "max"},
    "blkio": {"blkio.bfq.weight": "100", "blkio.bfq.weight_device": "",
              "blkio.leaf_weight": "", "blkio.leaf_weight_device": "",
              "blkio.throttle.read_bps_device": "", "blkio.throttle.write_bps_device": "",
              "blkio.throttle.read_iops_device": "", "blkio.throttle.write_iops_device": ""},
    "hugetlb": {"hugetlb.2MB.limit_in_bytes": "0", "hugetlb.2MB.rsvd.limit_in_bytes": "0"},
    "net_cls": {"net_cls.classid": "0"},
    "net_prio": {"net_prio.ifpriomap": ""},
    "rdma": {"rdma.max": ""},
}


def fake_v1(tmp_path, skip=()):
    paths = {}
    for ctrl, files in V1_FILES.items():
        d = tmp_path / ctrl / "ctr"
        d.mkdir(parents=True)
        for name, content in files.items():
            if name not in skip:
                (d / name).write_text(content)
        paths[ctrl] = str(d)
    return paths


def read(paths, ctrl, name):
    with open(os.path.join(paths[ctrl], name)) as f:
        return f.read()


def test_v1_full_write_sequence(tmp_path):
    paths = fake_v1(tmp_path)
    t = Recorder(paths)
    fs.apply(res.parse(FULL, W, "v1"), t)
    assert t.log == [
        ("cpu.cpus", "cpuset.cpus", "0-1"),
        ("cpu.mems", "cpuset.mems", "0"),
        # lowering from "max": memory first, so memsw >= memory at every moment
        ("memory.limit", "memory.limit_in_bytes", str(100 << 20)),
        ("memory.swap", "memory.memsw.limit_in_bytes", str(200 << 20)),
        ("memory.reservation", "memory.soft_limit_in_bytes", str(50 << 20)),
        ("memory.kernelTCP", "memory.kmem.tcp.limit_in_bytes", str(10 << 20)),
        ("memory.disableOOMKiller", "memory.oom_control", "1"),
        ("memory.swappiness", "memory.swappiness", "10"),
        # useHierarchy already 1: not written (kernels >= 6.x refuse 0 anyway)
        ("cpu.shares", "cpu.shares", "512"),
        ("cpu.period", "cpu.cfs_period_us", "100000"),
        ("cpu.burst", "cpu.cfs_burst_us", "10000"),
        ("cpu.quota", "cpu.cfs_quota_us", "50000"),
        ("cpu.idle", "cpu.idle", "0"),
        ("cpu.realtimePeriod", "cpu.rt_period_us", "10000"),
        ("cpu.realtimeRuntime", "cpu.rt_runtime_us", "1000"),
        ("pids.limit", "pids.max", "32"),
        ("blockIO.weight", "blkio.bfq.weight", "500"),
        ("blockIO.leafWeight", "blkio.leaf_weight", "300"),
        ("blockIO.weightDevice[0].weight", "blkio.bfq.weight_device", "8:0 600"),
        ("blockIO.throttleReadBpsDevice[0]", "blkio.throttle.read_bps_device", "8:0 1048576"),
        ("blockIO.throttleWriteIOPSDevice[0]", "blkio.throttle.write_iops_device", "8:16 0"),
        ("hugepageLimits[0]", "hugetlb.2MB.limit_in_bytes", str(1 << 30)),
        ("hugepageLimits[0]", "hugetlb.2MB.rsvd.limit_in_bytes", str(1 << 30)),
        ("network.classID", "net_cls.classid", str(0x100001)),
        ("network.priorities[0]", "net_prio.ifpriomap", "eth0 5"),
        ("rdma.mlx5_1", "rdma.max", "mlx5_1 hca_handle=3 hca_object=10000"),
    ]
    assert read(paths, "memory", "memory.limit_in_bytes") == str(100 << 20)


def test_v1_memory_order_when_raising_and_unlimited(tmp_path):
    paths = fake_v1(tmp_path)
    (tmp_path / "memory" / "ctr" / "memory.limit_in_bytes").write_text(str(50 << 20))
    t = Recorder(paths)
    fs.apply(res.parse({"memory": {"limit": 100 << 20, "swap": 200 << 20}}), t)
    # raising above the current limit: memsw first
    assert [f for _, f, _ in t.log] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    t = Recorder(paths)
    fs.apply(res.parse({"memory": {"limit": -1}}), t)      # -1 alone: swap unlimited too
    assert t.log == [("memory.swap", "memory.memsw.limit_in_bytes", "-1"),
                     ("memory.limit", "memory.limit_in_bytes", "-1")]


def test_v1_blkio_prefers_cfq_files_when_present(tmp_path):
    paths = fake_v1(tmp_path)
    (tmp_path / "blkio" / "ctr" / "blkio.weight").write_text("500")
    (tmp_path / "blkio" / "ctr" / "blkio.weight_device").write_text("")
    t = Recorder(paths)
    fs.apply(res.parse({"blockIO": {"weight": 700, "weightDevice": [
        {"major": 8, "minor": 0, "weight": 100, "leafWeight": 200}]}}), t)
    assert t.log == [("blockIO.weight", "blkio.weight", "700"),
                     ("blockIO.weightDevice[0].weight", "blkio.weight_device", "8:0 100"),
                     ("blockIO.weightDevice[0].leafWeight", "blkio.leaf_weight_device",
                      "8:0 200")]


def test_v1_shares_read_back_like_runc(tmp_path):
    paths = fake_v1(tmp_path)

    class Clamp(Recorder):
        def write(self, field, ctrl, file, value):
            super().write(field, ctrl, file, "100000" if file == "cpu.shares" else value)
    with pytest.raises(CgroupError) as e:
        fs.apply(res.parse({"cpu": {"shares": 200000}}), Clamp(paths))
    assert e.value.where == f"{W}.cpu.shares"
    assert e.value.message == "the maximum allowed cpu-shares is 100000"


def test_write_errors_name_field_and_file(tmp_path):
    paths = fake_v1(tmp_path, skip=("blkio.leaf_weight",))
    with pytest.raises(CgroupError) as e:
        fs.apply(res.parse({"blockIO": {"leafWeight": 300}}), Target(paths))
    assert e.value.where == f"{W}.blockIO.leafWeight"
    assert os.path.join(paths["blkio"], "blkio.leaf_weight") in e.value.message
    assert str(e.value).startswith(f"{W}.blockIO.leafWeight: ")
    with pytest.raises(CgroupError) as e:   # no directory for a controller
        fs.apply(res.parse({"pids": {"limit": 3}}), Target({"memory": "/x"}))
    assert e.value.where == f"{W}.pids.limit" and "pids" in e.value.message


def test_rollback_restores_single_value_files(tmp_path):
    paths = fake_v1(tmp_path, skip=("cpu.cfs_quota_us",))
    t = Target(paths, journal=[])
    with pytest.raises(CgroupError):
        fs.apply(res.parse({"pids": {"limit": 9}, "memory": {"limit": 1 << 20},
                             "cpu": {"shares": 100, "quota": 20000}}), t)
    t.rollback()
    assert read(paths, "pids", "pids.max") == "max"
    assert read(paths, "memory", "memory.limit_in_bytes") == "9223372036854771712"
    assert read(paths, "cpu", "cpu.shares") == "1024"


def fake_v2(tmp_path, files=()):
    d = tmp_path / "ctr"
    d.mkdir()
    base = {"pids.max": "max", "memory.max": "max", "memory.swap.max": "max",
            "memory.low": "0", "memory.current": "4096", "io.max": "", "cpu.weight": "100",
            "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
            "cpuset.cpus": "", "cpuset.mems": "", "hugetlb.2MB.max": "max", "rdma.max": "",
            "memory.high": "max",
            "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma"}
    base.update(dict(files))
    for name, content in base.items():
        if content is not None:
            (d / name).write_text(content)
    return {"": str(d)}


def test_v2_write_sequence_and_conversions(tmp_path):
    paths = fake_v2(tmp_path, {"io.weight": "default 100"})
    spec = res.parse({
        "pids": {"limit": -1},
        "memory": {"limit": 100 << 20, "swap": 300 << 20, "reservation": 10 << 20,
                   "kernel": 200 << 20},
        "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 1000}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 0}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 120}]},
        "cpu": {"shares": 1024, "quota": 50000, "burst": 1000, "idle": 0, "cpus": "0",
                "mems": "0"},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
        "rdma": {"mlx4_0": {"hcaHandles": 2}},
        "unified": {"memory.high": "max"}}, W, "v2")
    res.check(spec, W, "v2")
    t = Recorder(paths)
    fs2.apply(spec, t)
    assert t.log == [
        ("pids.limit", "pids.max", "max"),
        ("memory.swap", "memory.swap.max", str(200 << 20)),     # swap - limit
        ("memory.limit", "memory.max", str(100 << 20)),
        ("memory.reservation", "memory.low", str(10 << 20)),
        ("blockIO.weight", "io.weight", "4950"),                # no BFQ: converted
        ("blockIO.weightDevice[0].weight", "io.weight", "8:0 10000"),
        ("blockIO.throttleReadBpsDevice[0]", "io.max", "8:0 rbps=max"),
        ("blockIO.throttleWriteIOPSDevice[0]", "io.max", "8:0 wiops=120"),
        ("cpu.idle", "cpu.idle", "0"),
        ("cpu.shares", "cpu.weight", "39"),
        ("cpu.burst", "cpu.max.burst", "1000"),
        ("cpu.quota", "cpu.max", "50000 100000"),
        ("cpu.cpus", "cpuset.cpus", "0"),
        ("cpu.mems", "cpuset.mems", "0"),
        ("hugepageLimits[0]", "hugetlb.2MB.max", str(4 << 20)),
        ("rdma.mlx4_0", "rdma.max", "mlx4_0 hca_handle=2"),
        ("unified.memory.high", "memory.high", "max"),
    ]


def test_v2_bfq_weights_and_missing_per_device_weight(tmp_path):
    paths = fake_v2(tmp_path, {"io.bfq.weight": "default 100\n"})
    t = Recorder(paths)
    fs2.apply(res.parse({"blockIO": {"weight": 500, "weightDevice": [
        {"major": 8, "minor": 0, "weight": 300}]}}), t)
    assert t.log == [("blockIO.weight", "io.bfq.weight", "500"),
                     ("blockIO.weightDevice[0].weight", "io.bfq.weight", "8:0 300")]
    (tmp_path / "old").mkdir()
    paths = fake_v2(tmp_path / "old")
    with pytest.raises(CgroupError) as e:
        fs2.apply(res.parse({"blockIO": {"weightDevice": [
            {"major": 8, "minor": 0, "weight": 300}]}}), Target(paths))
    assert e.value.where == f"{W}.blockIO.weightDevice[0].weight"


def test_v2_update_uses_the_effective_values(tmp_path):
    paths = fake_v2(tmp_path)
    ctx = res.parse({"cpu": {"quota": 20000, "period": 50000},
                     "memory": {"limit": 100 << 20, "swap": 200 << 20}})
    t = Recorder(paths)
    fs2.apply(res.parse({"cpu": {"period": 200000}}), t, ctx)
    fs2.apply(res.parse({"memory": {"swap": 300 << 20}}), t, ctx)
    assert t.log == [("cpu.period", "cpu.max", "20000 200000"),
                     ("memory.swap", "memory.swap.max", str(200 << 20))]
    t = Recorder(paths)
    fs2.apply(res.parse({"memory": {"limit": -1}}), t)
    assert t.log == [("memory.swap", "memory.swap.max", "max"),
                     ("memory.limit", "memory.max", "max")]


def test_v2_check_before_update(tmp_path):
    paths = fake_v2(tmp_path, {"memory.current": str(50 << 20)})
    ctx = res.parse({"memory": {"limit": 10 << 20, "checkBeforeUpdate": True}})
    with pytest.raises(CgroupError) as e:
        fs2.apply(res.parse({"memory": {"limit": 10 << 20}}), Target(paths), ctx)
    assert e.value.where == f"{W}.memory.limit" and "checkBeforeUpdate" in e.value.message
    fs2.apply(res.parse({"memory": {"limit": 100 << 20}}), Target(paths), ctx)


# --- the manager -----------------------------------------------------------------------------

def test_manager_apply_resources_defers_tiny_pids_limits_while_creating(tmp_path):
    paths = fake_v1(tmp_path)
    m = CgroupManager.from_dict({"version": "v1", "paths": paths, "created": []})
    m.apply_resources({"pids": {"limit": 1}, "memory": {"limit": 1 << 20}}, creating=True)
    assert read(paths, "pids", "pids.max") == "max"
    assert read(paths, "memory", "memory.limit_in_bytes") == str(1 << 20)
    m.apply_pending()
    assert read(paths, "pids", "pids.max") == "1"
    m.apply_resources({"pids": {"limit": 2}}, creating=True)
    assert read(paths, "pids", "pids.max") == "2"


def test_combined_device_rules_refuse_a_conflicting_default_before_fork():
    config = [{"allow": True, "access": "rwm"},
              {"allow": False, "type": "c", "major": 1, "access": "rwm"}]
    with pytest.raises(ConfigError) as e:
        CgroupManager.combined_device_rules(config, DEFAULT_ALLOWED_DEVICES)
    assert e.value.where == "linux.resources.devices"
    assert "c 1:3" in e.value.message and "every container gets" in e.value.message
    with pytest.raises(ConfigError) as e:     # a bad config rule is named by its index
        CgroupManager.combined_device_rules([{"allow": True, "type": "x", "access": "r"}],
                                            DEFAULT_ALLOWED_DEVICES)
    assert e.value.where == "linux.resources.devices[0].type"
    rules = CgroupManager.combined_device_rules([{"allow": False, "access": "rwm"}],
                                                DEFAULT_ALLOWED_DEVICES)
    assert len(rules) == 1 + len(DEFAULT_ALLOWED_DEVICES)


# --- stats -------------------------------------------------------------------------------------

def test_stats_v1_shape(tmp_path):
    paths = fake_v1(tmp_path)
    acct = tmp_path / "cpuacct" / "ctr"
    acct.mkdir(parents=True)
    (acct / "cpuacct.usage").write_text("3000\n")
    (acct / "cpuacct.usage_percpu").write_text("1000 2000 \n")
    (acct / "cpuacct.usage_all").write_text("cpu user system\n0 400 600\n1 0 2000\n")
    (acct / "cpuacct.stat").write_text("user 2\nsystem 1\n")
    paths["cpuacct"] = str(acct)
    (tmp_path / "cpu" / "ctr" / "cpu.stat").write_text(
        "nr_periods 5\nnr_throttled 0\nthrottled_time 0\n")
    mem = tmp_path / "memory" / "ctr"
    (mem / "memory.stat").write_text("cache 8192\nrss 4096\n")
    (mem / "memory.failcnt").write_text("0\n")
    (mem / "memory.limit_in_bytes").write_text("104857600\n")
    (tmp_path / "pids" / "ctr" / "pids.current").write_text("3\n")
    (tmp_path / "pids" / "ctr" / "pids.max").write_text("max\n")
    paths["devices"] = paths["pids"]
    (tmp_path / "blkio" / "ctr" / "blkio.throttle.io_serviced_recursive").write_text(
        "254:0 Read 2\n254:0 Write 0\nTotal 2\n")
    (tmp_path / "blkio" / "ctr" / "blkio.throttle.io_service_bytes_recursive").write_text(
        "254:0 Read 8192\nTotal 8192\n")
    del paths["hugetlb"]
    s = stats_mod.collect("v1", paths, ["2MB"])
    assert list(s) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                       "network_interfaces"]
    assert s["cpu"] == {"usage": {"total": 3000, "percpu": [1000, 2000],
                                  "percpu_kernel": [600, 2000], "percpu_user": [400, 0],
                                  "kernel": 10000000, "user": 20000000},
                        "throttling": {"periods": 5}}
    assert s["cpuset"]["cpus"] == [0, 1] and "cpu_exclusive" in s["cpuset"]
    assert s["memory"]["cache"] == 8192
    assert s["memory"]["usage"] == {"limit": 104857600, "usage": 4096, "max": 8192,
                                    "failcnt": 0}
    assert s["memory"]["kernel"] == {"limit": 0, "failcnt": 0}     # no kmem files here
    assert s["memory"]["raw"] == {"cache": 8192, "rss": 4096}
    assert s["pids"] == {"current": 3}                                # "max" -> omitted
    assert s["blkio"] == {"ioServiceBytesRecursive": [
        {"major": 254, "op": "Read", "value": 8192}], "ioServicedRecursive": [
        {"major": 254, "op": "Read", "value": 2}, {"major": 254, "op": "Write"}]}
    assert s["hugetlb"] == {} and s["intel_rdt"] == {} and s["network_interfaces"] is None
    line = cgroup_ops._line({"type": "stats", "id": "x", "data": s})
    assert line.startswith('{"type":"stats","id":"x","data":{"cpu":{"usage":{"total":3000,')
    assert line.endswith("}\n") and " " not in line


def test_stats_v2_shape(tmp_path):
    paths = fake_v2(tmp_path, {
        "memory.stat": "anon 4096\nfile 8192\n", "memory.current": "12288",
        "memory.max": "max", "memory.swap.current": "0", "memory.swap.max": "0",
        "pids.current": "2", "pids.max": "10",
        "cpu.stat": "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 0\n",
        "io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0\n",
        "hugetlb.2MB.current": "0", "hugetlb.2MB.events": "max 3\n"})
    s = stats_mod.collect("v2", paths, ["2MB"])
    assert s["cpu"] == {"usage": {"total": 5000, "kernel": 2000, "user": 3000},
                        "throttling": {}}
    assert s["memory"]["usage"] == {"limit": 2 ** 64 - 1, "usage": 12288, "failcnt": 0}
    assert s["memory"]["swap"] == {"limit": 2 ** 64 - 1, "usage": 12288, "failcnt": 0}
    assert s["memory"]["cache"] == 8192
    assert s["pids"] == {"current": 2, "limit": 10}
    assert s["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "op": "Read", "value": 10}, {"major": 8, "op": "Write", "value": 20}]
    assert s["hugetlb"] == {"2MB": {"failcnt": 3}}
    assert s["cpuset"] == {"cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0,
                           "memory_migrate": 0, "memory_spread_page": 0,
                           "memory_spread_slab": 0, "memory_pressure": 0,
                           "sched_load_balance": 0, "sched_relax_domain_level": 0}


def test_stats_of_a_gone_cgroup_is_an_error(tmp_path):
    with pytest.raises(CgroupError):
        stats_mod.collect("v2", {"": str(tmp_path / "gone")})


# --- update flags, durations, ps -----------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("100m", 100 << 20), ("1g", 1 << 30), ("1G", 1 << 30), ("512", 512), ("1.5k", 1536),
    ("10MiB", 10 << 20), ("2kb", 2048), ("-1", -1), ("1 m", 1 << 20)])
def test_ram_in_bytes(text, value):
    assert cgroup_ops.ram_in_bytes(text) == value


@pytest.mark.parametrize("text", ["abc", "-5", "1x", "", "m"])
def test_ram_in_bytes_errors(text):
    with pytest.raises(ValueError) as e:
        cgroup_ops.ram_in_bytes(text)
    assert str(e.value) == f"invalid size: '{text}'"


def test_resources_from_flags():
    r = cgroup_ops.resources_from_flags(memory="100m", memory_swap="-1",
                                        memory_reservation="50m", cpu_quota="-1",
                                        cpu_period="100000", cpu_share="512",
                                        cpu_rt_runtime="1000", cpuset_cpus="0",
                                        blkio_weight=300, pids_limit=0)
    assert r == {"memory": {"limit": 100 << 20, "swap": -1, "reservation": 50 << 20},
                 "cpu": {"period": 100000, "shares": 512, "quota": -1,
                         "realtimeRuntime": 1000, "cpus": "0"},
                 "blockIO": {"weight": 300}, "pids": {"limit": 0}}
    assert cgroup_ops.resources_from_flags() == {}
    with pytest.raises(PyruncError) as e:
        cgroup_ops.resources_from_flags(memory="lots")
    assert str(e.value) == "invalid value for memory: invalid size: 'lots'"
    with pytest.raises(PyruncError) as e:
        cgroup_ops.resources_from_flags(cpu_period="-5")
    assert str(e.value).startswith("invalid value for cpu-period: strconv.ParseUint")


@pytest.mark.parametrize("text, seconds", [
    ("5s", 5), ("1m30s", 90), ("500ms", 0.5), ("1.5h", 5400), ("0", 0), ("250us", 0.00025),
    ("-1s", -1)])
def test_parse_duration(text, seconds):
    assert cgroup_ops.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, message", [("5", "missing unit"), ("abc", "invalid duration"),
                                           ("", "invalid duration"), ("5x", "invalid")])
def test_parse_duration_errors(text, message):
    with pytest.raises(ValueError) as e:
        cgroup_ops.parse_duration(text)
    assert message in str(e.value)


def test_ps_table_filters_by_pid_column():
    out = cgroup_ops.ps_table([os.getpid()], ["-o", "user,pid,comm"])
    lines = out.splitlines()
    assert lines[0].split() == ["USER", "PID", "COMMAND"]
    assert len(lines) == 2 and lines[1].split()[1] == str(os.getpid())
    assert cgroup_ops.ps_table([], []).count("\n") == 1        # header only, -ef
    with pytest.raises(PyruncError) as e:
        cgroup_ops.ps_table([1], ["-o", "comm"])
    assert str(e.value) == "couldn't find PID field in ps output"
    with pytest.raises(PyruncError) as e:
        cgroup_ops.ps_table([1], ["--no-such-option"])
    assert str(e.value).startswith("exit status ")


def test_load_resources_errors(tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text("{oops")
    with pytest.raises(PyruncError) as e:
        cgroup_ops.load_resources(str(bad))
    assert str(e.value).startswith(f"invalid JSON in {bad}: ")
    bad.write_text("[]")
    with pytest.raises(ConfigError):
        cgroup_ops.load_resources(str(bad))
    with pytest.raises(PyruncError) as e:
        cgroup_ops.load_resources(str(tmp_path / "missing"))
    assert "no such file or directory" in str(e.value)
    bad.write_text(json.dumps({"pids": {"limit": 5}}))
    assert cgroup_ops.load_resources(str(bad)) == {"pids": {"limit": 5}}
