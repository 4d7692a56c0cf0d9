#!/usr/bin/env python3
"""recvtty: a console-socket receiver, like runc's contrib/cmd/recvtty.

    python3 tests/tools/recvtty.py /tmp/console.sock &
    pyrunc create --console-socket /tmp/console.sock -b BUNDLE ID && pyrunc start ID

Listens on the socket, accepts one connection, receives the pty master sent
with SCM_RIGHTS and copies it to stdout (and stdin to it) until the
container's side closes. --once-only prints the received name and fd
attributes and exits (what tests use to check the protocol).
"""
import os
import select
import socket
import sys


def receive(path: str):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    conn, _ = server.accept()
    msg, fds, flags, _ = socket.recv_fds(conn, 4096, 4)
    conn.close()
    server.close()
    return msg, fds


def main() -> int:
    path = sys.argv[1]
    msg, fds = receive(path)
    if len(fds) != 1:
        print(f"expected exactly one fd, got {len(fds)}", file=sys.stderr)
        return 1
    master = fds[0]
    print(f"received {msg!r}", file=sys.stderr)
    inputs = [master] + ([0] if "--no-stdin" not in sys.argv else [])
    while master in inputs:
        ready, _, _ = select.select(inputs, [], [])
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                inputs.remove(fd)
            elif fd == master:
                os.write(1, data)
            else:
                os.write(master, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
