"""The sync channel between `pyrunc create` and the processes it forks.

A SOCK_SEQPACKET socketpair keeps message boundaries, so each message is one
JSON object in one datagram and no framing is needed.
"""
import os
from _socket import MSG_TRUNC

from pyrunc.lean import fastjson, unixsock

# message types
GO = "go"                 # host -> middle: carry on (for exec: cgroups are in place)
PLACED = "placed"         # host -> init: you are in the container's cgroups
USERNS = "userns"         # middle -> host: user namespace made, write its id maps
USERNS_DONE = "userns-done"  # host -> middle
TIMENS = "timens"         # middle -> host: time namespace made, write its offsets
TIMENS_DONE = "timens-done"  # host -> middle
PID = "pid"               # middle -> host: the init's pid
HOOKS = "hooks"           # init -> host: rootfs is mounted, run prestart/createRuntime hooks
HOOKS_DONE = "hooks-done"  # host -> init
SECCOMP = "seccomp"       # init -> host: {"fd"}: copy my seccomp listener fd (pidfd_getfd)
SECCOMP_DONE = "seccomp-done"  # host -> init: copied; it goes on to the agent
MOUNT_SOURCE = "mount-source"  # init -> host: {"index"}: open that mount's source for me
MOUNT_FD = "mount-fd"     # host -> init: the source, as an fd passed with the message
READY = "ready"           # init -> host: set up, about to wait for `start`
ERROR = "error"           # any child -> host: {"message", "where"}

_MAX = 65536
# SECCOMP as the C shim writes it (one write(2) right after the filter is loaded)
SECCOMP_MESSAGE = '{"type": "seccomp", "fd": %d}'
# READY as the waiting init (pyrunc/process/waiter.py) writes it
READY_MESSAGE = '{"type": "ready"}'


# seconds the host waits for the next message of a process it forked, which
# runs only kernel work between messages (hooks it runs add their timeouts)
PEER_TIMEOUT = 60.0


class SyncClosed(Exception):
    """The other end went away without saying why."""


class SyncTimeout(Exception):
    """The other end said nothing in time."""


class SyncChannel:
    def __init__(self, sock: unixsock.Socket):
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple["SyncChannel", "SyncChannel"]:
        a, b = unixsock.pair(unixsock.SEQPACKET)
        return cls(a), cls(b)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, kind: str, **fields) -> None:
        data = fastjson.dumps({"type": kind, **fields}).encode()
        if len(data) > _MAX and isinstance(fields.get("message"), str):
            # an error that quotes a huge config value: its start says enough
            fields["message"] = fields["message"][:4096] + "..."
            data = fastjson.dumps({"type": kind, **fields}).encode()
        self.sock.send(data)

    def send_fd(self, kind: str, fd: int, **fields) -> None:
        unixsock.send_fds(self.sock, fastjson.dumps({"type": kind, **fields}).encode(), [fd])

    def expect_fd(self, kind: str) -> tuple[dict, int]:
        """The next message, which must be `kind` and carry one fd (close-on-exec)."""
        data, fds = unixsock.recv_fds(self.sock, _MAX, 1, cloexec=True)
        msg = fastjson.loads(data.decode()) if data else {}
        if msg.get("type") != kind or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise SyncClosed(f"expected {kind!r} with an fd, got {msg.get('type')!r}")
        return msg, fds[0]

    def recv(self, timeout: float | None = None, peer: int = -1) -> dict:
        """The next message; SyncTimeout if none comes within `timeout` s,
        SyncClosed if `peer` (a pidfd of the process that should send it)
        shows it exited with nothing sent: another process holding the other
        end (a child it forked) must not keep us waiting."""
        if timeout is not None or peer >= 0:
            import select  # (loaded already on create's path: hooks use it)
            ready = select.select([self.sock] + ([peer] if peer >= 0 else []), [], [],
                                  timeout)[0]
            if not ready:
                raise SyncTimeout()
            if self.sock not in ready:
                raise SyncClosed()
        try:
            data, _, flags, _ = self.sock.recvmsg(_MAX)
        except ConnectionResetError:
            # The peer closed with a message of ours unread (init failed while
            # we sent PLACED): the kernel reports that once, ahead of what the
            # peer sent before closing (its ERROR), which the next recv returns.
            data, _, flags, _ = self.sock.recvmsg(_MAX)
        if not data:
            raise SyncClosed()
        if flags & MSG_TRUNC:
            raise SyncClosed(f"a message longer than {_MAX} bytes")
        return fastjson.loads(data.decode())

    def expect(self, kind: str) -> dict:
        msg = self.recv()
        if msg.get("type") != kind:
            raise SyncClosed(f"expected {kind!r}, got {msg.get('type')!r}")
        return msg

    def close(self) -> None:
        self.sock.close()
