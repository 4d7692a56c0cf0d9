"""Host side: open a bind mount's source for init, in init's mount namespace.

Init asks (over the sync channel) when it cannot reach a source itself (a
user namespace whose root cannot search a host directory) and for every
id-mapped source (setting MOUNT_ATTR_IDMAP needs the host's privileges).
As runc does, the source is opened at the time of that mount, in the
container's mount namespace, so a source inside the rootfs that an earlier
entry mounted is the mounted one: a short-lived thread leaves our shared
fs context (unshare CLONE_FS), joins init's mount namespace and opens it
there. The thread changes nothing of the rest of the runtime.
"""
import os

from pyrunc import native as n
from pyrunc.errors import ConfigError
from pyrunc.rootfs import idmap

CLONE_FS = 0x200
_TIMEOUT = 60  # seconds: an open on a dead network filesystem must not hang create


class MountSources:
    def __init__(self, init_pid: int, namespaces):
        self.init_pid = init_pid
        self.namespaces = namespaces
        self._userns: dict = {}  # mapping -> user namespace fd (idmap.userns_for)

    def open(self, m) -> int:
        """An fd for mount `m`'s source: a detached id-mapped tree for an
        id-mapped mount, else an O_PATH fd (the caller closes it)."""
        if m.idmap is not None:
            userns_fd = idmap.userns_for(m, self.namespaces, self._userns)
            return self._in_mount_ns(lambda: idmap.idmapped_tree(m, userns_fd), m)

        def plain() -> int:
            try:
                return os.open(m.source, os.O_PATH | os.O_CLOEXEC)
            except OSError as e:
                raise ConfigError(f"cannot open bind source {m.source}: {e.strerror}",
                                  f"{m.where}.source") from None
        return self._in_mount_ns(plain, m)

    def _in_mount_ns(self, fn, m) -> int:
        import threading  # only on this path: most containers never get here
        result: list = []

        def run() -> None:
            try:
                n.unshare(CLONE_FS)  # setns(CLONE_NEWNS) needs an unshared fs context
                ns_fd = os.open(f"/proc/{self.init_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    n.setns(ns_fd, n.CLONE_NEWNS)
                finally:
                    os.close(ns_fd)
                result.append(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                result.append(e)

        thread = threading.Thread(target=run, name="mount-source", daemon=True)
        thread.start()
        thread.join(_TIMEOUT)
        if thread.is_alive() or not result:
            raise ConfigError(f"opening bind source {m.source} timed out", m.where)
        if isinstance(result[0], BaseException):
            if isinstance(result[0], OSError):
                raise ConfigError(f"cannot open bind source {m.source} in the container's "
                                  f"mount namespace: {os.strerror(result[0].errno)}",
                                  m.where) from None
            raise result[0]
        return result[0]

    def close(self) -> None:
        for fd in self._userns.values():
            os.close(fd)
        self._userns.clear()
