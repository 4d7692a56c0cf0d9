"""cgroup behaviour as runc 1.5's, with real containers on the cgroupfs v1
driver (this host; tests/cgroup2/test_cgroup2_parity.py has the v2 side):
joining an existing cgroup (frozen: refused; frozen ancestor: refused; in
use: refused), the device rules every container gets, cpuset parents that
exist but are empty, pids.limit 0 and cpu.burst.

Runtime-neutral: with PYRUNC=/opt/ref/runc-1.5.1/runc the same tests run
against runc (the frozen-parent case skips there: runc hangs)."""
import errno
import os
import signal
import subprocess
import time

import pytest

from pyrunc.cgroups import detect

ROOT = "/sys/fs/cgroup"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(detect() != "v1", reason="the cgroup v1 driver (v2: tests/cgroup2)"),
]


def cat(*parts: str) -> str:
    with open(os.path.join(*parts)) as f:
        return f.read().strip()


def put(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def runtime_is_runc(pyrunc) -> bool:
    return os.path.basename(pyrunc.binary) == "runc"


class PreMade:
    """cgroup directories a test makes before the runtime runs (as another
    tool would), removed again at the end, deepest first."""

    def __init__(self):
        self.dirs: list[str] = []

    def make(self, hierarchy: str, inner: str) -> str:
        d = os.path.join(ROOT, hierarchy, inner.strip("/"))
        missing = []
        cur = d
        while not os.path.isdir(cur):
            missing.append(cur)
            cur = os.path.dirname(cur)
        for m in reversed(missing):
            os.mkdir(m)
            self.dirs.append(m)
        return d

    def remove(self) -> None:
        for d in sorted(self.dirs, key=len, reverse=True):
            freezer = os.path.join(d, "freezer.state")
            if os.path.exists(freezer):
                put(freezer, "THAWED")
            for pid in cat(d, "cgroup.procs").split() if os.path.isdir(d) else ():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while os.path.isdir(d):
                try:
                    os.rmdir(d)
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)


@pytest.fixture
def premade():
    p = PreMade()
    yield p
    p.remove()


def assert_nothing_made(pyrunc, cid: str, inner: str) -> None:
    assert not os.path.exists(os.path.join(pyrunc.root, cid)), "state dir left"
    for h in ("devices", "memory", "pids", "cpu", "cpuset", "freezer"):
        assert not os.path.exists(os.path.join(ROOT, h, inner.strip("/"))), \
            f"cgroup made in {h}"


# --- joining an existing cgroup ------------------------------------------------------------

def test_create_in_a_frozen_cgroup_is_refused_not_hung(pyrunc, bundle, premade):
    cid = pyrunc.new_id()
    inner = f"/{cid}"
    premade.make("devices", inner)
    freezer = premade.make("freezer", inner)
    put(os.path.join(freezer, "freezer.state"), "FROZEN")
    bundle.linux["cgroupsPath"] = inner
    started = time.monotonic()
    for cmd in ("create", "run"):
        _, res = pyrunc.create(bundle, cid=cid, check=False) if cmd == "create" else \
            (None, pyrunc.run(bundle, "-d", cid=cid))
        pyrunc.one_line_error(res, "container's cgroup unexpectedly frozen")
        assert res.returncode == 1
        assert not os.path.exists(os.path.join(pyrunc.root, cid))
        assert cat(freezer, "cgroup.procs") == ""
        assert cat(freezer, "freezer.state") == "FROZEN"     # left as the owner made it
    assert time.monotonic() - started < 10
    for h in ("memory", "pids", "cpu"):                       # nothing made elsewhere
        assert not os.path.exists(os.path.join(ROOT, h, cid))


def test_create_under_a_frozen_parent_is_refused(pyrunc, bundle, premade):
    # runc 1.1.5 and 1.5.1 both hang here: init is born frozen in the new cgroup
    if runtime_is_runc(pyrunc):
        pytest.skip("runc hangs in this case (its init is frozen as it joins)")
    cid = pyrunc.new_id()
    parent = premade.make("freezer", f"/{cid}")
    put(os.path.join(parent, "freezer.state"), "FROZEN")
    bundle.linux["cgroupsPath"] = f"/{cid}/ctr"
    _, res = pyrunc.create(bundle, cid=cid, check=False, timeout=10)
    line = pyrunc.one_line_error(res, "is under a frozen cgroup", parent)
    assert "/ctr" in line
    assert_nothing_made(pyrunc, cid, f"/{cid}/ctr")
    # thawed, the same bundle makes a container
    put(os.path.join(parent, "freezer.state"), "THAWED")
    pyrunc.create(bundle, cid=cid)
    pyrunc.ok("delete", "--force", cid)


def test_create_in_a_cgroup_in_use_is_refused(pyrunc, bundle, premade):
    # runc 1.1 went on with a warning; runc 1.2+ refuses (opencontainers/runc#3132)
    cid = pyrunc.new_id()
    inner = f"/{cid}"
    devices = premade.make("devices", inner)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        put(os.path.join(devices, "cgroup.procs"), str(sleeper.pid))
        bundle.linux["cgroupsPath"] = inner
        _, res = pyrunc.create(bundle, cid=cid, check=False)
        pyrunc.one_line_error(res, "container's cgroup is not empty: 1 process(es) found")
        assert res.returncode == 1
        assert not os.path.exists(os.path.join(pyrunc.root, cid))
        assert sleeper.poll() is None                       # not ours: untouched
        assert cat(devices, "cgroup.procs") == str(sleeper.pid)
        for h in ("memory", "pids", "cpu", "freezer"):
            assert not os.path.exists(os.path.join(ROOT, h, cid))
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_existing_empty_cgroup_is_joined_and_kept(pyrunc, bundle, premade):
    cid = pyrunc.new_id()
    devices = premade.make("devices", f"/{cid}")
    bundle.linux["cgroupsPath"] = f"/{cid}"
    pyrunc.create(bundle, cid=cid)
    pid = pyrunc.state(cid)["pid"]
    assert cat(devices, "cgroup.procs") == str(pid)
    pyrunc.ok("delete", "--force", cid)
    if not runtime_is_runc(pyrunc):   # runc removes every cgroup path it was given
        assert os.path.isdir(devices)            # not made by the runtime: not removed
    assert not os.path.exists(os.path.join(ROOT, "memory", cid))


# --- device rules ------------------------------------------------------------------------

MKNOD = ["CAP_MKNOD"]


def with_mknod(bundle) -> None:
    caps = bundle.process["capabilities"]
    for k in ("bounding", "effective", "permitted"):
        caps[k] = sorted(set(caps[k]) | set(MKNOD))


def probe(script: str) -> list[str]:
    return ["sh", "-c", script]


def test_linux_devices_get_no_access_beyond_the_rules(pyrunc, bundle):
    """runc adds no rule for a linux.devices node: under the default deny-all
    it exists but cannot be opened; runc's allow list still holds (mknod of
    any char/block device, /dev/null & co)."""
    with_mknod(bundle)
    bundle.linux["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                "fileMode": 0o666}]
    bundle.args(*probe(
        "test -c /dev/fuse && echo node; (true </dev/fuse) 2>/dev/null && echo fuse-open;"
        "mknod /dev/c13 c 1 3 && echo mknod-c; mknod /dev/b70 b 7 0 && echo mknod-b;"
        "(true </dev/b70) 2>/dev/null && echo b70-open; echo x >/dev/null && echo null"))
    out = pyrunc.run_ok(bundle).split()
    assert out == ["node", "mknod-c", "mknod-b", "null"]


def test_linux_devices_usable_when_the_rules_allow_them(pyrunc, bundle):
    bundle.linux["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                "fileMode": 0o666}]
    bundle.linux["resources"]["devices"] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}]
    bundle.args(*probe("(true </dev/fuse) && echo fuse-open"))
    assert pyrunc.run_ok(bundle).split() == ["fuse-open"]


def test_a_linux_devices_entry_replaces_the_default_node_and_its_rule(pyrunc, bundle):
    """As runc's createDevices: a linux.devices entry at /dev/null drops the
    default /dev/null and, with it, its allow rule."""
    bundle.linux["devices"] = [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3,
                                "fileMode": 0o666}]
    bundle.args(*probe("(echo x >/dev/null) 2>/dev/null && echo null-open;"
                       "(echo x >/dev/zero) && echo zero-open"))
    res = pyrunc.run(bundle)
    if runtime_is_runc(pyrunc):
        # runc's init opens /dev/null itself (reopenDevNull) and so fails here
        assert res.returncode != 0 and "open /dev/null: operation not permitted" in res.stderr
    else:
        assert (res.returncode, res.stdout.split()) == (0, ["zero-open"]), res.stderr


def test_devices_cgroup_list_is_runcs(pyrunc, bundle):
    cid = pyrunc.new_id()
    bundle.linux["cgroupsPath"] = f"/{cid}"
    bundle.linux["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    pyrunc.create(bundle, cid=cid)
    listed = set(cat(ROOT, "devices", cid, "devices.list").splitlines())
    assert listed == {"c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm",
                      "c 5:0 rwm", "c 1:5 rwm", "c 1:9 rwm", "c 136:* rwm", "c 5:2 rwm",
                      "c 10:200 rwm"}


def test_an_allow_all_config_with_a_deny_is_not_widened(pyrunc, bundle):
    """"allow a" then "deny c 10:229": the appended "allow c *:* m" lifts no
    part of that deny (runc's emulator, the kernel), so mknod stays denied."""
    with_mknod(bundle)
    bundle.linux["resources"]["devices"] = [
        {"allow": True, "access": "rwm"},
        {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]
    bundle.args(*probe("mknod /dev/f c 10 229 2>/dev/null && echo mknod-fuse;"
                       "mknod /dev/z c 1 5 && echo mknod-zero"))
    assert pyrunc.run_ok(bundle).split() == ["mknod-zero"]


# --- cpuset ------------------------------------------------------------------------------

def test_cpuset_parent_that_exists_empty_is_filled(pyrunc, bundle, premade):
    cid = pyrunc.new_id()
    parent = premade.make("cpuset", f"/{cid}/mid")
    top = os.path.dirname(parent)
    put(os.path.join(top, "cgroup.clone_children"), "0")
    assert cat(parent, "cpuset.cpus") == "" and cat(parent, "cpuset.mems") == ""
    bundle.linux["cgroupsPath"] = f"/{cid}/mid/ctr"
    bundle.args("sh", "-c", "grep Cpus_allowed_list /proc/self/status")
    out = pyrunc.run_ok(bundle)
    root_cpus = cat(ROOT, "cpuset", "cpuset.cpus")
    assert out.split()[-1] == root_cpus
    for d in (top, parent):                   # filled top down, as runc does
        assert cat(d, "cpuset.cpus") == root_cpus
        assert cat(d, "cpuset.mems") == cat(ROOT, "cpuset", "cpuset.mems")
    assert not os.path.exists(os.path.join(parent, "ctr"))     # removed with the container


def test_cpuset_parent_filled_keeps_the_configs_cpus(pyrunc, bundle, premade):
    cid = pyrunc.new_id()
    parent = premade.make("cpuset", f"/{cid}")
    bundle.linux["cgroupsPath"] = f"/{cid}/ctr"
    bundle.linux["resources"]["cpu"] = {"cpus": "0"}
    bundle.args("sh", "-c", "grep Cpus_allowed_list /proc/self/status")
    assert pyrunc.run_ok(bundle).split()[-1] == "0"
    assert cat(parent, "cpuset.cpus") == cat(ROOT, "cpuset", "cpuset.cpus")


# --- pids.limit 0 and cpu.burst ------------------------------------------------------------

def test_pids_limit_zero_is_written_as_one(pyrunc, bundle):
    """runtime-spec 1.3: 0 is a limit; runc 1.5 writes it as 1 (systemd cannot
    take 0): the container's process runs, but cannot fork."""
    cid = pyrunc.new_id()
    bundle.linux["cgroupsPath"] = f"/{cid}"
    bundle.linux["resources"]["pids"] = {"limit": 0}
    bundle.args("sh", "-c", "read m </sys/fs/cgroup/pids/pids.max; echo $m; echo $(echo sub)")
    res = pyrunc.run(bundle, cid=cid)
    assert res.stdout.split() == ["1"], res.stderr
    assert "can't fork" in res.stderr and res.returncode != 0


def test_pids_without_a_limit_and_negative_limits(pyrunc, bundle):
    cid = pyrunc.new_id()
    bundle.linux["cgroupsPath"] = f"/{cid}"
    bundle.linux["resources"]["pids"] = {}          # 1.3: limit is optional
    pyrunc.create(bundle, cid=cid)
    assert cat(ROOT, "pids", cid, "pids.max") == "max"
    pyrunc.ok("update", "--pids-limit", "0", cid)
    assert cat(ROOT, "pids", cid, "pids.max") == "1"
    pyrunc.ok("update", "--pids-limit", "-1", cid)
    assert cat(ROOT, "pids", cid, "pids.max") == "max"


def test_cpu_burst_without_a_quota(pyrunc, bundle):
    if not os.path.exists(os.path.join(ROOT, "cpu", "cpu.cfs_burst_us")):
        pytest.skip("this kernel has no cpu.cfs_burst_us")
    cid = pyrunc.new_id()
    bundle.linux["cgroupsPath"] = f"/{cid}"
    bundle.linux["resources"]["cpu"] = {"burst": 5000}
    pyrunc.create(bundle, cid=cid)
    d = os.path.join(ROOT, "cpu", cid)
    assert (cat(d, "cpu.cfs_burst_us"), cat(d, "cpu.cfs_quota_us")) == ("5000", "-1")


def test_cpu_burst_above_the_quota_fails_cleanly(pyrunc, bundle):
    cid = pyrunc.new_id()
    bundle.linux["cgroupsPath"] = f"/{cid}"
    bundle.linux["resources"]["cpu"] = {"quota": 10000, "burst": 20000}
    _, res = pyrunc.create(bundle, cid=cid, check=False)
    assert res.returncode != 0 and len(res.stderr.splitlines()) == 1, res.stderr
    assert_nothing_made(pyrunc, cid, f"/{cid}")


def test_update_cpu_burst(pyrunc, bundle):
    if not os.path.exists(os.path.join(ROOT, "cpu", "cpu.cfs_burst_us")):
        pytest.skip("this kernel has no cpu.cfs_burst_us")
    cid = pyrunc.new_id()
    bundle.linux["cgroupsPath"] = f"/{cid}"
    pyrunc.create(bundle, cid=cid)
    d = os.path.join(ROOT, "cpu", cid)
    pyrunc.ok("update", "--cpu-quota", "20000", "--cpu-burst", "7000", cid)
    assert (cat(d, "cpu.cfs_quota_us"), cat(d, "cpu.cfs_burst_us")) == ("20000", "7000")
    pyrunc.ok("update", "--cpu-burst", "0", cid)
    assert cat(d, "cpu.cfs_burst_us") == "0"
    res = pyrunc("update", "--cpu-burst", "x", cid)
    assert res.returncode != 0 and "invalid value for cpu-burst" in res.stderr
    res = pyrunc("update", "--cpu-burst", "30000", cid)           # above the quota
    assert res.returncode != 0 and "cpu" in res.stderr
    if not runtime_is_runc(pyrunc):           # runc adds a warning line before it
        assert len(res.stderr.splitlines()) == 1, res.stderr
    assert cat(d, "cpu.cfs_burst_us") == "0"


# --- exec --cgroup ---------------------------------------------------------------------

def proc_cgroups(pid: int) -> dict[str, str]:
    out = {}
    for line in cat(f"/proc/{pid}/cgroup").splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(","):
            out[c] = path
    return out


def exec_pid(pyrunc, cid: str, *flags: str) -> int:
    pid_file = os.path.join(pyrunc.tmp, f"exec-{time.monotonic_ns()}.pid")
    pyrunc.ok("exec", "-d", "--pid-file", pid_file, *flags, cid, "sleep", "100")
    return int(cat(pid_file))


@pytest.fixture
def running(pyrunc, bundle):
    """A running container in /<cid>, with a sub-cgroup "sub" made in each of
    its hierarchies (as a user of `exec --cgroup` makes it)."""
    cid = pyrunc.new_id()
    bundle.linux["cgroupsPath"] = f"/{cid}"
    pyrunc.create(bundle, cid=cid)
    pyrunc.ok("start", cid)
    init = proc_cgroups(pyrunc.state(cid)["pid"])
    key = {"systemd": "name=systemd", "unified": ""}
    hierarchies = [h for h in os.listdir(ROOT) if init.get(key.get(h, h)) == f"/{cid}"]
    for h in hierarchies:
        os.mkdir(os.path.join(ROOT, h, cid, "sub"))
        if h == "cpuset":                      # else no task may join it
            for f in ("cpuset.cpus", "cpuset.mems"):
                put(os.path.join(ROOT, h, cid, "sub", f), cat(ROOT, h, cid, f))
    return cid, hierarchies


def test_exec_cgroup_one_sub_cgroup_for_all(pyrunc, running):
    cid, hierarchies = running
    pid = exec_pid(pyrunc, cid, "--cgroup", "sub")
    cg = proc_cgroups(pid)
    for h in ("memory", "pids", "devices", "freezer", "cpuset"):
        assert cg[h] == f"/{cid}/sub", (h, cg)


def test_exec_cgroup_per_controller(pyrunc, running):
    cid, _ = running
    pid = exec_pid(pyrunc, cid, "--cgroup", "memory,pids:sub", "--cgroup", "freezer:/sub")
    cg = proc_cgroups(pid)
    assert (cg["memory"], cg["pids"], cg["freezer"]) == (f"/{cid}/sub",) * 3
    assert cg["devices"] == cg["cpuset"] == f"/{cid}"


def _pidns(pid: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


@pytest.mark.parametrize("flags, needle", [
    (["--cgroup", "nosuch"], "nosuch"),
    (["--cgroup", "memory:nosuch"], "nosuch"),
    (["--cgroup", "../escape"], "bad sub cgroup path"),
    (["--cgroup", "bogus:sub"], "bogus"),
    (["--cgroup", "a", "--cgroup", "b"], "missing <controller>: prefix"),
    (["--cgroup", "memory:a", "--cgroup", "memory:b"], "controller memory specified multiple"),
    (["--cgroup", ",memory:a"], "empty <controller> prefix"),
])
def test_exec_cgroup_failures(pyrunc, running, flags, needle):
    cid, _ = running
    before = set(os.listdir("/proc"))
    res = pyrunc("exec", "-d", *flags, cid, "sleep", "100")
    line = pyrunc.one_line_error(res, needle)
    assert res.returncode == 255 or runtime_is_runc(pyrunc), line
    # nothing left: only init in the container's cgroup and its sub-cgroups
    assert cat(ROOT, "pids", cid, "cgroup.procs") == str(pyrunc.state(cid)["pid"])
    assert cat(ROOT, "pids", cid, "sub", "cgroup.procs") == ""
    # and no exec'd process anywhere in the container's pid namespace (other
    # suites may run `sleep` on this host at the same time: look only in ours)
    pidns = os.readlink(f"/proc/{pyrunc.state(cid)['pid']}/ns/pid")
    assert not [p for p in set(os.listdir("/proc")) - before
                if p.isdigit() and pyrunc.pid_alive(int(p)) and _pidns(p) == pidns]
