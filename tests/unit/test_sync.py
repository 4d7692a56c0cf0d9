"""The sync channel between create and its children (pyrunc/process/sync.py)."""
import pytest

from pyrunc.process import sync


def test_message_sent_before_peer_closed_survives_our_unread_message():
    """The peer (init) reports an error and exits while our PLACED sits unread
    in its queue: the kernel then reports ECONNRESET once, ahead of the
    error. The channel must still deliver the error, then end."""
    host, init = sync.SyncChannel.pair()
    init.send(sync.ERROR, message="mounts[7]: no such device", where="mounts[7]")
    host.send(sync.PLACED)
    init.close()
    assert host.recv() == {"type": sync.ERROR, "message": "mounts[7]: no such device",
                           "where": "mounts[7]"}
    with pytest.raises(sync.SyncClosed):
        host.recv()
    host.close()


def test_expect_refuses_another_message_type():
    a, b = sync.SyncChannel.pair()
    a.send(sync.READY)
    with pytest.raises(sync.SyncClosed):
        b.expect(sync.PLACED)
    a.close(); b.close()


def test_recv_timeout_is_a_sync_timeout():
    a, b = sync.SyncChannel.pair()
    with pytest.raises(sync.SyncTimeout):
        b.recv(timeout=0.05)
    a.send(sync.READY)
    assert b.recv(timeout=0.05) == {"type": sync.READY}
    a.close(); b.close()


def test_a_dead_peer_is_seen_through_its_pidfd_while_a_child_holds_the_channel():
    """The peer exits with nothing sent, but a process it forked keeps its end
    open: no EOF comes, the pidfd tells."""
    import os
    import time
    host, child = sync.SyncChannel.pair()
    pid = os.fork()
    if pid == 0:  # the peer: its own child keeps the channel open for a while
        if os.fork() == 0:
            time.sleep(3)
        os._exit(0)
    child_pidfd = os.pidfd_open(pid)
    try:
        started = time.monotonic()
        with pytest.raises(sync.SyncClosed):
            host.recv(timeout=10, peer=child_pidfd)
        assert time.monotonic() - started < 2
    finally:
        os.close(child_pidfd)
        os.waitpid(pid, 0)
        child.close(); host.close()


def test_a_message_sent_just_before_the_peer_exits_is_read():
    import os
    host, child = sync.SyncChannel.pair()
    pid = os.fork()
    if pid == 0:
        child.send(sync.PID, pid=7)
        os._exit(0)
    pidfd = os.pidfd_open(pid)
    os.waitpid(pid, 0)  # gone: its pidfd is readable, and so is the channel
    try:
        assert host.recv(timeout=1, peer=pidfd) == {"type": sync.PID, "pid": 7}
    finally:
        os.close(pidfd)
        child.close(); host.close()


def test_a_huge_error_message_is_shortened_and_a_truncated_datagram_refused():
    a, b = sync.SyncChannel.pair()
    a.send(sync.ERROR, message="x" * 200_000, where="mounts[0].destination")
    msg = b.recv()
    assert msg["message"] == "x" * 4096 + "..." and msg["where"] == "mounts[0].destination"
    a.sock.send(b"{" + b" " * 70_000 + b"}")  # more than a datagram is read
    with pytest.raises(sync.SyncClosed, match="longer than"):
        b.recv()
    a.close(); b.close()
