"""linux.namespaces: parse and check before fork, then join/unshare in the child."""
import fcntl
import os
from pyrunc.lean.record import field, record

from pyrunc import native
from pyrunc.errors import ConfigError, quote

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
# the order runc lists namespaces to join in (configs.NamespaceTypes)
JOIN_ORDER = ["user", "ipc", "uts", "network", "pid", "mount", "cgroup", "time"]
EPERM = 1


@record
class Namespaces:
    new: set            # types to unshare
    join: dict          # type -> path to setns into
    uid_mappings: list = field(default_factory=list)   # [(container, host, size)]
    gid_mappings: list = field(default_factory=list)

    def has_new(self, ns_type: str) -> bool:
        return ns_type in self.new

    def is_private(self, ns_type: str) -> bool:
        return ns_type in self.new or ns_type in self.join

    def unshare_flags(self) -> int:
        flags = 0
        for t in self.new:
            flags |= FLAGS[t]
        return flags


def parse_namespaces(entries: list | None, linux: dict | None = None) -> Namespaces:
    new, join = set(), {}
    for i, ns in enumerate(entries or []):
        where = f"linux.namespaces[{i}]"
        ns_type = ns.get("type")
        if ns_type not in FLAGS:
            raise ConfigError(f"unknown namespace type {ns_type!r}", f"{where}.type")
        if ns_type in new or ns_type in join:
            raise ConfigError(f"malformed spec file: duplicated ns {quote(ns_type)}", f"{where}.type")
        path = ns.get("path")
        if ns_type == "time" and not os.path.exists("/proc/self/ns/time"):
            raise ConfigError("the kernel has no time namespaces", f"{where}.type")
        if path:
            check_namespace_path(path, ns_type, f"{where}.path")
            join[ns_type] = path
        else:
            new.add(ns_type)
    linux = linux or {}
    uid_maps = gid_maps = []
    if linux.get("uidMappings") or linux.get("gidMappings"):  # (idmap only for user namespaces)
        from pyrunc.rootfs.idmap import parse_mappings
        uid_maps = parse_mappings(linux.get("uidMappings"), "linux.uidMappings")
        gid_maps = parse_mappings(linux.get("gidMappings"), "linux.gidMappings")
    if "user" in new:
        if not uid_maps or not gid_maps:  # runc's words
            which = "uid" if not uid_maps else "gid"
            raise ConfigError(f"user namespaces enabled, but no {which} mappings found",
                              f"linux.{which}Mappings")
    elif uid_maps or gid_maps:
        raise ConfigError("user namespace mappings specified, but user namespace isn't enabled "
                          "in the config", "linux.uidMappings" if uid_maps else "linux.gidMappings")
    return Namespaces(new, join, uid_maps, gid_maps)


def write_id_maps(pid: int, namespaces: Namespaces) -> None:
    """From the host, for a child that just unshared its user namespace.

    Root writes the maps itself. An unprivileged caller may only map its own
    ids, one each, and must deny setgroups first; anything wider goes through
    the setuid helpers newuidmap/newgidmap (package uidmap), as runc does."""
    privileged = os.geteuid() == 0
    for kind, maps, own in (("uid", namespaces.uid_mappings, os.geteuid()),
                            ("gid", namespaces.gid_mappings, os.getegid())):
        if privileged or (len(maps) == 1 and maps[0][1:] == (own, 1)):
            if kind == "gid" and not privileged:
                with open(f"/proc/{pid}/setgroups", "w") as f:
                    f.write("deny")
            with open(f"/proc/{pid}/{kind}_map", "w") as f:
                f.write("".join(f"{c} {h} {n}\n" for c, h, n in maps))
        else:
            _run_idmap_helper(f"new{kind}map", pid, maps)


def _run_idmap_helper(helper: str, pid: int, maps: list) -> None:
    import shutil
    import subprocess
    path = shutil.which(helper) or f"/usr/bin/{helper}"
    args = [path, str(pid)] + [str(v) for m in maps for v in m]
    try:
        result = subprocess.run(args, capture_output=True, text=True)
    except FileNotFoundError:
        raise ConfigError(f"mapping more than your own id needs {helper} (package uidmap)",
                          "linux.uidMappings" if helper == "newuidmap" else "linux.gidMappings")
    if result.returncode != 0:
        raise ConfigError(f"{helper} failed: {result.stderr.strip()}",
                          "linux.uidMappings" if helper == "newuidmap" else "linux.gidMappings")


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


def join_paths(namespaces: Namespaces) -> None:
    """In the middle process: join the namespaces given by path, as runc's
    nsexec does. All paths are opened first (joining a mount namespace
    changes what later paths resolve to). Then every namespace but the user
    one is joined while we still have the host's privileges (one owned by
    another user namespace may need them), skipping those refused (EPERM);
    then the user namespace (becoming its root); then what was refused
    before, which its privileges may allow (a rootless runtime)."""
    fds = []
    try:
        for ns_type in JOIN_ORDER:
            if ns_type in namespaces.join:
                path = namespaces.join[ns_type]
                try:
                    fds.append((ns_type, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
                except OSError as e:
                    raise ConfigError(f"cannot open namespace {path}: {e.strerror}",
                                      "linux.namespaces") from None
        left = [(t, fd) for t, fd in fds if t != "user"]
        left = _join(left, namespaces.join, last=False)
        user = [(t, fd) for t, fd in fds if t == "user"]
        if user:
            _join(user, namespaces.join, last=True)
            become_root_in_user_namespace()
        _join(left, namespaces.join, last=True)
    finally:
        for _, fd in fds:
            os.close(fd)


def _join(fds: list, paths: dict, last: bool) -> list:
    """setns into each; returns those refused with EPERM (unless `last`: then an error)."""
    refused = []
    for ns_type, fd in fds:
        try:
            native.setns(fd, FLAGS[ns_type])
        except OSError as e:
            if e.errno == EPERM and not last:
                refused.append((ns_type, fd))
                continue
            raise ConfigError(f"cannot join {ns_type} namespace {paths[ns_type]}: "
                              f"{os.strerror(e.errno)}", "linux.namespaces") from None
    return refused


def write_time_offsets(pid: int, offsets: dict) -> None:
    """From the host, for a child that just unshared its time namespace
    (before any process is in it)."""
    lines = [f"{clock} {o.get('secs', 0)} {o.get('nanosecs', 0)}" for clock, o in offsets.items()]
    try:
        with open(f"/proc/{pid}/timens_offsets", "w") as f:
            f.write("\n".join(lines))
    except OSError as e:
        raise ConfigError(f"cannot set the time namespace offsets: {e.strerror}",
                          "linux.timeOffsets") from None


def unshare_rest(namespaces: Namespaces, cgroup: bool = True) -> None:
    """Every new namespace but the user one (made first, so it owns these)
    and, unless `cgroup`, the cgroup one (made once in the container's cgroup)."""
    flags = namespaces.unshare_flags() & ~native.CLONE_NEWUSER
    if not cgroup:
        flags &= ~native.CLONE_NEWCGROUP
    if flags:
        native.unshare(flags)


def become_root_in_user_namespace() -> None:
    """Once the host wrote our maps: act as the namespace's root, so files we
    create are owned by a mapped id (the host's root is unmapped in here)."""
    os.setresgid(0, 0, 0)
    try:
        os.setgroups([])
    except PermissionError:
        pass  # setgroups is denied in this namespace
    os.setresuid(0, 0, 0)
