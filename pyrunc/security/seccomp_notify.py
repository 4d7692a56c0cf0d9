"""Seccomp user notification (SCMP_ACT_NOTIFY): the listener side.

A filter with a notify rule is loaded with SECCOMP_FILTER_FLAG_NEW_LISTENER;
the container process tells the host the listener's fd number (a write(2)
and a read(2), nothing else: see _native/shim.c), the host copies the fd
with pidfd_getfd(2) as runc does, and sends it over SCM_RIGHTS to the agent
at linux.seccomp.listenerPath together with the container process state
(config-linux.md "The Container Process State"): one connection per process,
closed after the message. The container process and the host then close
their copies, so when the agent goes away notified syscalls fail with ENOSYS
instead of waiting for an answer that never comes.
"""
import os
import stat

from pyrunc import SPEC_VERSION, native
from pyrunc.errors import ConfigError, ContainerStartError, NotSupportedError
from pyrunc.lean import fastjson, unixsock

# how long the agent may take to accept the connection and the message
CONNECT_TIMEOUT = unixsock.CONNECT_TIMEOUT


def check_notify(calls: list, seccomp: dict, notify_at: str, where: str) -> None:
    """Before fork: what a profile with a notify rule needs (runc checks the
    same when it loads the filter, or when the listener path is used)."""
    from pyrunc.security.seccomp import SCMP_ACT_NOTIFY, notify_supported
    if not notify_supported():
        raise NotSupportedError(notify_at.rsplit(".names", 1)[0] + ".action",
                                f"SCMP_ACT_NOTIFY (needs libseccomp >= 2.5 and Linux >= 5.7; "
                                f"libseccomp is {native.seccomp_version()})")
    for name, action, _, w in calls:
        if action == SCMP_ACT_NOTIFY and name == "write":
            # init reports the listener with write(2): nobody could answer it yet
            raise ConfigError("SCMP_ACT_NOTIFY cannot be used for the write syscall", w)
    path = seccomp.get("listenerPath")
    if not path:
        raise ConfigError("SCMP_ACT_NOTIFY needs a listenerPath (the seccomp agent's socket)",
                          f"{where}.listenerPath")
    check_listener_path(path, f"{where}.listenerPath")


def check_listener_path(path: str, where: str) -> None:
    """An absolute path to a unix socket, or "@name" for an abstract socket
    (Go's net.Dial, which runc uses, reads it so)."""
    if path.startswith("@"):
        if len(path) == 1 or "\0" in path:
            raise ConfigError(f"invalid abstract socket name {path!r}", where)
        return
    if not os.path.isabs(path):
        raise ConfigError(f"listener path {path!r} must be absolute", where)
    try:
        st = os.stat(path)
    except OSError as e:
        raise ConfigError(f"seccomp agent socket {path}: {e.strerror.lower()}", where) from None
    if not stat.S_ISSOCK(st.st_mode):
        raise ConfigError(f"seccomp agent socket {path}: not a socket", where)


def process_state(plan, pid: int, state: dict) -> bytes:
    doc = {"ociVersion": SPEC_VERSION, "fds": ["seccompFd"], "pid": pid}
    if plan.listener_metadata:
        doc["metadata"] = plan.listener_metadata
    doc["state"] = state
    return fastjson.dumps(doc).encode()


def take_listener(pid: int, fd: int) -> int:
    """The host's copy of process `pid`'s listener fd."""
    try:
        return native.pidfd_getfd(pid, fd)
    except OSError as e:
        raise ContainerStartError(f"cannot copy the seccomp listener fd from pid {pid}: "
                                  f"{os.strerror(e.errno)}", "linux.seccomp") from None


def send_listener(plan, listener: int, pid: int, state: dict) -> None:
    """One connection to the agent: the process state with the listener fd."""
    path = plan.listener_path
    where = "linux.seccomp.listenerPath"
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        sock = unixsock.connect(address, timeout=CONNECT_TIMEOUT)
    except TimeoutError:
        raise ContainerStartError(f"seccomp agent at {path} did not accept the connection "
                                  f"within {CONNECT_TIMEOUT:g}s", where) from None
    except OSError as e:
        raise ContainerStartError(f"failed to connect with seccomp agent specified in the "
                                  f"seccomp profile at {path}: {os.strerror(e.errno)}",
                                  where) from None
    try:
        unixsock.send_fds(sock, process_state(plan, pid, state), [listener])
    except TimeoutError:
        raise ContainerStartError(f"seccomp agent at {path} did not take the message within "
                                  f"{CONNECT_TIMEOUT:g}s", where) from None
    except OSError as e:
        raise ContainerStartError(f"cannot send seccomp fd to {path}: {os.strerror(e.errno)}",
                                  where) from None
    finally:
        sock.close()
