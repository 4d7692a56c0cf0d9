"""linux.namespaces: parse and check before fork, then join/unshare in the child."""
import fcntl
import os
from dataclasses import dataclass

from pyrunc import native
from pyrunc.errors import ConfigError, NotSupportedError

FLAGS = {
    "pid": native.CLONE_NEWPID,
    "network": native.CLONE_NEWNET,
    "mount": native.CLONE_NEWNS,
    "ipc": native.CLONE_NEWIPC,
    "uts": native.CLONE_NEWUTS,
    "user": native.CLONE_NEWUSER,
    "cgroup": native.CLONE_NEWCGROUP,
    "time": native.CLONE_NEWTIME,
}
NS_GET_NSTYPE = 0xB703
# the order runc joins namespaces in: user first, so the others are owned by it; mount last
JOIN_ORDER = ["user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount"]


@dataclass
class Namespaces:
    new: set            # types to unshare
    join: dict          # type -> path to setns into

    def has_new(self, ns_type: str) -> bool:
        return ns_type in self.new

    def is_private(self, ns_type: str) -> bool:
        return ns_type in self.new or ns_type in self.join

    def unshare_flags(self) -> int:
        flags = 0
        for t in self.new:
            flags |= FLAGS[t]
        return flags


def parse_namespaces(entries: list | None) -> Namespaces:
    new, join = set(), {}
    for i, ns in enumerate(entries or []):
        where = f"linux.namespaces[{i}]"
        ns_type = ns.get("type")
        if ns_type not in FLAGS:
            raise ConfigError(f"unknown namespace type {ns_type!r}", f"{where}.type")
        if ns_type in new or ns_type in join:
            raise ConfigError(f"duplicate namespace type {ns_type!r}", f"{where}.type")
        path = ns.get("path")
        if ns_type == "user":
            raise NotSupportedError(where, "user namespaces")
        if ns_type == "time" and not os.path.exists("/proc/self/ns/time"):
            raise ConfigError("the kernel has no time namespaces", f"{where}.type")
        if path:
            check_namespace_path(path, ns_type, f"{where}.path")
            join[ns_type] = path
        else:
            new.add(ns_type)
    return Namespaces(new, join)


def check_namespace_path(path: str, ns_type: str, where: str) -> None:
    """The path must be a namespace file of the declared type."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise ConfigError(f"cannot open namespace {path}: {e.strerror}", where) from None
    try:
        actual = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        raise ConfigError(f"{path} is not a namespace file", where) from None
    finally:
        os.close(fd)
    if actual != FLAGS[ns_type]:
        got = next((t for t, f in FLAGS.items() if f == actual), hex(actual))
        raise ConfigError(f"{path} is a {got} namespace, not {ns_type}", where)


def enter(namespaces: Namespaces) -> None:
    """In the middle process: join the namespaces given by path, then unshare
    the new ones. All paths are opened before any setns, because joining a
    mount namespace changes what later paths resolve to."""
    fds = []
    try:
        for ns_type in JOIN_ORDER:
            if ns_type in namespaces.join:
                fds.append((ns_type, os.open(namespaces.join[ns_type], os.O_RDONLY | os.O_CLOEXEC)))
        for ns_type, fd in fds:
            try:
                native.setns(fd, FLAGS[ns_type])
            except OSError as e:
                raise ConfigError(f"cannot join {ns_type} namespace {namespaces.join[ns_type]}: "
                                  f"{os.strerror(e.errno)}", "linux.namespaces") from None
    finally:
        for _, fd in fds:
            os.close(fd)
    flags = namespaces.unshare_flags()
    if flags:
        native.unshare(flags)
