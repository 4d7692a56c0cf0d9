"""Namespaces as runc 1.2–1.5 handles them (timens.bats, run.bats, userns.bats):

* time namespaces: made whether timeOffsets is absent, null or empty;
  offsets with and without a new user namespace (the host writes them);
  offsets without a new time namespace refused; exec sees them;
* joining the namespaces of another running container by path (user, ipc,
  uts, net, pid, cgroup, time together); joining a network namespace that
  another user namespace owns (joined in runc's order: others first, with
  the host's privileges, then the user namespace);
* user namespaces and bind sources the mapped root cannot reach: the host
  opens them (also before a cgroup v1 mount, and seen by exec).

Runtime-neutral where runc and pyrunc agree, so `PYRUNC=…/runc-1.5.1/runc`
runs the same file against runc (see each test for where they differ).
"""
import json
import os
import subprocess
import time

import pytest

pytestmark = pytest.mark.integration

OFFSETS = {"monotonic": {"secs": 7881, "nanosecs": 2718281},
           "boottime": {"secs": 1337, "nanosecs": 3141519}}
OFFSET_LINES = ["monotonic 7881 2718281", "boottime 1337 3141519"]
TIMENS = "cat /proc/self/timens_offsets | tr -s ' '; readlink /proc/self/ns/time"


def host_ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


def needs_timens():
    if not os.path.exists("/proc/self/timens_offsets"):
        pytest.skip("the kernel has no time namespaces")


# --- time namespaces -------------------------------------------------------------------------

@pytest.mark.parametrize("offsets", ["absent", "null", "empty", "set"])
def test_time_namespace(pyrunc, bundle, offsets):
    """runc 1.5.1 fails "empty" ({}: it writes an empty offsets file, EINVAL);
    pyrunc makes the namespace with zero offsets, as for absent and null."""
    needs_timens()
    bundle.add_namespace("time")
    if offsets != "absent":
        bundle.linux["timeOffsets"] = {"null": None, "empty": {}, "set": OFFSETS}[offsets]
    bundle.sh(TIMENS)
    lines = pyrunc.run_ok(bundle).splitlines()
    want = OFFSET_LINES if offsets == "set" else ["monotonic 0 0", "boottime 0 0"]
    assert lines[:2] == want
    assert lines[2] != host_ns("time")


def test_time_offsets_with_user_namespace(pyrunc, bundle, world):
    """issue 16: EACCES on timens_offsets before (the middle's /proc/self
    files belong to the unmapped host root); the host writes them now."""
    needs_timens()
    rootfs = pyrunc.shifted_rootfs(world)
    pyrunc.use_userns(bundle, rootfs)
    bundle.add_namespace("time")
    bundle.linux["timeOffsets"] = OFFSETS
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["type"] != "cgroup"]
    bundle.sh(TIMENS)
    assert pyrunc.run_ok(bundle).splitlines()[:2] == OFFSET_LINES


def test_exec_sees_time_offsets(pyrunc, bundle):
    needs_timens()
    bundle.add_namespace("time")
    bundle.linux["timeOffsets"] = OFFSETS
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    res = pyrunc.ok("exec", cid, "sh", "-c", TIMENS)
    assert res.stdout.splitlines()[:2] == OFFSET_LINES


def test_time_offsets_without_time_namespace(pyrunc, bundle):
    needs_timens()
    bundle.linux["timeOffsets"] = OFFSETS
    cid, res = pyrunc.create(bundle, check=False)
    assert res.returncode != 0
    assert "time" in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr
    assert not os.path.exists(os.path.join(pyrunc.root, cid))


# --- joining another container's namespaces --------------------------------------------------

def _sleeper(pyrunc, bundle, cid_tag: str) -> tuple[str, int]:
    bundle.args("sleep", "1000")
    cid = pyrunc.new_id(cid_tag)
    res = pyrunc.run(bundle, "-d", cid=cid)
    assert res.returncode == 0, res.stderr
    return cid, pyrunc.state(cid)["pid"]


def test_join_every_namespace_of_a_running_container(pyrunc, world):
    """run.bats "joining existing container namespaces": a target with its own
    user and time namespaces (offsets set); a second container joins its
    user, ipc, uts, network, pid, cgroup and time namespaces by path (a new
    mount namespace: root.path would not exist in the target's)."""
    needs_timens()
    target = pyrunc.bundle("target")
    rootfs = pyrunc.shifted_rootfs(world)
    uid_maps = [{"containerID": 0, "hostID": 100000, "size": 100}]
    gid_maps = [{"containerID": 0, "hostID": 100000, "size": 200}]
    pyrunc.use_userns(target, rootfs, uid_maps, gid_maps)
    target.add_namespace("time")
    target.linux["timeOffsets"] = OFFSETS
    target.config["mounts"] = [m for m in target.config["mounts"] if m["type"] != "cgroup"]
    _, pid = _sleeper(pyrunc, target, "target")

    attached = pyrunc.bundle("attached")
    attached.config = json.loads(json.dumps(target.config))
    attached.rootfs = rootfs
    names = {"network": "net", "mount": "mnt"}
    for ns in attached.linux["namespaces"]:
        ns.pop("path", None)
        if ns["type"] != "mount":
            ns["path"] = f"/proc/{pid}/ns/{names.get(ns['type'], ns['type'])}"
    for key in ("uidMappings", "gidMappings", "timeOffsets"):
        attached.linux.pop(key)
    cid, _ = _sleeper(pyrunc, attached, "attached")

    ps = pyrunc.ok("exec", cid, "ps", "-o", "args").stdout
    assert ps.count("sleep 1000") == 2, ps
    assert pyrunc.ok("exec", cid, "cat", "/proc/self/uid_map").stdout.split() == ["0", "100000",
                                                                                  "100"]
    assert pyrunc.ok("exec", cid, "cat", "/proc/self/gid_map").stdout.split() == ["0", "100000",
                                                                                  "200"]
    out = pyrunc.ok("exec", cid, "sh", "-c", TIMENS).stdout.splitlines()
    assert out[:2] == OFFSET_LINES
    for kind in ("user", "ipc", "uts", "net", "pid", "cgroup", "time"):
        assert os.readlink(f"/proc/{pid}/ns/{kind}") == \
            os.readlink(f"/proc/{pyrunc.state(cid)['pid']}/ns/{kind}"), kind


def test_join_mount_namespace(pyrunc, bundle):
    """A mount namespace joined by path: the container is built in it (the
    rootfs must exist there). Those of a pivoted container have no such path:
    both runtimes refuse, one line, nothing left."""
    holder = subprocess.Popen(["unshare", "--mount", "sleep", "1000"])
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{holder.pid}/ns/mnt") == host_ns("mnt"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        bundle.remove_namespace("mount")
        bundle.add_namespace("mount", f"/proc/{holder.pid}/ns/mnt")
        bundle.linux["maskedPaths"] = []
        bundle.linux["readonlyPaths"] = []
        bundle.sh("readlink /proc/self/ns/mnt")  # its /proc: mounted in the joined namespace
        cid, _ = pyrunc.create(bundle)
        inner = os.readlink(f"/proc/{pyrunc.state(cid)['pid']}/ns/mnt")
        assert inner == os.readlink(f"/proc/{holder.pid}/ns/mnt")
        pyrunc.ok("delete", "-f", cid)
    finally:
        holder.kill()
        holder.wait()

    target = pyrunc.bundle("target")
    _, pid = _sleeper(pyrunc, target, "target")
    other = pyrunc.bundle("other")
    other.remove_namespace("mount")
    other.add_namespace("mount", f"/proc/{pid}/ns/mnt")
    other.linux["maskedPaths"] = []
    other.linux["readonlyPaths"] = []
    cid, res = pyrunc.create(other, check=False)
    assert res.returncode != 0 and len(res.stderr.splitlines()) == 1, res.stderr
    assert not os.path.exists(os.path.join(pyrunc.root, cid))


@pytest.fixture
def bound_ns(world):
    """Bind-mounts namespace files onto files in `world` (unmounted by `world`)."""
    def bind(proc_path: str, name: str) -> str:
        path = world / name
        path.touch()
        subprocess.run(["mount", "--bind", proc_path, str(path)], check=True)
        return str(path)
    return bind


def test_join_network_namespace_owned_by_another_user_namespace(pyrunc, bundle, world, bound_ns,
                                                                userns_rootfs):
    """userns.bats "userns join external namespaces [wrong userns owner]": the
    user namespace of a container that is gone (kept by a bind mount), and a
    network namespace the host's user namespace owns. Joined user-first, the
    second setns fails (EPERM); runc joins the others first."""
    target = pyrunc.bundle("target")
    pyrunc.use_userns(target, userns_rootfs)
    target.config["mounts"] = [m for m in target.config["mounts"] if m["type"] != "cgroup"]
    tcid, pid = _sleeper(pyrunc, target, "target")
    userns = bound_ns(f"/proc/{pid}/ns/user", "userns")
    pyrunc.ok("delete", "-f", tcid)
    holder = subprocess.Popen(["unshare", "--net", "sleep", "1000"])
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{holder.pid}/ns/net") == host_ns("net"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        netns = bound_ns(f"/proc/{holder.pid}/ns/net", "netns")
    finally:
        holder.kill()
        holder.wait()

    bundle.config["root"]["path"] = bundle.rootfs = userns_rootfs
    for ns in bundle.linux["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = netns
    bundle.add_namespace("user", userns)
    # no sysfs of our own without permissions in the network namespace: the host's
    bundle.config["mounts"] = [
        {"source": "/sys", "destination": m["destination"], "type": "bind", "options": ["rbind"]}
        if m["type"] == "sysfs" else m
        for m in bundle.config["mounts"] if m["type"] != "cgroup"]
    cid, _ = _sleeper(pyrunc, bundle, "ctr")
    inner = pyrunc.ok("exec", cid, "sh", "-c",
                      "readlink /proc/self/ns/user; readlink /proc/self/ns/net").stdout.split()
    assert inner == [f"user:[{os.stat(userns).st_ino}]", f"net:[{os.stat(netns).st_ino}]"]


# --- user namespaces and bind sources out of the mapped root's reach --------------------------

@pytest.fixture
def sources(world):
    """userns.bats: one source the mapped root can reach, two it cannot (0700)."""
    out = {}
    for name in ("accessible", "inaccessible-1", "inaccessible-2"):
        d = world / f"source-{name}" / "dir"
        d.mkdir(parents=True)
        (d / "foo.txt").write_text(name + "\n")
        os.chmod(d.parent, 0o700 if name.startswith("in") else 0o755)
        out[name] = str(d)
    return out


def test_user_namespace_with_unreachable_sources(pyrunc, bundle, userns_rootfs, sources):
    """issue 11: the host opens what the mapped root cannot reach (runc's
    mount source fds); exec sees the mounts too."""
    pyrunc.use_userns(bundle, userns_rootfs)
    for dest, name in (("/mnt/rw", "inaccessible-1"), ("/mnt/ro", "inaccessible-2")):
        bundle.config["mounts"].append({"source": sources[name], "destination": dest,
                                        "options": ["bind"]})
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    res = pyrunc.ok("exec", cid, "cat", "/mnt/rw/foo.txt", "/mnt/ro/foo.txt")
    assert res.stdout == "inaccessible-1\ninaccessible-2\n"


def test_user_namespace_bind_before_cgroup_v1_mount(pyrunc, bundle, userns_rootfs, sources):
    """userns.bats: a bind mount right before /sys/fs/cgroup, no cgroup namespace (v1)."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("cgroup v1 case: this host mounts cgroup v2 at /sys/fs/cgroup")
    pyrunc.use_userns(bundle, userns_rootfs)
    bundle.remove_namespace("cgroup")
    mounts = bundle.config["mounts"]
    at = next(i for i, m in enumerate(mounts) if m["destination"] == "/sys/fs/cgroup")
    mounts.insert(at, {"source": sources["accessible"], "destination": "/mnt/rw",
                       "options": ["bind"]})
    bundle.sh("cat /mnt/rw/foo.txt; cat /sys/fs/cgroup/pids/tasks | wc -l")
    lines = pyrunc.run_ok(bundle).splitlines()
    assert lines[0] == "accessible" and int(lines[1]) >= 1


def test_unreachable_source_that_does_not_exist(pyrunc, bundle, userns_rootfs, world):
    """The host cannot open it either: one line, nothing left."""
    pyrunc.use_userns(bundle, userns_rootfs)
    bundle.config["mounts"].append({"source": f"{bundle.rootfs}/no/such/dir",
                                    "destination": "/mnt/rw", "options": ["bind"]})
    cid, res = pyrunc.create(bundle, check=False)
    pyrunc.one_line_error(res, "no/such/dir")
    assert not os.path.exists(os.path.join(pyrunc.root, cid))


def test_host_opened_sources_leave_no_fds(pyrunc, bundle, userns_rootfs, world):
    """idmap.bats "mount source fds are cleaned up": twenty mounts whose sources
    the host opens (ten unreachable binds, ten id-mapped) under RLIMIT_NOFILE
    20; the waiting init holds none of them, the container process only stdio."""
    pyrunc.use_userns(bundle, userns_rootfs)
    hidden = world / "hidden"
    (hidden / "dir").mkdir(parents=True)
    (hidden / "dir" / "foo.txt").write_text("x\n")
    os.chmod(hidden, 0o700)
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    for i in range(10):
        for kind in ("bind", "idmap"):
            m = {"source": str(hidden / "dir"), "destination": f"/tmp/{kind}-{i}",
                 "type": "bind", "options": ["rbind"]}
            if kind == "idmap":
                m.update(options=["rbind", "idmap"], uidMappings=mapping, gidMappings=mapping)
            bundle.config["mounts"].append(m)
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 20, "hard": 20}]
    bundle.config["root"]["readonly"] = False
    bundle.config["mounts"].insert(0, {"source": "tmpfs", "destination": "/tmp",
                                       "type": "tmpfs", "options": ["mode=1777"]})
    bundle.sh("stat -c =%u=%g= /tmp/idmap-1/foo.txt; ls /proc/self/fd")
    cid, _ = pyrunc.create(bundle)
    pid = pyrunc.state(cid)["pid"]
    targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    assert not [t for t in targets if str(hidden) in t or t.startswith(("mnt:", "user:"))], targets
    pyrunc.ok("delete", "-f", cid)
    out = pyrunc.run_ok(bundle).split()
    assert out[0] == "=0=0="  # the id-mapped mount: host root's files are the container root's
    assert out[1:] == ["0", "1", "2", "3"]  # stdio and ls's own directory
