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
