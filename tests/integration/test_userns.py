"""User namespaces (as root): linux.uidMappings/gidMappings, several ranges,
joining an existing user namespace by path, what the runtime creates being
the mapped root's, the pty of a terminal, the sysfs fallback without a
network namespace, and bad input refused with one line naming the field.

The mapped root (host uid 100000) cannot search the pytest tmp dirs (0700),
so rootfs and bind sources live in 0755 dirs of their own."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RECVTTY = REPO / "tests" / "tools" / "recvtty.py"
BASE = 100000
SIZE = 65536
MAPPING = [{"containerID": 0, "hostID": BASE, "size": SIZE}]

# a process that only holds a new user namespace, for the test to map and join
USERNS_HOLDER = r"""
import ctypes, sys
if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:
    sys.exit("unshare(CLONE_NEWUSER) failed")
print("ready", flush=True)
sys.stdin.read()
"""


def status_ids(pid: int) -> tuple[str, str]:
    with open(f"/proc/{pid}/status") as f:
        fields = {k: v.split() for k, v in (line.split(":", 1) for line in f if ":" in line)}
    return fields["Uid"][0], fields["Gid"][0]


# --- mappings ----------------------------------------------------------------------------

def test_root_inside_is_the_mapped_host_id(pyrunc, bundle, userns_rootfs, world):
    out_dir = world / "out"
    out_dir.mkdir()
    os.chown(out_dir, BASE, BASE)
    pyrunc.use_userns(bundle, userns_rootfs)
    bundle.bind(out_dir, "/out")
    bundle.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; "
              "touch /out/made-inside; mkdir /out/dir-inside")
    out = pyrunc.run_ok(bundle)
    lines = [line.split() for line in out.splitlines()]
    assert lines[:2] == [["0", str(BASE), str(SIZE)]] * 2
    assert lines[2:] == [["0"], ["0"]]
    for name in ("made-inside", "dir-inside"):
        st = os.stat(out_dir / name)
        assert (st.st_uid, st.st_gid) == (BASE, BASE), name


def test_init_runs_as_mapped_id_seen_from_host(pyrunc, bundle, userns_rootfs):
    pyrunc.use_userns(bundle, userns_rootfs)
    bundle.process["user"] = {"uid": 1000, "gid": 1001}
    cid, _ = pyrunc.create(bundle)
    pid = pyrunc.state(cid)["pid"]
    # init takes the process's identity before it waits for start (as runc's does)
    assert status_ids(pid) == (str(BASE + 1000), str(BASE + 1001))
    pyrunc.ok("start", cid)
    assert pyrunc.wait_status(cid, "running")
    assert status_ids(pid) == (str(BASE + 1000), str(BASE + 1001))
    assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")


def test_several_ranges(pyrunc, bundle, userns_rootfs, world):
    out_dir = world / "out"
    out_dir.mkdir(mode=0o777)
    os.chmod(out_dir, 0o777)
    uid_maps = [{"containerID": 0, "hostID": BASE, "size": 1000},
                {"containerID": 1000, "hostID": BASE + 50000, "size": 1000}]
    gid_maps = [{"containerID": 0, "hostID": BASE, "size": 2000},
                {"containerID": 5000, "hostID": BASE + 30000, "size": 10}]
    pyrunc.use_userns(bundle, userns_rootfs, uid_maps, gid_maps)
    bundle.bind(out_dir, "/out")
    bundle.process["user"] = {"uid": 1500, "gid": 5003}
    bundle.sh("cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; id -u; id -g; "
              "touch /out/by-1500")
    out = pyrunc.run_ok(bundle)
    uid_part, gid_part, ids = out.split("--\n")
    assert [line.split() for line in uid_part.splitlines()] == \
        [["0", str(BASE), "1000"], ["1000", str(BASE + 50000), "1000"]]
    assert [line.split() for line in gid_part.splitlines()] == \
        [["0", str(BASE), "2000"], ["5000", str(BASE + 30000), "10"]]
    assert ids.split() == ["1500", "5003"]
    st = os.stat(out_dir / "by-1500")
    assert (st.st_uid, st.st_gid) == (BASE + 50500, BASE + 30003)


# --- joining a user namespace -------------------------------------------------------------

@pytest.fixture
def userns_holder():
    proc = subprocess.Popen([sys.executable, "-c", USERNS_HOLDER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        for kind in ("uid", "gid"):
            with open(f"/proc/{proc.pid}/{kind}_map", "w") as f:
                f.write(f"0 {BASE} {SIZE}\n")
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_join_existing_user_namespace(pyrunc, bundle, userns_rootfs, world, userns_holder):
    out_dir = world / "out"
    out_dir.mkdir()
    os.chown(out_dir, BASE, BASE)
    bundle.config["root"]["path"] = userns_rootfs
    pyrunc.extra_paths.append(os.path.dirname(userns_rootfs))
    ns_path = f"/proc/{userns_holder}/ns/user"
    bundle.add_namespace("user", ns_path)
    bundle.bind(out_dir, "/out")
    bundle.sh("cat /proc/self/uid_map; id -u; for n in user mnt pid; do readlink /proc/self/ns/$n; "
              "done; touch /out/joined")
    out = pyrunc.run_ok(bundle)
    lines = out.splitlines()
    assert lines[0].split() == ["0", str(BASE), str(SIZE)]
    assert lines[1] == "0"
    assert lines[2] == os.readlink(ns_path), "not the namespace given by path"
    # the new namespaces are new (and owned by the joined user namespace)
    assert lines[3] != os.readlink("/proc/self/ns/mnt")
    assert lines[4] != os.readlink("/proc/self/ns/pid")
    st = os.stat(out_dir / "joined")
    assert (st.st_uid, st.st_gid) == (BASE, BASE)


# --- what the runtime creates --------------------------------------------------------------

def test_runtime_made_files_belong_to_mapped_root(pyrunc, bundle, world, base_rootfs):
    rootfs = pyrunc.shifted_rootfs(world)
    pyrunc.use_userns(bundle, rootfs)
    src = world / "src"
    src.mkdir()
    bundle.bind(src, "/new/mount/point")      # mount point the runtime must create
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.sh("stat -c '%n %u:%g' /new /new/mount /dev /dev/null /dev/pts; "
              "for l in /dev/fd /dev/stdin /dev/stdout /dev/stderr /dev/ptmx; do "
              "  stat -c '%n %u:%g %F' $l; done; "
              "echo data > /dev/null && head -c 4 /dev/zero | wc -c && "
              "head -c 4 /dev/urandom | wc -c && echo devices-usable")
    out = pyrunc.run_ok(bundle)
    owners = dict(line.split(" ", 1) for line in out.splitlines() if line.startswith("/"))
    for path in ("/new", "/new/mount", "/dev", "/dev/pts"):
        assert owners[path].startswith("0:0"), (path, owners[path])
    for link in ("/dev/fd", "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/ptmx"):
        assert owners[link] == "0:0 symbolic link", (link, owners[link])
    assert out.splitlines()[-3:] == ["4", "4", "devices-usable"]
    # on the host: owned by the mapped root
    for path in ("new", "new/mount/point"):
        st = os.stat(os.path.join(rootfs, path))
        assert (st.st_uid, st.st_gid) == (BASE, BASE), path


def test_terminal_pty_belongs_to_mapped_root(pyrunc, bundle, userns_rootfs, tmp_path):
    pyrunc.use_userns(bundle, userns_rootfs)
    bundle.process["terminal"] = True
    bundle.sh("t=$(tty); echo tty=$t; stat -c 'pty %u:%g' $t; stat -c 'console %t:%T' /dev/console; "
              "echo written > $t && echo pty-writable")
    sock = tmp_path / "tty.sock"
    recv = subprocess.Popen([sys.executable, str(RECVTTY), str(sock), "--no-stdin"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert pyrunc.wait_until(sock.exists, timeout=10), "recvtty did not listen"
        cid, _ = pyrunc.create(bundle, "--console-socket", sock)
        pyrunc.ok("start", cid)
        out, err = recv.communicate(timeout=20)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    text = out.decode(errors="replace").replace("\r", "")
    assert "tty=/dev/pts/0" in text, text
    assert "pty 0:5" in text or "pty 0:0" in text, text   # devpts gid=5 option, mapped
    assert "console 88:0" in text, text                   # char 136:0, printed in hex
    assert "pty-writable" in text, text


@pytest.mark.parametrize("netns", [True, False], ids=["own-netns", "host-netns"])
def test_sysfs_in_user_namespace(pyrunc, bundle, userns_rootfs, netns):
    """A user namespace may mount sysfs only with its own network namespace;
    without one the runtime binds the host's /sys read-only (as runc)."""
    pyrunc.use_userns(bundle, userns_rootfs)
    if not netns:
        bundle.remove_namespace("network")
    bundle.sh("ls /sys/class/net; grep ' /sys ' /proc/self/mountinfo; ls /sys/fs/cgroup | wc -l")
    out = pyrunc.run_ok(bundle)
    lines = out.splitlines()
    mountinfo = next(line for line in lines if " /sys " in line)
    assert " ro," in mountinfo or " ro " in mountinfo, mountinfo
    ifaces = set(lines[: lines.index(mountinfo)])
    if netns:
        assert ifaces == {"lo"}, ifaces
    else:
        assert ifaces == set(os.listdir("/sys/class/net")), ifaces
        # rbind: the host's submounts (the cgroup hierarchies) come along
        assert int(lines[-1]) > 0


# --- bad input ----------------------------------------------------------------------------

def _overlap(b):
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": BASE, "size": 1000},
                              {"containerID": 500, "hostID": BASE + 5000, "size": 10}]


def _host_overlap(b):
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": BASE, "size": 1000},
                              {"containerID": 2000, "hostID": BASE + 999, "size": 10}]


def _out_of_range(b):
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 4294967000, "size": SIZE}]


def _no_userns(b):
    b.remove_namespace("user")


def _no_gid_maps(b):
    del b.linux["gidMappings"]


def _not_userns_path(b):
    b.remove_namespace("user")
    del b.linux["uidMappings"], b.linux["gidMappings"]
    b.add_namespace("user", "/proc/self/ns/net")


def _not_a_namespace(b):
    b.remove_namespace("user")
    del b.linux["uidMappings"], b.linux["gidMappings"]
    b.add_namespace("user", "/etc/hostname")


@pytest.mark.parametrize("breaker, needles", [
    (_overlap, ("linux.uidMappings[1]", "overlaps")),
    (_host_overlap, ("linux.gidMappings[1]", "overlaps")),
    (_out_of_range, ("linux.uidMappings[0]", "32-bit")),
    (_no_userns, ("linux.uidMappings", "user namespace")),
    (_no_gid_maps, ("linux.gidMappings", "user namespace")),
    (_not_userns_path, ("linux.namespaces[", ".path", "network namespace, not user")),
    (_not_a_namespace, ("linux.namespaces[", ".path", "not a namespace")),
], ids=["overlap", "host-overlap", "out-of-range", "maps-without-userns", "no-gid-maps",
        "path-not-userns", "path-not-namespace"])
def test_bad_user_namespace_config(pyrunc, bundle, userns_rootfs, breaker, needles):
    pyrunc.use_userns(bundle, userns_rootfs)
    breaker(bundle)
    cid, res = pyrunc.create(bundle, check=False)
    pyrunc.one_line_error(res, *needles)
    assert not os.path.exists(os.path.join(pyrunc.root, cid))


def test_userns_state_and_exec(pyrunc, bundle, userns_rootfs):
    """exec joins the user namespace: the same mapping, root inside."""
    pyrunc.use_userns(bundle, userns_rootfs)
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    res = pyrunc.ok("exec", cid, "sh", "-c", "cat /proc/self/uid_map; id -u")
    assert res.stdout.split() == ["0", str(BASE), str(SIZE), "0"]
    st = json.loads(pyrunc.ok("state", cid).stdout)
    assert st["status"] == "running"
