"""Unix sockets over the C module _socket. The socket module is a thin
wrapper around it that also imports selectors and enum, several ms of every
create; pyrunc needs only pairs, connect, and passing fds."""
import _socket
import struct  # not array: it imports collections.abc, ~3 ms of start-up

_INT = struct.calcsize("i")

Socket = _socket.socket
STREAM, SEQPACKET = _socket.SOCK_STREAM, _socket.SOCK_SEQPACKET
CONNECT_TIMEOUT = 10.0  # seconds for a peer (console socket, seccomp agent) to accept


def pair(kind: int = STREAM) -> tuple[Socket, Socket]:
    """Two connected AF_UNIX sockets, close-on-exec."""
    return _socket.socketpair(_socket.AF_UNIX, kind | _socket.SOCK_CLOEXEC)


def connect(path: str, timeout: float | None = None) -> Socket:
    """`timeout` bounds the connect (a listener whose backlog is full is
    retried until then) and every later call (TimeoutError)."""
    import time
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        sock = _socket.socket(_socket.AF_UNIX, STREAM | _socket.SOCK_CLOEXEC)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            sock.connect(path)
            return sock
        except BlockingIOError:  # EAGAIN: the backlog is full (only without blocking)
            sock.close()
            if time.monotonic() >= deadline:
                raise TimeoutError(11, "the listener's backlog stayed full") from None
            time.sleep(0.01)
        except BaseException:
            sock.close()
            raise


def from_fd(fd: int) -> Socket:
    """Adopt an open socket fd (closing the object closes the fd)."""
    return _socket.socket(fileno=fd)


def send_fds(sock: Socket, data: bytes, fds: list[int]) -> None:
    """One message: `data`, plus one SCM_RIGHTS control message with `fds`."""
    payload = struct.pack(f"{len(fds)}i", *fds)
    sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, payload)])


def recv_fds(sock: Socket, bufsize: int, maxfds: int,
             cloexec: bool = False) -> tuple[bytes, list[int]]:
    fds: list[int] = []
    flags = _socket.MSG_CMSG_CLOEXEC if cloexec else 0
    data, ancdata, _flags, _addr = sock.recvmsg(bufsize, _socket.CMSG_LEN(maxfds * _INT), flags)
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += struct.unpack(f"{len(payload) // _INT}i", payload[: len(payload) - len(payload) % _INT])
    return data, fds
