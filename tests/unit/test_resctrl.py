"""linux.intelRdt against a fake resctrl tree (this machine has no resctrl):
which group, what is written to schemata/tasks, what delete removes."""
import os

import pytest

from pyrunc.cgroups import resctrl
from pyrunc.errors import ConfigError, ContainerStartError


class FakeResctrlOs:
    """os, but mkdir/rmdir of a group behave as on resctrl: a new CLOS group
    comes with schemata, tasks and mon_groups/, a MON group with tasks, and
    rmdir takes the kernel's files with it."""

    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def mkdir(path, mode=0o777):
        os.mkdir(path, mode)
        mon = os.path.basename(os.path.dirname(path)) == "mon_groups"
        for name in ("tasks",) if mon else ("schemata", "tasks"):
            open(os.path.join(path, name), "a").close()
        if not mon:
            os.mkdir(os.path.join(path, "mon_groups"))

    @staticmethod
    def rmdir(path):
        for name in ("schemata", "tasks"):
            if os.path.isfile(os.path.join(path, name)):
                os.remove(os.path.join(path, name))
        if os.path.isdir(os.path.join(path, "mon_groups")):
            os.rmdir(os.path.join(path, "mon_groups"))
        os.rmdir(path)


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A resctrl mount as the kernel shows it: info/{L3,MB,L3_MON}, root files."""
    r = tmp_path / "resctrl"
    for d in ("info/L3", "info/MB", "info/L3_MON"):
        (r / d).mkdir(parents=True)
    (r / "info" / "last_cmd_status").write_text("ok\n")
    (r / "schemata").write_text("L3:0=fff\nMB:0=100\n")
    (r / "tasks").write_text("")
    monkeypatch.setattr(resctrl, "os", FakeResctrlOs())
    return str(r)


def read(path, name):
    with open(os.path.join(path, name)) as f:
        return f.read()


def test_find_root(tmp_path):
    mi = tmp_path / "mountinfo"
    mi.write_text("22 1 0:21 / /sys rw shared:7 - sysfs sysfs rw\n"
                  "40 22 0:35 / /sys/fs/resctrl rw,relatime shared:20 - resctrl resctrl rw\n")
    assert resctrl.find_root(str(mi)) == "/sys/fs/resctrl"
    mi.write_text("22 1 0:21 / /sys rw shared:7 - sysfs sysfs rw\n")
    assert resctrl.find_root(str(mi)) is None


def test_not_mounted_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(resctrl, "find_root", lambda: None)
    with pytest.raises(ConfigError) as ei:
        resctrl.parse({"closID": "x"}, "c1")
    assert ei.value.where == "linux.intelRdt" and "resctrl is not mounted" in ei.value.message


def test_group_named_after_the_container(root):
    plan = resctrl.parse({"l3CacheSchema": "L3:0=f0", "memBwSchema": "MB:0=20",
                          "schemata": ["L2:0=f", "MB:0=30"]}, "c1", root)
    state = resctrl.apply(plan, 4242)
    path = os.path.join(root, "c1")
    assert state == {"root": root, "path": path, "created": True, "mon_path": None}
    # l3CacheSchema first, memBwSchema next, then schemata (the spec's order)
    assert read(path, "schemata") == "L3:0=f0\nMB:0=20\nL2:0=f\nMB:0=30\n"
    assert read(path, "tasks") == "4242"
    resctrl.destroy(state)
    assert not os.path.exists(path)


def test_clos_id_group_is_created_and_kept(root):
    plan = resctrl.parse({"closID": "gold", "schemata": ["L3:0=f"]}, "c1", root)
    state = resctrl.apply(plan, 7)
    assert read(os.path.join(root, "gold"), "schemata") == "L3:0=f\n"
    resctrl.destroy(state)   # closID set: not ours to remove
    assert os.path.isdir(os.path.join(root, "gold"))


def test_clos_id_without_schemata_must_exist(root):
    plan = resctrl.parse({"closID": "preset"}, "c1", root)
    with pytest.raises(ContainerStartError) as ei:
        resctrl.apply(plan, 7)
    assert ei.value.where == "linux.intelRdt.closID"
    FakeResctrlOs.mkdir(os.path.join(root, "preset"))
    state = resctrl.apply(plan, 7)
    assert read(os.path.join(root, "preset"), "tasks") == "7"
    assert read(os.path.join(root, "preset"), "schemata") == ""  # nothing written
    assert state["created"] is False


def test_default_clos(root):
    """closID "/": the root group; nothing created, nothing removed."""
    plan = resctrl.parse({"closID": "/"}, "c1", root)
    state = resctrl.apply(plan, 9)
    assert state["path"] == root and read(root, "tasks") == "9"
    resctrl.destroy(state)
    assert os.path.isdir(root)


def test_existing_group_not_created_not_removed(root):
    FakeResctrlOs.mkdir(os.path.join(root, "c1"))
    state = resctrl.apply(resctrl.parse({"schemata": ["L3:0=1"]}, "c1", root), 1)
    assert state["created"] is False
    resctrl.destroy(state)
    assert os.path.isdir(os.path.join(root, "c1"))


def test_monitoring_group(root):
    plan = resctrl.parse({"enableMonitoring": True}, "c1", root)
    state = resctrl.apply(plan, 11)
    mon = os.path.join(root, "c1", "mon_groups", "c1")
    assert state["mon_path"] == mon and read(mon, "tasks") == "11"
    resctrl.add_exec_task(state, 12)   # exec: both groups
    assert read(mon, "tasks") == "12" and read(os.path.join(root, "c1"), "tasks") == "12"
    resctrl.destroy(state)
    assert not os.path.exists(mon) and not os.path.exists(os.path.join(root, "c1"))


@pytest.mark.parametrize("cfg,where", [
    ({"closID": ".."}, "linux.intelRdt.closID"),
    ({"closID": "a/b"}, "linux.intelRdt.closID"),
    ({"schemata": ["L3:0=f\nMB:0=1"]}, "linux.intelRdt"),
])
def test_refused(root, cfg, where):
    with pytest.raises(ConfigError) as ei:
        resctrl.parse(cfg, "c1", root)
    assert ei.value.where == where


@pytest.mark.parametrize("key,info", [("l3CacheSchema", "L3"), ("memBwSchema", "MB"),
                                      ("enableMonitoring", "L3_MON")])
def test_feature_the_host_lacks(root, key, info):
    os.rmdir(os.path.join(root, "info", info))
    with pytest.raises(ConfigError) as ei:
        resctrl.parse({key: True if key == "enableMonitoring" else f"{info}:0=1"}, "c1", root)
    assert ei.value.where == f"linux.intelRdt.{key}"


def test_kernel_refusal_reports_last_cmd_status(root):
    plan = resctrl.parse({"schemata": ["L3:0=f"]}, "c1", root)
    group = os.path.join(root, "c1")
    FakeResctrlOs.mkdir(group)
    os.chmod(os.path.join(group, "schemata"), 0o400)
    if os.access(os.path.join(group, "schemata"), os.W_OK):
        os.remove(os.path.join(group, "schemata"))
        os.mkdir(os.path.join(group, "schemata"))  # root writes anything: make it a directory
    (__import__("pathlib").Path(root) / "info" / "last_cmd_status").write_text("Invalid CBM\n")
    with pytest.raises(ContainerStartError) as ei:
        resctrl.apply(plan, 1)
    assert "last_cmd_status: Invalid CBM" in ei.value.message


def test_update_schemata(root, monkeypatch):
    monkeypatch.setattr(resctrl, "find_root", lambda: root)
    cfg = {"l3CacheSchema": "L3:0=f", "memBwSchema": "MB:0=20"}
    state = resctrl.apply(resctrl.parse(cfg, "c1", root), 1)
    resctrl.update_schemata(state, cfg, "", "MB:0=50")
    assert read(state["path"], "schemata") == "L3:0=f\nMB:0=50\n"
    with pytest.raises(ContainerStartError) as ei:
        resctrl.update_schemata(None, None, "L3:0=1", "")
    assert "non-existent Intel RDT configuration" in ei.value.message


def test_features(root, monkeypatch):
    monkeypatch.setattr(resctrl, "find_root", lambda: root)
    assert resctrl.features() == {"enabled": True, "schemata": True, "monitoring": True}
    monkeypatch.setattr(resctrl, "find_root", lambda: None)
    assert resctrl.features() == {"enabled": False, "schemata": False, "monitoring": False}
