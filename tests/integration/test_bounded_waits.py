"""Every wait on another process is bounded or cancellable: a peer of create
that dies or hangs at any point of the fork chain and the init, a console
socket nobody accepts, an init that never takes the start signal, another
command holding the container's lock. Each is one clear line on stderr and a
non-zero exit within its bound, and a failed create leaves nothing behind.
(The bounds are shortened through the test entry point, see
tests/tools/pyrunc_faults.py; the defaults are in docs/reliability.md.)"""
import os
import signal
import subprocess
import time

import pytest

from faults import fault_at, faulty, nothing_left, pids_of  # noqa: F401

pytestmark = pytest.mark.integration

PEER_POINTS = ["middle:go", "middle:forked", "init:start", "init:rootfs", "init:placed",
               "hooks.createContainer[0]", "init:pivoted", "init:ready"]
PEER = 2.0


def _bundle(bundle):
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/true"}],
                              "createContainer": [{"path": "/bin/true", "timeout": 1}]}
    bundle.write()


@pytest.mark.parametrize("point", PEER_POINTS)
def test_peer_dies(faulty, bundle, point):
    """Killed peer: create says so in one line and cleans up after itself."""
    _bundle(bundle)
    cid = faulty.new_id()
    proc, err = fault_at(faulty, "die", point, "create", "--bundle", bundle.path, cid, cid=cid)
    assert proc.returncode == 1, err
    lines = err.splitlines()
    assert len(lines) == 1 and "exited before it was set up" in lines[0], err
    assert nothing_left(faulty, cid) == []


@pytest.mark.parametrize("point", PEER_POINTS)
def test_peer_hangs(faulty, bundle, point):
    """Hung peer: one line after the bound (PEER s; a createContainer hook's
    timeout on top while init runs it), then the same cleanup."""
    _bundle(bundle)
    cid = faulty.new_id()
    started = time.monotonic()
    proc, err = fault_at(faulty, "hang", point, "create", "--bundle", bundle.path, cid, cid=cid,
                         env={"PYRUNC_FAULT_TIMEOUTS": f"peer={PEER}"}, timeout=30)
    took = time.monotonic() - started
    assert proc.returncode == 1, err
    lines = err.splitlines()
    # once init runs its createContainer hooks, their timeouts (1 s) count too
    bound = PEER + (1 if PEER_POINTS.index(point) >= PEER_POINTS.index("hooks.createContainer[0]")
                    else 0)
    assert len(lines) == 1 and f"is hung: nothing from it in {bound:g} s" in lines[0], err
    assert took < 15, f"{took:.1f} s"
    assert nothing_left(faulty, cid) == []


def _create_in_a_hook(rt, bundle, token: str):
    """A create that sits in a createRuntime hook without a timeout (a sleep
    whose argument is `token`); returns (id, the create's Popen)."""
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", token]}]}
    bundle.write()
    cid = rt.new_id()
    proc = subprocess.Popen([rt.binary, "--root", rt.root, "create", "--bundle", bundle.path,
                             cid], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert rt.wait_until(lambda: pids_of(token) != [], 20)
    return cid, proc


def test_hook_without_timeout_is_cancelled_by_a_kill(faulty, bundle):
    """A hook without a timeout may run as long as it likes (the spec): the
    caller gives up by killing create, and the hook goes with it."""
    token = "61.5551"
    cid, proc = _create_in_a_hook(faulty, bundle, token)
    proc.kill()
    proc.wait()
    assert faulty.wait_until(lambda: pids_of(token) == [], 5), "the hook outlived create"
    faulty.ok("delete", "--force", cid)
    assert nothing_left(faulty, cid) == []


def test_console_socket_nobody_accepts(faulty, bundle, full_backlog_socket):
    bundle.process["terminal"] = True
    bundle.write()
    cid = faulty.new_id()
    started = time.monotonic()
    env = dict(os.environ, PYRUNC_FAULT_TIMEOUTS="connect=1")
    res = faulty("create", "--bundle", bundle.path, "--console-socket", full_backlog_socket,
                 cid, env=env)
    assert time.monotonic() - started < 10
    line = faulty.one_line_error(res, "console socket", "nobody accepted within 1 s")
    assert line
    assert nothing_left(faulty, cid) == []


def test_start_of_a_stopped_init(faulty, bundle):
    """An init that cannot take the start signal (stopped): one line after the
    bound; the container stays created, delete removes it."""
    bundle.args("true")
    cid, _ = faulty.create(bundle)
    pid = faulty.state(cid)["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        env = dict(os.environ, PYRUNC_FAULT_TIMEOUTS="start=1")
        started = time.monotonic()
        res = faulty("start", cid, env=env)
        assert time.monotonic() - started < 10
        faulty.one_line_error(res, f"container init (pid {pid}) did not take the start signal "
                                   f"within 1 s")
    finally:
        os.kill(pid, signal.SIGCONT)
    faulty.ok("delete", "--force", cid)


def test_lock_held_by_another_command(faulty, bundle):
    """update waits for another command's lock on the container, bounded."""
    import fcntl
    cid, _ = faulty.create(bundle)
    fd = os.open(os.path.join(faulty.root, cid), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        env = dict(os.environ, PYRUNC_FAULT_TIMEOUTS="lock=1")
        started = time.monotonic()
        res = faulty("update", "--pids-limit", "100", cid, env=env)
        assert time.monotonic() - started < 10
        faulty.one_line_error(res, f"container {cid} is busy")
    finally:
        os.close(fd)
    faulty.ok("delete", "--force", cid)


def test_delete_force_stops_a_running_create(faulty, bundle):
    """delete --force while create still runs (here: in a hook without a
    timeout) kills the create and removes what it made."""
    token = "62.5552"
    cid, proc = _create_in_a_hook(faulty, bundle, token)
    try:
        res = faulty("delete", "--force", cid)
        assert res.returncode == 0 and res.stderr == "", res.stderr
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert nothing_left(faulty, cid, token) == []
