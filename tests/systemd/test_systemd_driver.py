"""pyrunc --systemd-cgroup with real containers, inside a guest whose PID 1 is
systemd (CGROUP2_VM_INIT=systemd cgroup2-vm, pure cgroup v2): the unit systemd
makes, its properties (`systemctl show`) and the cgroup files, annotations,
update, pause/resume, exec, delete, daemon-reload, and failure paths that must
leave no unit, cgroup or state behind."""
import json
import os
import signal
import subprocess
import time

import pytest

import sdlib

MB = 1 << 20

pytestmark = pytest.mark.usefixtures("systemd_up")


def cat(d: str, name: str) -> str:
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def has_file(d: str, name: str) -> bool:
    return os.path.exists(os.path.join(d, name))


RESOURCES = {
    "memory": {"limit": 64 * MB, "reservation": 16 * MB, "swap": 128 * MB},
    "cpu": {"shares": 512, "quota": 25000, "period": 100000, "cpus": "0", "mems": "0"},
    "pids": {"limit": 50},
    "blockIO": {"weight": 500},
    "unified": {"memory.high": str(48 * MB)},
}


def expected_files(d: str) -> dict:
    want = {"memory.max": str(64 * MB), "memory.low": str(16 * MB),
            "memory.high": str(48 * MB), "cpu.weight": "20", "cpu.max": "25000 100000",
            "pids.max": "50", "cpuset.cpus": "0", "cpuset.mems": "0"}
    if has_file(d, "memory.swap.max"):
        want["memory.swap.max"] = str(64 * MB)       # memory+swap 128M - memory 64M
    if has_file(d, "io.weight"):
        want["io.weight"] = "default 4950"           # blkio 500 -> io 1 + 490*9999/990
    return want


def files(d: str, names) -> dict:
    return {n: cat(d, n) for n in names}


def test_run_makes_a_scope_with_every_resource_and_daemon_reload_keeps_them(sd):
    cid = sd.run_d(sd.bundle(RESOURCES))
    unit = sd.unit(cid)
    shown = sdlib.show(unit, "ActiveState", "Slice", "ControlGroup", "Delegate",
                       "DefaultDependencies", "MemoryAccounting", "CPUAccounting",
                       "IOAccounting", "TasksAccounting", "MemoryMax", "MemoryLow",
                       "MemoryHigh", "MemorySwapMax", "CPUWeight", "CPUQuotaPerSecUSec",
                       "CPUQuotaPeriodUSec", "AllowedCPUs", "AllowedMemoryNodes", "TasksMax",
                       "IOWeight", "DevicePolicy", "DeviceAllow", "Description")
    assert shown["ActiveState"] == "active"
    assert shown["Slice"] == "system.slice"
    assert shown["ControlGroup"] == f"/system.slice/{unit}"
    assert shown["Description"] == f"libcontainer container {cid}"
    for key in ("Delegate", "MemoryAccounting", "CPUAccounting", "IOAccounting",
                "TasksAccounting"):
        assert shown[key] == "yes", key
    assert shown["DefaultDependencies"] == "no"
    assert shown["MemoryMax"] == str(64 * MB)
    assert shown["MemoryLow"] == str(16 * MB)
    assert shown["MemoryHigh"] == str(48 * MB)
    assert shown["MemorySwapMax"] == str(64 * MB)
    assert shown["CPUWeight"] == "20"                # shares 512 -> weight, as runc
    assert shown["CPUQuotaPerSecUSec"] == "250ms"
    assert shown["CPUQuotaPeriodUSec"] == "100ms"
    assert shown["AllowedCPUs"] == "0" and shown["AllowedMemoryNodes"] == "0"
    assert shown["TasksMax"] == "50"
    assert shown["IOWeight"] == "4950"
    assert shown["DevicePolicy"] == "strict"
    assert "/dev/char/1:3 rwm" in shown["DeviceAllow"]        # /dev/null, a default
    d = sdlib.unit_cgroup(unit)
    assert sd.state_cgroup(cid)["path"] == d
    state = json.loads(sd.ok("state", cid).stdout)
    assert str(state["pid"]) in cat(d, "cgroup.procs").split()
    want = expected_files(d)
    assert files(d, want) == want
    # systemd re-applies unit properties on daemon-reload: what it knows must
    # be what we wrote
    assert sdlib.systemctl("daemon-reload").returncode == 0
    time.sleep(0.5)
    assert files(d, want) == want
    assert sdlib.show(unit, "ActiveState")["ActiveState"] == "active"
    # and systemd's own device program (DevicePolicy=strict) still lets the defaults through
    sd.ok("exec", cid, "sh", "-c", "echo x > /dev/null && head -c1 /dev/urandom > /dev/null")


def test_annotations_become_unit_properties(sd):
    cid = sd.new_id()
    b = sd.bundle(annotations={"org.systemd.property.TimeoutStopUSec": "uint64 123000000",
                               "org.systemd.property.CollectMode": "'inactive-or-failed'"})
    sd.run_d(b, cid)
    shown = sdlib.show(sd.unit(cid), "TimeoutStopUSec", "CollectMode")
    assert shown == {"TimeoutStopUSec": "2min 3s", "CollectMode": "inactive-or-failed"}


def test_bad_annotation_is_one_line_and_leaves_nothing(sd):
    cid = sd.new_id()
    b = sd.bundle(cgroups_path=f":{sd.prefix}:{cid}",
                  annotations={"org.systemd.property.TimeoutStopUSec": "uint64 -1"})
    sd.fails(b, cid, "annotations.org.systemd.property.TimeoutStopUSec")


def test_update_changes_the_unit_and_the_files(sd):
    cid = sd.run_d(sd.bundle({"memory": {"limit": 64 * MB}, "pids": {"limit": 50},
                              "cpu": {"quota": 25000, "period": 100000}}))
    unit, d = sd.unit(cid), sdlib.unit_cgroup(sd.unit(cid))
    sd.ok("update", "--memory", "128M", "--pids-limit", "80", "--cpu-quota", "50000", cid)
    shown = sdlib.show(unit, "MemoryMax", "TasksMax", "CPUQuotaPerSecUSec")
    assert shown == {"MemoryMax": str(128 * MB), "TasksMax": "80",
                     "CPUQuotaPerSecUSec": "500ms"}
    want = {"memory.max": str(128 * MB), "pids.max": "80", "cpu.max": "50000 100000"}
    assert files(d, want) == want
    assert sdlib.systemctl("daemon-reload").returncode == 0
    time.sleep(0.5)
    assert files(d, want) == want


def test_pause_resume_and_exec_join_the_scope(sd):
    cid = sd.run_d(sd.bundle())
    d = sdlib.unit_cgroup(sd.unit(cid))
    sd.ok("pause", cid)
    assert json.loads(sd.ok("state", cid).stdout)["status"] == "paused"
    assert "frozen 1" in cat(d, "cgroup.events")
    sd.ok("resume", cid)
    assert json.loads(sd.ok("state", cid).stdout)["status"] == "running"
    pid_file = sd.tmp / "exec.pid"
    process = sd.tmp / "process.json"
    process.write_text(json.dumps({"args": ["sleep", "300"], "cwd": "/", "user": {"uid": 0,
                                   "gid": 0}, "env": ["PATH=/bin:/usr/bin"]}))
    sd.ok("exec", "-d", "--pid-file", pid_file, "--process", process, cid)
    pid = pid_file.read_text().strip()
    assert pid in cat(d, "cgroup.procs").split()
    res = sd.ok("exec", cid, "cat", "/proc/self/cgroup")
    assert res.stdout.strip() == "0::/"            # in the container's cgroup namespace
    ps = sd.ok("ps", "--format", "json", cid)
    assert int(pid) in json.loads(ps.stdout)


def test_exec_joins_the_inits_sub_cgroup_when_the_scope_delegates(sd):
    # the container moves its init into a sub-cgroup and enables a controller for
    # it: its own cgroup then refuses processes (EBUSY), and exec joins the
    # init's sub-cgroup instead, as runc
    script = ("mkdir /sys/fs/cgroup/init && echo $$ > /sys/fs/cgroup/init/cgroup.procs && "
              "echo +pids > /sys/fs/cgroup/cgroup.subtree_control && exec sleep 1000")
    b = sd.bundle(args=("sh", "-c", script))
    config = json.loads((b / "config.json").read_text())
    for m in config["mounts"]:
        if m["type"] == "cgroup":
            m["options"] = [o for o in m["options"] if o != "ro"]
    if not any(ns["type"] == "cgroup" for ns in config["linux"]["namespaces"]):
        config["linux"]["namespaces"].append({"type": "cgroup"})
    (b / "config.json").write_text(json.dumps(config))
    cid = sd.run_d(b)
    d = sdlib.unit_cgroup(sd.unit(cid))
    assert sd.wait_until(lambda: "pids" in cat(d, "cgroup.subtree_control"))
    pid_file = sd.tmp / "exec.pid"
    sd.ok("exec", "-d", "--pid-file", pid_file, cid, "sleep", "300")
    assert pid_file.read_text().strip() in cat(f"{d}/init", "cgroup.procs").split()


def test_kill_and_delete_leave_no_unit(sd):
    cid = sd.run_d(sd.bundle())
    unit, d = sd.unit(cid), sdlib.unit_cgroup(sd.unit(cid))
    sd.ok("kill", cid, "KILL")
    assert sd.wait_until(lambda: json.loads(sd.ok("state", cid).stdout)["status"] == "stopped")
    sd.ok("delete", cid)
    assert sdlib.units(f"{sd.prefix}-*") == []
    assert not os.path.exists(d)
    cid2 = sd.run_d(sd.bundle())
    sd.ok("delete", "--force", cid2)
    assert sdlib.units(f"{sd.prefix}-*") == []
    assert unit not in sdlib.units("*.scope")


def test_run_in_the_foreground_and_default_cgroups_path(sd):
    # empty cgroupsPath: runc's default, system.slice:runc:<id>
    cid = sd.new_id()
    b = sd.bundle(args=("sh", "-c", "cat /proc/self/cgroup; exit 3"))
    config = json.loads((b / "config.json").read_text())
    config["linux"].pop("cgroupsPath", None)
    (b / "config.json").write_text(json.dumps(config))
    res = sd("run", "--bundle", b, cid)
    assert res.returncode == 3, res.stderr
    assert sdlib.units(f"runc-{cid}.scope") == []
    assert not os.path.exists(os.path.join(sd.root, cid))


def test_nested_slice(sd):
    cid = sd.new_id()
    parent = f"{sd.prefix}x-sub.slice"
    sd.run_d(sd.bundle(), cid, slice_=parent)
    unit = sd.unit(cid)
    try:
        assert sdlib.show(unit, "Slice")["Slice"] == parent
        assert sdlib.unit_cgroup(unit) == \
            f"/sys/fs/cgroup/{sd.prefix}x.slice/{parent}/{unit}"
        sd.ok("delete", "--force", cid)
        assert sdlib.units(unit) == []
    finally:
        sdlib.systemctl("stop", parent, f"{sd.prefix}x.slice")


def test_a_name_ending_in_slice_asks_for_a_slice_unit_as_runc(sd):
    # runc (1.5.1, tried side by side in this guest) starts a slice unit with
    # Wants=<parent> and the init's PIDs, which systemd refuses for a slice:
    # create fails in one line, and no unit is left
    cid = sd.new_id()
    unit = f"{sd.prefix}-{cid}.slice"
    line = sd.fails(sd.bundle(cgroups_path=f"system.slice:ignored:{unit}"), cid,
                    "StartTransientUnit")
    assert "PIDs" in line
    assert sdlib.units(f"{sd.prefix}-*") == []


@pytest.mark.parametrize("path, where", [
    ("bad/slice.slice:p:x", "linux.cgroupsPath"),
    ("a--b.slice:p:x", "linux.cgroupsPath"),
    ("system.slice:only-two", "linux.cgroupsPath"),
    ("notaslice:p:x", "linux.cgroupsPath"),
])
def test_bad_cgroups_path_is_one_line_and_leaves_nothing(sd, path, where):
    cid = sd.new_id()
    sd.fails(sd.bundle(cgroups_path=path), cid, where)


def test_unit_that_already_exists_is_refused_and_kept(sd):
    cid = sd.new_id()
    unit = sd.unit(cid)
    other = subprocess.Popen(["systemd-run", "--scope", f"--unit={unit}", "sleep", "300"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert sd.wait_until(lambda: sdlib.show(unit, "ActiveState")["ActiveState"]
                             == "active")
        line = sd.fails(sd.bundle(cgroups_path=f":{sd.prefix}:{cid}"), cid, unit)
        assert "exists" in line
        assert sdlib.show(unit, "ActiveState")["ActiveState"] == "active"   # not ours to stop
    finally:
        other.send_signal(signal.SIGTERM)
        other.wait(timeout=30)
        sdlib.systemctl("stop", unit)


def test_failure_after_the_unit_started_stops_it(sd):
    # systemd takes the unit; the files then refuse a unified key: create must
    # stop the unit it started
    cid = sd.new_id()
    b = sd.bundle({"unified": {"memory.nosuchfile": "1"}}, cgroups_path=f":{sd.prefix}:{cid}")
    sd.fails(b, cid, "memory.nosuchfile")
    assert sdlib.units(f"{sd.prefix}-*") == []


def test_systemd_unreachable_is_one_line_and_leaves_nothing(sd, monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
    cid = sd.new_id()
    line = sd.fails(sd.bundle(cgroups_path=f":{sd.prefix}:{cid}"), cid,
                    "systemd is not running: ")
    assert "/nonexistent/bus" in line
