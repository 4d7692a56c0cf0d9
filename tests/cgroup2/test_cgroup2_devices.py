"""cgroup v2 device control (eBPF) on a pure cgroup2 host. Run inside the guest:
    cd /work/main && /work/shared/tools/cgroup2-vm /opt/pyrunc-venv/bin/python -m pytest tests/cgroup2 -q
Skipped elsewhere. Every cgroup is under a unique /pyrunc-test-<hex>; children
are killed and reaped; cgroups removed even on failure."""
import errno
import os
import signal
import stat
import struct
import time
import uuid

import pytest

from pyrunc.cgroups import detect
from pyrunc.cgroups.manager import new_manager
from pyrunc.cgroups.bpf import attached_programs
from pyrunc.cgroups.devices import DEFAULT_ALLOWED_DEVICES

ROOT = "/sys/fs/cgroup"

pytestmark = [
    pytest.mark.cgroup2,
    pytest.mark.skipif(detect() != "v2",
                       reason="needs a pure cgroup v2 /sys/fs/cgroup (run in cgroup2-vm)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

DENY_NULL = {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"}


def remove_tree(path: str) -> None:
    if not os.path.isdir(path):
        return
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            remove_tree(entry.path)
    for _ in range(100):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            time.sleep(0.01)


@pytest.fixture
def top():
    name = f"/pyrunc-test-{uuid.uuid4().hex[:12]}"
    yield name
    remove_tree(ROOT + name)


def _child_loop(cmd_r: int, res_w: int, tmpdir: str) -> None:
    while True:
        cmd = os.read(cmd_r, 1)
        if cmd == b"o":
            out = []
            for dev in ("/dev/null", "/dev/zero"):
                try:
                    os.close(os.open(dev, os.O_RDWR))
                    out.append(0)
                except OSError as e:
                    out.append(e.errno)
        elif cmd == b"m":
            node = os.path.join(tmpdir, f"null-{uuid.uuid4().hex[:6]}")
            try:
                os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
                os.unlink(node)
                out = [0, 0]
            except OSError as e:
                out = [e.errno, 0]
        else:
            return
        os.write(res_w, struct.pack("<ii", *out))


@pytest.fixture
def child(tmp_path):
    """make() -> (pid, ask): ask(b"o") -> (errno of opening /dev/null, of /dev/zero);
    ask(b"m") -> (errno of mknod c 1:3, 0)."""
    kids = []

    def make():
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(cmd_w)
                os.close(res_r)
                _child_loop(cmd_r, res_w, str(tmp_path))
            finally:
                os._exit(0)
        os.close(cmd_r)
        os.close(res_w)
        kids.append((pid, cmd_w, res_r))

        def ask(cmd: bytes) -> tuple[int, int]:
            os.write(cmd_w, cmd)
            return struct.unpack("<ii", os.read(res_r, 8))
        return pid, ask
    yield make
    for pid, cmd_w, res_r in kids:
        os.close(cmd_w)
        os.close(res_r)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass    # the test reaped it already


def n_programs(path: str) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return len(attached_programs(fd, path))
    finally:
        os.close(fd)


def test_v2_deny_dev_null(top, child):
    m = new_manager(top + "/ctr", {"devices": [DENY_NULL]}, "ctr")
    assert m.to_dict() == {"version": "v2", "path": ROOT + top + "/ctr", "created": []}
    m.create()
    try:
        assert m.created == [ROOT + top, ROOT + top + "/ctr"]
        pid, ask = child()
        m.add_process(pid)
        with open(f"/proc/{pid}/cgroup") as f:
            assert f.read() == f"0::{top}/ctr\n"
        assert m.processes() == [pid]
        assert ask(b"o") == (0, 0)
        assert n_programs(m.path) == 0
        m.apply_devices(list(DEFAULT_ALLOWED_DEVICES) + [DENY_NULL])
        assert n_programs(m.path) == 1
        assert ask(b"o") == (errno.EPERM, 0)
        # replacing: still exactly one program, new rules in force
        m.apply_devices(list(DEFAULT_ALLOWED_DEVICES))
        assert n_programs(m.path) == 1
        assert ask(b"o") == (0, 0)
        m.apply_devices([])                                        # default deny
        assert ask(b"o") == (errno.EPERM, errno.EPERM)
    finally:
        m.kill_all(signal.SIGKILL)   # don't let a failure leave tasks behind
        m.destroy()
    assert not os.path.exists(ROOT + top)


def test_v2_blacklist_and_mknod(top, child):
    m = new_manager(top + "/ctr", None, "ctr")
    m.create()
    try:
        pid, ask = child()
        m.add_process(pid)
        m.apply_devices([{"allow": True, "access": "rwm"},
                         {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
                         {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "m"}])
        assert ask(b"o") == (0, errno.EPERM)
        assert ask(b"m") == (errno.EPERM, 0)
        m.apply_devices([{"allow": True, "access": "rwm"}])
        assert ask(b"m") == (0, 0)
    finally:
        m.kill_all(signal.SIGKILL)   # don't let a failure leave tasks behind
        m.destroy()


def test_v2_controllers_enabled_in_ancestors(top):
    m = new_manager(top + "/a/b", None, "b")
    m.create()
    try:
        assert m.created == [ROOT + top, ROOT + top + "/a", ROOT + top + "/a/b"]
        root_ctrls = set(open(ROOT + "/cgroup.controllers").read().split())
        assert {"memory", "pids"} <= root_ctrls
        for d in (ROOT + top, ROOT + top + "/a"):
            assert set(open(d + "/cgroup.subtree_control").read().split()) == root_ctrls
        assert set(open(ROOT + top + "/a/b/cgroup.controllers").read().split()) == root_ctrls
    finally:
        m.kill_all(signal.SIGKILL)   # don't let a failure leave tasks behind
        m.destroy()
    assert not os.path.exists(ROOT + top)


def test_v2_preexisting_parent_kept(top, child):
    parent = new_manager(top, None, "p")
    parent.create()
    try:
        m = new_manager(top + "/a/b", None, "b")
        m.create()
        assert m.created == [ROOT + top + "/a", ROOT + top + "/a/b"]
        pid, ask = child()
        m.add_process(pid)
        m.apply_devices(list(DEFAULT_ALLOWED_DEVICES) + [DENY_NULL])
        assert ask(b"o") == (errno.EPERM, 0)
        os.kill(pid, signal.SIGKILL)          # exits while destroy retries
        m.destroy()
        assert not os.path.exists(ROOT + top + "/a")
        assert os.path.isdir(ROOT + top)
    finally:
        parent.kill_all(signal.SIGKILL)   # don't let a failure leave tasks behind
        parent.destroy()
    assert not os.path.exists(ROOT + top)


def test_v2_relative_path_under_parent_of_own_cgroup(top):
    with open("/proc/self/cgroup") as f:
        own = f.read().strip().split("::", 1)[1]
    rel = top.lstrip("/") + "-rel"
    m = new_manager(rel, None, "x")
    expected = os.path.normpath(f"{ROOT}/{os.path.dirname(own)}/{rel}")
    assert m.path == expected
    if os.path.dirname(own) != "/":
        pytest.skip("only create under the root cgroup in the throwaway guest")
    m.create()
    try:
        assert os.path.isdir(expected)
    finally:
        m.kill_all(signal.SIGKILL)   # don't let a failure leave tasks behind
        m.destroy()
    assert not os.path.exists(expected)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_v2_kill_all_and_freeze(top, child, sig):
    m = new_manager(top + "/ctr", None, "ctr")
    m.create()
    try:
        pids = [child()[0], child()[0]]
        for pid in pids:
            m.add_process(pid)
        m.freeze()
        assert m.freeze_state() == "frozen"
        m.thaw()
        assert m.freeze_state() == "thawed"
        m.kill_all(sig)
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == sig
    finally:
        m.kill_all(signal.SIGKILL)   # don't let a failure leave tasks behind
        m.destroy()


def test_v2_load_failure_is_explained():
    from pyrunc.cgroups.bpf import BPF_MOV, R0, alu32_imm, load_program
    from pyrunc.cgroups.common import CgroupError
    with pytest.raises(CgroupError) as e:
        load_program(alu32_imm(BPF_MOV, R0, 0), "/sys/fs/cgroup/x")   # no exit insn
    msg = str(e.value)
    assert msg.startswith("cannot load the device eBPF program for cgroup /sys/fs/cgroup/x: ")
    assert "(" in msg and "\n" not in msg       # the verifier's last line, one line
