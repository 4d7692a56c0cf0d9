"""A seccomp agent for the tests (like runc's tests/cmd/seccompagent):

    python seccomp_agent.py SOCKET

Listens on SOCKET for container process states (config-linux.md) sent with
the seccomp listener fd over SCM_RIGHTS, appends each state as one JSON line
to SOCKET.log, and answers the notifications of each listener:
  * mkdir/mkdirat: creates the directory PATH-METADATA in the process's root
    (METADATA is listenerMetadata) and returns success: the process's mkdir
    "succeeds" while its own directory is never made;
  * chmod/fchmod/fchmodat/fchmodat2: fail with ENOMEDIUM (a chosen errno);
  * anything else: SECCOMP_USER_NOTIF_FLAG_CONTINUE (run the syscall).
Ends on SIGTERM; the listeners close with it.
"""
import array
import errno
import fcntl
import json
import os
import signal
import socket
import struct
import sys
import threading

NOTIF = struct.Struct("=QIIiIQ6Q")      # struct seccomp_notif
RESP = struct.Struct("=QqiI")           # struct seccomp_notif_resp
IOCTL_RECV = 0xC0000000 | NOTIF.size << 16 | ord("!") << 8 | 0
IOCTL_SEND = 0xC0000000 | RESP.size << 16 | ord("!") << 8 | 1
IOCTL_ID_VALID = 0x40000000 | 8 << 16 | ord("!") << 8 | 2
FLAG_CONTINUE = 1

MKDIR, MKDIRAT = 83, 258
CHMODS = (90, 91, 268, 452)  # chmod, fchmod, fchmodat, fchmodat2


def read_string(pid: int, address: int) -> str:
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        return os.pread(fd, 4096, address).split(b"\0", 1)[0].decode()
    finally:
        os.close(fd)


def answer(listener: int, metadata: str) -> None:
    while True:
        buf = bytearray(NOTIF.size)
        try:
            fcntl.ioctl(listener, IOCTL_RECV, buf, True)
        except OSError as e:
            if e.errno in (errno.EINTR, errno.ENOENT):
                continue
            return  # the filter's processes are gone
        nid, pid, _flags, nr, _arch, _ip, *args = NOTIF.unpack(buf)
        val, err, flags = 0, 0, 0
        try:
            if nr in (MKDIR, MKDIRAT):
                path = read_string(pid, args[0] if nr == MKDIR else args[1])
                fcntl.ioctl(listener, IOCTL_ID_VALID, struct.pack("=Q", nid))
                if nr == MKDIRAT and not path.startswith("/"):
                    path = os.readlink(f"/proc/{pid}/cwd").rstrip("/") + "/" + path
                os.mkdir(f"/proc/{pid}/root{path}-{metadata}")
            elif nr in CHMODS:
                err = -errno.ENOMEDIUM
            else:
                flags = FLAG_CONTINUE
        except OSError as e:
            err = -(e.errno or errno.EIO)
        try:
            fcntl.ioctl(listener, IOCTL_SEND, bytearray(RESP.pack(nid, val, err, flags)), True)
        except OSError:
            pass  # the process died meanwhile (ENOENT)


def main(path: str) -> None:
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    with open(path + ".ready", "w"):
        pass
    while True:
        conn, _ = server.accept()
        fds = array.array("i")
        data, ancdata, _, _ = conn.recvmsg(65536, socket.CMSG_LEN(4 * fds.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
        conn.close()
        state = json.loads(data)
        state["_received_fds"] = len(fds)
        with open(path + ".log", "a") as f:
            f.write(json.dumps(state) + "\n")
        if fds:
            threading.Thread(target=answer, args=(fds[0], state.get("metadata", "")),
                             daemon=True).start()


if __name__ == "__main__":
    main(sys.argv[1])
