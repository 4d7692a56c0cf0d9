"""The systemd cgroup driver without systemd: cgroupsPath rules, resources and
devices as unit properties (runc's conversions), annotations, and the
manager's v1/hybrid and v2 flows against a fake bus and a fake cgroup tree."""
import os

import pytest

from pyrunc.cgroups import manager as manager_mod
from pyrunc.cgroups.common import CgroupError
from pyrunc.cgroups.devices import DEFAULT_ALLOWED_DEVICES, parse_rules
from pyrunc.cgroups.fs import FsManager
from pyrunc.cgroups.fs2 import Fs2Manager
from pyrunc.cgroups.manager import load_manager, parse_resources
from pyrunc.cgroups.systemd import SystemdManager
from pyrunc.cgroups.systemd import properties as P
from pyrunc.errors import ConfigError

INF = (1 << 64) - 1


# --- names -------------------------------------------------------------------------------

def test_expand_slice_as_runc():
    assert P.expand_slice("system.slice") == "/system.slice"
    assert P.expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert P.expand_slice("-.slice") == "/"
    for bad in ("a--b.slice", "-a.slice", "a-.slice", "a/b.slice", "a.scope", ".slice"[1:]):
        with pytest.raises(ValueError):
            P.expand_slice(bad)


def test_parse_cgroups_path_rules_and_defaults():
    assert P.parse_cgroups_path("", "ctr") == ("system.slice", "runc-ctr.scope", "ctr")
    assert P.parse_cgroups_path(None, "ctr", rootless=True) == \
        ("user.slice", "runc-ctr.scope", "ctr")
    assert P.parse_cgroups_path("kubepods-besteffort.slice:cri-containerd:abc", "x") == \
        ("kubepods-besteffort.slice", "cri-containerd-abc.scope", "abc")
    assert P.parse_cgroups_path(":libpod:abc", "x") == ("system.slice", "libpod-abc.scope", "abc")
    assert P.parse_cgroups_path("machine.slice:p:my-pod.slice", "x") == \
        ("machine.slice", "my-pod.slice", "my-pod.slice")
    assert P.unit_cgroup("a-b.slice", "p-x.scope") == "/a.slice/a-b.slice/p-x.scope"
    assert P.unit_cgroup("machine.slice", "my-pod.slice") == "/my.slice/my-pod.slice"
    for bad in ("a:b", "a:b:c:d", "/abs/path", "bad.scope:p:x", "a--b.slice:p:x", "::",
                "system.slice:p:x/y"):
        with pytest.raises(ConfigError) as e:
            P.parse_cgroups_path(bad, "x")
        assert e.value.where == "linux.cgroupsPath"


# --- resources ---------------------------------------------------------------------------

def props(resources, version="v2", sd_version=252):
    spec = parse_resources(resources, version=version)
    return P.resource_properties(spec, version, sd_version)


def test_v2_resources_converted_as_runc():
    out, files = props({"memory": {"limit": 100, "reservation": 50, "swap": 300},
                        "cpu": {"shares": 1024, "quota": 50000, "period": 100000,
                                "cpus": "0-2,7", "mems": "0"},
                        "pids": {"limit": 0}, "blockIO": {"weight": 500}})
    assert dict(out) == {
        "MemoryMax": ("t", 100), "MemoryLow": ("t", 50), "MemorySwapMax": ("t", 200),
        "CPUWeight": ("t", 39), "CPUQuotaPeriodUSec": ("t", 100000),
        "CPUQuotaPerSecUSec": ("t", 500000), "TasksMax": ("t", 1),    # 0 -> 1, as runc
        "AllowedCPUs": ("ay", bytes([0b10000111])), "AllowedMemoryNodes": ("ay", b"\x01"),
        "IOWeight": ("t", 4950)}
    assert files["cpu"]["quota"] == 50000


def test_unlimited_values_are_infinity():
    out, _ = props({"memory": {"limit": -1}, "pids": {"limit": -1}, "cpu": {"quota": -1}})
    assert dict(out) == {"MemoryMax": ("t", INF), "MemorySwapMax": ("t", INF),
                         "TasksMax": ("t", INF), "CPUQuotaPerSecUSec": ("t", INF)}


def test_v1_resources_converted_as_runc():
    out, _ = props({"memory": {"limit": 100}, "cpu": {"shares": 512},
                    "blockIO": {"weight": 300, "throttleReadBpsDevice": [
                        {"major": 8, "minor": 0, "rate": 1000}],
                        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 9}]}},
                   version="v1")
    assert dict(out) == {"MemoryLimit": ("t", 100), "CPUShares": ("t", 512),
                         "BlockIOWeight": ("t", 300),
                         "BlockIOReadBandwidth": ("a(st)", [("/dev/block/8:0", 1000)])}


def test_quota_rounded_up_to_what_systemd_keeps():
    # 12345/100000 = 123450 us per s -> 130000 (whole 10 ms), quota written = 13000
    out, files = props({"cpu": {"quota": 12345, "period": 100000}})
    assert ("CPUQuotaPerSecUSec", ("t", 130000)) in out
    assert files["cpu"]["quota"] == 13000
    assert P.cpu_quota(0, 0, 252) == ([], 0)
    assert P.cpu_quota(50000, 0, 252) == ([("CPUQuotaPerSecUSec", ("t", 500000))], 50000)
    assert P.cpu_quota(50000, 200000, 241) == ([("CPUQuotaPerSecUSec", ("t", 250000))], 50000)


def test_old_systemd_gets_files_only_for_newer_properties():
    out, _ = props({"cpu": {"cpus": "1", "idle": 1}}, sd_version=239)
    assert out == []
    out, _ = props({"cpu": {"idle": 1}})
    assert dict(out) == {"CPUWeight": ("t", 0)}      # systemd's spelling of cpu.idle=1


def test_unified_keys_systemd_knows():
    out, _ = props({"unified": {"memory.high": "max", "memory.min": "10", "pids.max": "0",
                                "cpu.max": "max 50000", "cpuset.cpus": "1",
                                "io.max": "8:0 rbps=1"}})
    assert dict(out) == {"MemoryHigh": ("t", INF), "MemoryMin": ("t", 10),
                         "TasksMax": ("t", 1), "CPUQuotaPeriodUSec": ("t", 50000),
                         "CPUQuotaPerSecUSec": ("t", INF), "AllowedCPUs": ("ay", b"\x02")}
    with pytest.raises(ConfigError) as e:
        props({"unified": {"memory.high": "lots"}})
    assert e.value.where == "linux.resources.unified.memory.high"


def test_range_to_bits():
    assert P.range_to_bits("0") == b"\x01"
    assert P.range_to_bits("8") == b"\x00\x01"
    assert P.range_to_bits("0-3, 9,") == b"\x0f\x02"
    for bad in ("", "3-1", "x"):
        with pytest.raises(ValueError):
            P.range_to_bits(bad)


# --- devices -----------------------------------------------------------------------------

def test_device_rules_become_an_allow_list():
    rules = parse_rules([{"allow": False, "access": "rwm"}] + list(DEFAULT_ALLOWED_DEVICES)
                        + [{"allow": True, "type": "b", "major": 8, "access": "r"},
                           {"allow": True, "type": "c", "minor": 1, "access": "r"}])
    out = P.device_properties(rules, 252)
    assert out[0] == ("DeviceAllow", ("a(ss)", []))           # clear the old list first
    assert out[1] == ("DevicePolicy", ("s", "strict"))
    allow = dict(out[2][1][1])
    assert allow["/dev/char/1:3"] == "rwm" and allow["char-136"] == "rwm"
    assert allow["block-8"] == "r"
    assert not any(p.startswith("char-*") for p in allow)      # "*:1": left to the files
    assert P.device_properties(parse_rules([{"allow": True, "access": "rwm"}]), 252) == [
        ("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
    blacklist = parse_rules([{"allow": True, "access": "rwm"},
                             {"allow": False, "type": "c", "major": 1, "minor": 3,
                              "access": "rwm"}])
    assert P.device_properties(blacklist, 252) == [
        ("DeviceAllow", ("a(ss)", [])), ("DevicePolicy", ("s", "strict"))]


# --- annotations -------------------------------------------------------------------------

def test_annotations_as_runc():
    out = P.annotation_properties({
        "org.systemd.property.TimeoutStopUSec": "uint64 123000000",
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "org.systemd.property.TimeoutStopSec": "5",                 # Sec -> USec
        "org.systemd.property.Environment": "['A=1', \"B=2\"]",
        "org.systemd.property.CPUWeight": "@t 10",
        "other": "ignored"})
    assert out == [("CPUWeight", ("t", 10)),
                   ("CollectMode", ("s", "inactive-or-failed")),
                   ("Environment", ("as", ["A=1", "B=2"])),
                   ("TimeoutStopUSec", ("t", 5000000)),
                   ("TimeoutStopUSec", ("t", 123000000))]
    for key, value in (("org.systemd.property.No", "1"), ("org.systemd.property.X_y", "1"),
                       ("org.systemd.property.Foo", "uint64 -1"),
                       ("org.systemd.property.Foo", "'open"),
                       ("org.systemd.property.Foo", "[]"),
                       ("org.systemd.property.FooSec", "'text'")):
        with pytest.raises(ConfigError) as e:
            P.annotation_properties({key: value})
        assert e.value.where == f"annotations.{key}"


def test_parse_variant():
    assert P.parse_variant("true") == ("b", True)
    assert P.parse_variant("123") == ("i", 123)
    assert P.parse_variant("int64 -5") == ("x", -5)
    assert P.parse_variant("1.5") == ("d", 1.5)
    assert P.parse_variant("@as []") == ("as", [])
    assert P.parse_variant("[uint32 1, 2]") == ("au", [1, 2])
    assert P.parse_variant("'it\\'s'") == ("s", "it's")


# --- the manager against a fake bus -------------------------------------------------------

class FakeSystemd:
    def __init__(self, version=252, fail_start=None):
        self.calls = []
        self._version = version
        self.fail_start = fail_start

    def version(self):
        return self._version

    def start_transient_unit(self, unit, properties):
        self.calls.append(("start", unit, properties))
        if self.fail_start:
            raise self.fail_start

    def stop_unit(self, unit):
        self.calls.append(("stop", unit))

    def set_unit_properties(self, unit, properties):
        self.calls.append(("set", unit, properties))


V1_CONTROLLERS = ("cpuset", "devices", "memory", "cpu", "pids", "freezer", "name=systemd")


def v1_tree(tmp_path, inner="/system.slice/p-c1.scope"):
    """A hybrid host's hierarchies; systemd 'makes' the dirs of the ones it manages."""
    paths = {}
    for name in V1_CONTROLLERS:
        root = tmp_path / name
        (root / "system.slice").mkdir(parents=True)
        if name == "cpuset":
            for f in ("cpuset.cpus", "cpuset.mems"):
                (root / f).write_text("0-1\n")
                (root / "system.slice" / f).write_text("0-1\n")
        paths[name] = str(root) + inner
    return paths


def v1_manager(tmp_path, resources=None, bus=None):
    spec = parse_resources(resources or {}, version="v1")
    m = SystemdManager(FsManager(v1_tree(tmp_path)), "p-c1.scope", "system.slice", "c1",
                       spec=spec)
    m.bus = bus or FakeSystemd()
    return m


def fake_systemd_start(m):
    """What systemd does on start: the unit's directories where it manages."""
    for name, path in m.paths.items():
        if name in ("devices", "memory", "cpu", "pids", "name=systemd"):
            os.makedirs(path, exist_ok=True)
            for f in ("cgroup.procs", "memory.limit_in_bytes", "pids.max", "cpu.shares",
                      "devices.list", "devices.allow", "devices.deny"):
                open(os.path.join(path, f), "a").close()


def test_v1_create_starts_the_unit_then_joins_and_writes_the_rest(tmp_path, monkeypatch):
    m = v1_manager(tmp_path, {"memory": {"limit": 1 << 20}, "pids": {"limit": 10},
                              "cpu": {"cpus": "1"}})
    bus = m.bus
    orig = bus.start_transient_unit
    monkeypatch.setattr(bus, "start_transient_unit",
                        lambda unit, p: (orig(unit, p), fake_systemd_start(m)))
    written = []
    monkeypatch.setattr("pyrunc.cgroups.common.Target.write",
                        lambda self, field, ctrl, file, value: written.append((ctrl, file, value)))
    applied, copied = [], []
    monkeypatch.setattr(FsManager, "apply_devices", lambda self, rules: applied.append(rules))
    monkeypatch.setattr("pyrunc.cgroups.fs.cpuset_copy", copied.append)
    monkeypatch.setattr("pyrunc.cgroups.systemd.write_pid",      # a plain directory tree
                        lambda d, pid: open(os.path.join(d, "cgroup.procs"), "w").write(str(pid)))
    m.create()
    assert bus.calls == []                                      # nothing before a pid
    rules = parse_rules(list(DEFAULT_ALLOWED_DEVICES))
    m.apply_devices(rules)
    m.apply_resources(creating=True)
    m.add_process(4242)
    (kind, unit, start), = bus.calls
    assert (kind, unit) == ("start", "p-c1.scope")
    d = dict(start)
    assert d["PIDs"] == ("au", [4242]) and d["Slice"] == ("s", "system.slice")
    assert d["Delegate"] == ("b", True) and d["DefaultDependencies"] == ("b", False)
    assert d["BlockIOAccounting"] == ("b", True) and "IOAccounting" not in d
    assert d["MemoryLimit"] == ("t", 1 << 20) and d["TasksMax"] == ("t", 10)
    assert d["DevicePolicy"] == ("s", "strict")
    # hierarchies systemd does not manage: made and joined by us, cpuset copied down
    for name in ("cpuset", "freezer"):
        assert open(os.path.join(m.paths[name], "cgroup.procs")).read() == "4242"
    assert m.created == [m.paths["cpuset"], m.paths["freezer"]]
    assert copied[-1] == m.paths["cpuset"]
    assert applied == [rules]
    assert ("memory", "memory.limit_in_bytes", str(1 << 20)) in written
    assert ("pids", "pids.max", "10") in written
    assert ("cpuset", "cpuset.cpus", "1") in written
    saved = m.to_dict()
    assert saved["driver"] == "systemd" and saved["unit"] == "p-c1.scope"
    again = load_manager(saved)
    assert isinstance(again, SystemdManager) and again.started and again.version == "v1"
    again.bus = bus
    for name in ("cpuset", "freezer"):                 # cgroupfs files go with the dir
        os.unlink(os.path.join(m.paths[name], "cgroup.procs"))
    again.destroy()
    assert bus.calls[-1] == ("stop", "p-c1.scope")
    assert not os.path.exists(m.paths["freezer"]) and not os.path.exists(m.paths["cpuset"])


def test_v1_update_freezes_around_device_properties(tmp_path, monkeypatch):
    m = v1_manager(tmp_path)
    m.started = True
    fake_systemd_start(m)
    os.makedirs(m.paths["freezer"])
    (tmp_path / "freezer" / "system.slice" / "p-c1.scope" / "freezer.state").write_text("THAWED")
    states = []
    monkeypatch.setattr(SystemdManager, "_set_frozen",
                        lambda self, frozen: states.append(frozen) or True)
    monkeypatch.setattr(FsManager, "apply_devices", lambda self, rules: None)
    m.apply_devices(parse_rules(list(DEFAULT_ALLOWED_DEVICES)))
    assert states == [True, False] and m.bus.calls[0][0] == "set"     # frozen, set, thawed


def test_failed_start_leaves_nothing_and_stops_nothing(tmp_path):
    from pyrunc.cgroups.systemd.dbus import SystemdError
    bus = FakeSystemd(fail_start=SystemdError("systemd unit p-c1.scope already exists",
                                              "org.freedesktop.systemd1.UnitExists"))
    m = v1_manager(tmp_path, bus=bus)
    with pytest.raises(CgroupError, match="already exists"):
        m.add_process(1)
    m.destroy()
    assert [c[0] for c in bus.calls] == ["start"]              # not ours: never stopped
    assert m.created == []


def test_v2_update_sets_properties_from_the_effective_resources(tmp_path, monkeypatch):
    d = tmp_path / "system.slice" / "p-c1.scope"
    d.mkdir(parents=True)
    m = SystemdManager(Fs2Manager({"": str(d)}), "p-c1.scope", "system.slice", "c1",
                       started=True)
    m.bus = FakeSystemd()
    written = []
    monkeypatch.setattr("pyrunc.cgroups.common.Target.write",
                        lambda self, field, ctrl, file, value: written.append((file, value)))
    change = parse_resources({"cpu": {"quota": 12345}}, version="v2")
    effective = parse_resources({"cpu": {"quota": 12345, "period": 100000},
                                 "memory": {"limit": 1 << 20}}, version="v2")
    m.apply_resources(change, context=effective)
    (kind, _unit, set_props), = m.bus.calls
    assert dict(set_props)["MemoryMax"] == ("t", 1 << 20)
    assert dict(set_props)["CPUQuotaPerSecUSec"] == ("t", 130000)
    assert written == [("cpu.max", "13000 100000")]             # the rounded quota


def test_rootless_v1_is_refused(monkeypatch):
    with pytest.raises(ConfigError, match="needs cgroup v2"):
        SystemdManager.for_config(":p:x", "x", {}, "v1", {}, rootless=True)


def test_systemd_absent_is_one_line(monkeypatch):
    from pyrunc.cgroups.systemd import dbus
    monkeypatch.setattr(dbus, "booted_with_systemd", lambda: True)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
    with pytest.raises(dbus.SystemdUnavailable) as e:
        dbus.Systemd.connect()
    assert str(e.value).startswith("systemd is not running: cannot connect to the system bus")
    assert "\n" not in str(e.value)
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    with pytest.raises(dbus.SystemdUnavailable, match="no session bus"):
        dbus.Systemd.connect(user=True)


def test_fs_create_does_not_import_the_dbus_library():
    import subprocess
    import sys
    code = ("import sys; import pyrunc.container.create, pyrunc.cgroups.manager; "
            "print('jeepney' in sys.modules, 'pyrunc.cgroups.systemd' in sys.modules)")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
    assert manager_mod.CgroupManager.driver == ""
