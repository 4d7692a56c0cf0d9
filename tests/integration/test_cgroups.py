"""The cgroup layer on the real kernel (root). Works on v1/hybrid hosts and on
pure v2 (run it inside tests/../shared/tools/cgroup2-vm too). Every cgroup is
under a unique /pyrunc-test-<hex> and every child is killed and reaped."""
import errno
import os
import signal
import time
import uuid

import pytest

from pyrunc.cgroups import CgroupManager, detect
from pyrunc.cgroups.manager import new_manager
from pyrunc.cgroups.devices import DEFAULT_ALLOWED_DEVICES
from pyrunc.cgroups.paths import parse_mountinfo

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

DENY_NULL = {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"}


def hierarchy_roots() -> list[str]:
    if detect() == "v2":
        return ["/sys/fs/cgroup"]
    with open("/proc/self/mountinfo") as f:
        return sorted({mp for mp, _root in parse_mountinfo(f.read()).values()})


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
    """A unique top-level cgroup name; whatever is left under it is removed."""
    name = f"/pyrunc-test-{uuid.uuid4().hex[:12]}"
    yield name
    for root in hierarchy_roots():
        remove_tree(root + name)


class Child:
    """A forked child that waits for commands on a pipe: b"o" -> try to open
    /dev/null and /dev/zero and report the errnos; b"q" -> exit."""

    def __init__(self):
        self.cmd_r, self.cmd_w = os.pipe()
        self.res_r, self.res_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(self.cmd_w)
                os.close(self.res_r)
                while True:
                    cmd = os.read(self.cmd_r, 1)
                    if cmd != b"o":
                        break
                    out = []
                    for dev in ("/dev/null", "/dev/zero"):
                        try:
                            os.close(os.open(dev, os.O_RDWR))
                            out.append("0")
                        except OSError as e:
                            out.append(str(e.errno))
                    os.write(self.res_w, (",".join(out) + "\n").encode())
            finally:
                os._exit(0)
        os.close(self.cmd_r)
        os.close(self.res_w)
        self.status = None

    def open_devices(self) -> tuple[int, int]:
        os.write(self.cmd_w, b"o")
        null, zero = os.read(self.res_r, 64).decode().strip().split(",")
        return int(null), int(zero)

    def cgroups(self) -> str:
        with open(f"/proc/{self.pid}/cgroup") as f:
            return f.read()

    def wait(self) -> int:
        if self.status is None:
            self.status = os.waitpid(self.pid, 0)[1]
        return self.status

    def close(self):
        for fd in (self.cmd_w, self.res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait()


@pytest.fixture
def child():
    kids = []

    def make():
        kids.append(Child())
        return kids[-1]
    yield make
    for k in kids:
        k.close()


def assert_in_cgroup(m: CgroupManager, kid: Child, inner: str):
    lines = kid.cgroups().splitlines()
    if m.version == "v2":
        assert f"0::{inner}" in lines
        return
    by_ctrl = {}
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        for c in (ctrls.split(",") if ctrls else ["unified"]):
            by_ctrl[c] = path
    for name in m.paths:
        assert by_ctrl[name] == inner, (name, lines)


def test_create_join_destroy(top, child):
    inner = top + "/ctr"
    m = new_manager(inner, {"devices": []}, "ctr")
    m.create()
    try:
        assert all(os.path.isdir(p) for p in m.paths.values())
        kid = child()
        m.add_process(kid.pid)
        assert_in_cgroup(m, kid, inner)
        assert m.processes() == [kid.pid]
        assert m.freeze_state() == "thawed"
        # state.json round trip: a later `delete` sees the same thing
        m2 = CgroupManager.from_dict(m.to_dict())
        assert m2.processes() == [kid.pid]
        kid.close()
        m2.destroy()
        assert not any(os.path.exists(p) for p in m.paths.values())
        assert not any(os.path.exists(os.path.dirname(p)) for p in m.paths.values())
        assert m2.to_dict()["created"] == []
        m2.destroy()              # idempotent
        m.destroy()               # stale copy: missing dirs are fine
        assert m.processes() == []
    finally:
        m.kill_all(signal.SIGKILL)   # don't let a failure leave tasks behind
        m.destroy()


def test_devices_deny_dev_null(top, child):
    m = new_manager(top + "/ctr", None, "ctr")
    m.create()
    try:
        kid = child()
        m.add_process(kid.pid)
        assert kid.open_devices() == (0, 0)
        m.apply_devices(list(DEFAULT_ALLOWED_DEVICES) + [DENY_NULL])
        assert kid.open_devices() == (errno.EPERM, 0)
        if m.version == "v1":
            listed = open(m.paths["devices"] + "/devices.list").read().split("\n")
            assert "c 1:5 rwm" in listed and "c 1:3 rwm" not in listed
        # re-applying replaces the rules (v2: the old program is detached)
        m.apply_devices(list(DEFAULT_ALLOWED_DEVICES))
        assert kid.open_devices() == (0, 0)
        m.apply_devices([{"allow": False, "access": "rwm"}])
        assert kid.open_devices() == (errno.EPERM, errno.EPERM)
        kid.close()
    finally:
        m.kill_all(signal.SIGKILL)   # don't let a failure leave tasks behind
        m.destroy()


def test_preexisting_parent_is_kept(top, child):
    parent = new_manager(top, None, "p")
    parent.create()
    try:
        m = new_manager(top + "/a/b", None, "b")
        m.create()
        assert sorted(m.created) == sorted(
            [os.path.dirname(p) for p in m.paths.values()] + list(m.paths.values()))
        kid = child()
        m.add_process(kid.pid)
        assert_in_cgroup(m, kid, top + "/a/b")
        kid.close()
        m.destroy()
        assert not any(os.path.exists(os.path.dirname(p)) for p in m.paths.values())
        assert all(os.path.isdir(p) for p in parent.paths.values())
    finally:
        parent.kill_all(signal.SIGKILL)   # don't let a failure leave tasks behind
        parent.destroy()
    assert not any(os.path.exists(p) for p in parent.paths.values())


def test_nested_path_all_created_all_removed(top):
    m = new_manager(top + "/a/b", None, "b")
    m.create()
    try:
        tops = {p[: -len("/a/b")] for p in m.paths.values()}
        assert tops <= set(m.created)
    finally:
        m.kill_all(signal.SIGKILL)   # don't let a failure leave tasks behind
        m.destroy()
    assert not any(os.path.exists(t) for t in tops)


def test_preexisting_leaf_is_joined_not_removed(top, child):
    first = new_manager(top + "/shared", None, "x")
    first.create()
    try:
        m = new_manager(top + "/shared", None, "y")
        m.create()
        assert m.created == []
        kid = child()
        m.add_process(kid.pid)
        assert first.processes() == [kid.pid]
        kid.close()
        m.destroy()
        assert all(os.path.isdir(p) for p in m.paths.values())
    finally:
        first.kill_all(signal.SIGKILL)   # don't let a failure leave tasks behind
        first.destroy()


def test_destroy_removes_subcgroups_and_waits_for_exiting_tasks(top, child):
    m = new_manager(top + "/ctr", None, "ctr")
    m.create()
    try:
        for p in m.paths.values():
            os.mkdir(p + "/inner")   # as a container with its own cgroupns might
        kid = child()
        m.add_process(kid.pid)
        os.kill(kid.pid, signal.SIGKILL)   # still exiting (unreaped) during destroy
        m.destroy()
        assert not any(os.path.exists(p) for p in m.paths.values())
    finally:
        m.kill_all(signal.SIGKILL)   # don't let a failure leave tasks behind
        m.destroy()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_kill_all(top, child, sig):
    m = new_manager(top + "/ctr", None, "ctr")
    m.create()
    try:
        kids = [child(), child()]
        for k in kids:
            m.add_process(k.pid)
        m.kill_all(sig)
        for k in kids:
            status = k.wait()
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == sig
        assert m.freeze_state() == "thawed"
    finally:
        m.kill_all(signal.SIGKILL)   # don't let a failure leave tasks behind
        m.destroy()


def test_freeze_thaw(top, child):
    m = new_manager(top + "/ctr", None, "ctr")
    m.create()
    try:
        kid = child()
        m.add_process(kid.pid)
        m.freeze()
        assert m.freeze_state() == "frozen"
        assert CgroupManager.from_dict(m.to_dict()).freeze_state() == "frozen"
        m.thaw()
        assert m.freeze_state() == "thawed"
        assert kid.open_devices() == (0, 0)     # it runs again
        kid.close()
    finally:
        m.kill_all(signal.SIGKILL)   # don't let a failure leave tasks behind
        m.destroy()
    m.thaw()                                    # gone: a no-op


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_kill_all_paused(top, child, sig):
    m = new_manager(top + "/ctr", None, "ctr")
    m.create()
    try:
        kid = child()
        m.add_process(kid.pid)
        m.freeze()
        m.kill_all(sig)
        if sig == signal.SIGTERM:
            assert m.freeze_state() == "frozen"        # a paused container stays paused
            if m.version == "v1":
                # v1 frozen tasks act on signals only once thawed (v2 ones do
                # take fatal signals while frozen)
                time.sleep(0.05)
                assert os.waitpid(kid.pid, os.WNOHANG) == (0, 0)
            m.thaw()
        else:
            assert m.freeze_state() == "thawed"        # thawed so the tasks can die
        status = kid.wait()
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == sig
        m.destroy()
        assert not any(os.path.exists(p) for p in m.paths.values())
    finally:
        m.kill_all(signal.SIGKILL)   # don't let a failure leave tasks behind
        m.destroy()
