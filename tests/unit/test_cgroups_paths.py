"""cgroupsPath resolution, /proc parsing, version detection, state round trip."""
import os

import pytest

from pyrunc.cgroups import CgroupManager, detect, resolve_path
from pyrunc.cgroups.common import CgroupError
from pyrunc.cgroups.manager import new_manager
from pyrunc.cgroups.paths import parse_mountinfo, parse_proc_cgroup, v1_paths, v2_path
from pyrunc.errors import ConfigError, NotSupportedError

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime shared:5 - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
42 31 0:39 / /sys/fs/cgroup/my\\040odd rw,relatime - cgroup cgroup rw,name=odd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:33 / /mnt/devices-again rw,relatime - cgroup cgroup rw,devices
"""

PROC_CGROUP = """\
9:name=systemd:/user.slice/user-0.slice/session-1.scope
6:freezer:/
5:devices:/user.slice
4:memory:/process_api/abc
3:cpuset:/
2:cpu,cpuacct:/user.slice
0::/user.slice/user-0.slice/session-1.scope
"""


@pytest.mark.parametrize("given, expected", [
    ("/pyrunc/x", "/pyrunc/x"),
    ("/a//b/./c/", "/a/b/c"),
    ("/a/../b", "/b"),
    ("machine/ctr", "machine/ctr"),
    ("a/./b/../c", "a/c"),
    (None, "ctr1"),
    ("", "ctr1"),
    ("/system.slice:docker:1", "/system.slice:docker:1"),   # absolute: a plain name
])
def test_resolve_path(given, expected):
    assert resolve_path(given, "ctr1") == expected


@pytest.mark.parametrize("bad", ["../x", "/../x", "a/../../x", "/", ".", "a/..", "x\0y"])
def test_resolve_path_rejects(bad):
    with pytest.raises(ConfigError) as e:
        resolve_path(bad, "ctr1")
    assert e.value.where == "linux.cgroupsPath"


def test_resolve_path_rejects_dotdot_id():
    with pytest.raises(ConfigError):
        resolve_path(None, "..")


@pytest.mark.parametrize("systemd", ["system.slice:docker:abc", ":runc:abc"])
def test_resolve_path_systemd_form_not_supported(systemd):
    with pytest.raises(NotSupportedError) as e:
        resolve_path(systemd, "ctr1")
    assert e.value.where == "linux.cgroupsPath"
    assert "slice:prefix:name" in str(e.value)


def test_parse_mountinfo():
    m = parse_mountinfo(HYBRID_MOUNTINFO)
    assert m["cpu"] == m["cpuacct"] == ("/sys/fs/cgroup/cpu,cpuacct", "/")
    assert m["devices"] == ("/sys/fs/cgroup/devices", "/")      # first mount wins
    assert m["name=systemd"] == ("/sys/fs/cgroup/systemd", "/")
    assert m["name=odd"] == ("/sys/fs/cgroup/my odd", "/")
    assert m["unified"] == ("/sys/fs/cgroup/unified", "/")
    assert "xattr" not in m and "rw" not in m


def test_parse_proc_cgroup():
    own = parse_proc_cgroup(PROC_CGROUP)
    assert own["cpu"] == own["cpuacct"] == "/user.slice"
    assert own["name=systemd"] == "/user.slice/user-0.slice/session-1.scope"
    assert own["unified"] == "/user.slice/user-0.slice/session-1.scope"


def test_v1_paths_absolute():
    p = v1_paths("/pyrunc/c1", HYBRID_MOUNTINFO, PROC_CGROUP)
    assert p == {
        "cpuset": "/sys/fs/cgroup/cpuset/pyrunc/c1",
        "devices": "/sys/fs/cgroup/devices/pyrunc/c1",
        "memory": "/sys/fs/cgroup/memory/pyrunc/c1",
        "cpu": "/sys/fs/cgroup/cpu,cpuacct/pyrunc/c1",
        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct/pyrunc/c1",
        "freezer": "/sys/fs/cgroup/freezer/pyrunc/c1",
        "name=systemd": "/sys/fs/cgroup/systemd/pyrunc/c1",
        "unified": "/sys/fs/cgroup/unified/pyrunc/c1",
    }


def test_v1_paths_relative_follow_own_cgroup_per_hierarchy():
    p = v1_paths("c1", HYBRID_MOUNTINFO, PROC_CGROUP)
    assert p["memory"] == "/sys/fs/cgroup/memory/process_api/abc/c1"
    assert p["devices"] == "/sys/fs/cgroup/devices/user.slice/c1"
    assert p["cpuset"] == "/sys/fs/cgroup/cpuset/c1"
    assert p["name=systemd"] == "/sys/fs/cgroup/systemd/user.slice/user-0.slice/session-1.scope/c1"
    # runc quirk: the hybrid unified hierarchy uses its root, not the own cgroup
    assert p["unified"] == "/sys/fs/cgroup/unified/c1"


def test_v1_paths_nested_mount_root():
    # a container without cgroupns: the mount root is the container's cgroup
    mi = "36 31 0:33 /docker/abc /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices\n"
    own = "5:devices:/docker/abc/inner\n"
    assert v1_paths("c1", mi, own) == {"devices": "/sys/fs/cgroup/devices/inner/c1"}


def test_v1_paths_need_devices():
    mi = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    with pytest.raises(CgroupError, match="devices"):
        v1_paths("/x", mi, "")


def test_v2_path():
    own = "0::/user.slice/user-0.slice/session-1.scope\n"
    assert v2_path("/pyrunc/c1", own) == "/sys/fs/cgroup/pyrunc/c1"
    # relative: under the *parent* of the own cgroup, as runc's fs2 does
    assert v2_path("c1", own) == "/sys/fs/cgroup/user.slice/user-0.slice/c1"
    assert v2_path("c1", "0::/\n") == "/sys/fs/cgroup/c1"
    with pytest.raises(CgroupError):
        v2_path("c1", "4:memory:/\n")


def test_detect(tmp_path):
    assert detect(str(tmp_path)) == "v1"
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert detect(str(tmp_path)) == "v2"


def test_state_round_trip_v1():
    d = {"version": "v1",
         "paths": {"devices": "/sys/fs/cgroup/devices/x", "memory": "/sys/fs/cgroup/memory/x"},
         "created": ["/sys/fs/cgroup/devices/x"]}
    m = CgroupManager.from_dict(d)
    assert m.version == "v1" and m.path == "/sys/fs/cgroup/devices/x"
    assert m.to_dict() == d
    assert CgroupManager.from_dict(m.to_dict()).to_dict() == d


def test_state_round_trip_v2():
    d = {"version": "v2", "path": "/sys/fs/cgroup/x", "created": []}
    m = CgroupManager.from_dict(d)
    assert m.path == "/sys/fs/cgroup/x"
    assert m.to_dict() == d


@pytest.mark.parametrize("bad", [{}, {"version": "v3"}, {"version": "v1"}, {"version": "v2"},
                                 {"version": "v1", "paths": 3}])
def test_state_invalid(bad):
    with pytest.raises(CgroupError):
        CgroupManager.from_dict(bad)


def test_manager_init_real_host_paths():
    # reads this process's /proc files; creates nothing
    m = new_manager("/pyrunc-unit/x", None, "x")
    assert m.version == detect()
    assert m.path.endswith("/pyrunc-unit/x")
    assert all(p.endswith("/pyrunc-unit/x") for p in m.paths.values())
    assert m.created == []


def test_manager_init_validates_before_anything():
    with pytest.raises(ConfigError) as e:
        new_manager("/x", {"memory": {"swappiness": 10}}, "x", version="v2")
    assert e.value.where == "linux.resources.memory.swappiness"


# --- create/destroy bookkeeping on a plain directory tree (no cgroupfs needed) ----------

def fake_v1(tmp_path, inner, names=("devices", "memory")):
    paths = {n: str(tmp_path / n) + inner for n in names}
    for n in names:
        (tmp_path / n).mkdir(exist_ok=True)
    return CgroupManager.from_dict({"version": "v1", "paths": paths, "created": []})


def test_create_remembers_only_what_it_made(tmp_path):
    (tmp_path / "memory" / "pre").mkdir(parents=True)
    m = fake_v1(tmp_path, "/pre/a/b")
    m.create()
    assert m.created == [f"{tmp_path}/devices/pre", f"{tmp_path}/devices/pre/a",
                         f"{tmp_path}/devices/pre/a/b",
                         f"{tmp_path}/memory/pre/a", f"{tmp_path}/memory/pre/a/b"]
    m2 = CgroupManager.from_dict(m.to_dict())
    m2.destroy()
    assert m2.created == []
    assert not (tmp_path / "devices" / "pre").exists()
    assert (tmp_path / "memory" / "pre").is_dir()           # pre-existing: kept
    assert not (tmp_path / "memory" / "pre" / "a").exists()
    m2.destroy()
    m.destroy()                                             # stale copy: fine


def test_create_rolls_back_on_failure(tmp_path):
    # cpuset dirs must get cpuset.cpus/mems from the parent; a plain directory
    # has none, so creating the cpuset one fails after others were made
    m = fake_v1(tmp_path, "/x/y", names=("devices", "cpuset"))
    with pytest.raises(CgroupError, match=f"{tmp_path}/cpuset/x/cpuset.cpus"):
        m.create()
    assert m.created == []
    assert os.listdir(tmp_path / "devices") == [] and os.listdir(tmp_path / "cpuset") == []


def test_best_effort_hierarchy_dropped(tmp_path):
    m = fake_v1(tmp_path, "/x", names=("devices", "name=systemd"))
    os.rmdir(tmp_path / "name=systemd")
    (tmp_path / "name=systemd").write_text("not a directory")
    m.create()
    assert list(m.paths) == ["devices"]
    m.destroy()


def test_destroy_reports_failures_and_keeps_them(tmp_path, monkeypatch):
    from pyrunc.cgroups import manager
    monkeypatch.setattr(manager, "RMDIR_BUDGET", 0.05)
    m = fake_v1(tmp_path, "/x")
    m.create()
    (tmp_path / "devices" / "x" / "file").write_text("")   # rmdir -> ENOTEMPTY
    with pytest.raises(CgroupError, match=f"cannot remove cgroup {tmp_path}/devices/x: "):
        m.destroy()
    assert m.created == [f"{tmp_path}/devices/x"]
    (tmp_path / "devices" / "x" / "file").unlink()
    m.destroy()
    assert m.created == []


# --- exec --cgroup ---------------------------------------------------------------------

def test_parse_sub_cgroups_as_runc():
    from pyrunc.cgroups.paths import parse_sub_cgroups
    from pyrunc.errors import UsageError
    assert parse_sub_cgroups([]) == {}
    assert parse_sub_cgroups(["sub"]) == {"": "sub"}
    assert parse_sub_cgroups(["cpu,memory:a/b", "pids:c"]) == {"cpu": "a/b", "memory": "a/b",
                                                               "pids": "c"}
    for args, needle in ((["a", "b"], "missing <controller>: prefix"),
                         ([",cpu:x"], "empty <controller> prefix"),
                         (["cpu:x", "cpu:y"], "controller cpu specified multiple times")):
        with pytest.raises(UsageError, match=needle):
            parse_sub_cgroups(args)


def test_exec_dirs_v1_and_v2():
    from pyrunc.cgroups.fs import FsManager
    from pyrunc.cgroups.fs2 import Fs2Manager
    v1 = FsManager({"cpu": "/cg/cpu/c", "memory": "/cg/memory/c", "devices": "/cg/devices/c"})
    assert v1.exec_dirs(None) == v1.paths
    assert v1.exec_dirs({"": "/s/t"}) == {k: v + "/s/t" for k, v in v1.paths.items()}
    assert v1.exec_dirs({"memory": "m"}) == {"cpu": "/cg/cpu/c", "memory": "/cg/memory/c/m",
                                             "devices": "/cg/devices/c"}
    with pytest.raises(CgroupError, match="unknown controller pids"):
        v1.exec_dirs({"pids": "x"})
    with pytest.raises(CgroupError, match="bad sub cgroup path: ../x"):
        v1.exec_dirs({"": "../x"})
    v2 = Fs2Manager({"": "/cg/c"})
    assert v2.exec_dirs({"": "a"}) == {"": "/cg/c/a"}
    assert v2.exec_dirs({"memory": "a"}) == {"": "/cg/c"}     # runc: only the plain form
    with pytest.raises(CgroupError, match="bad sub cgroup path"):
        v2.exec_dirs({"": "a/../../b"})
