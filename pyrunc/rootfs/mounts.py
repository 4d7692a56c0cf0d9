"""The config's `mounts`: option parsing (before fork) and mounting (in init),
with runc's semantics (libcontainer/rootfs_linux.go, mountToRootfs):

  * destinations are relative to the container's "/" (a relative one is
    deprecated, warned about and taken from "/"; one that spells out the
    rootfs path has it stripped), resolved inside the rootfs;
  * `proc` and `sysfs` go only on an ordinary directory, and nothing but a
    procfs goes on /proc or below it (except the files lxcfs emulates);
  * a tmpfs on an existing directory starts with that directory's mode
    (`mode=` in the options wins); a read-only tmpfs or /dev is mounted
    read-write and made read-only in finalize, after what goes below it;
  * a bind mount keeps its source's flags unless the options set or clear
    one; then it gets exactly the flags asked for, and where the kernel
    keeps a source's flags locked (a user namespace) those not explicitly
    cleared are kept: an explicit clear of a locked flag is an error;
  * a bind source the container's root cannot reach, and every id-mapped
    source, is opened by the host in the container's mount namespace at the
    time of the mount (after the earlier entries: see sources.py).
"""
import os

from pyrunc import native as n
from pyrunc.errors import ConfigError
from pyrunc.lean.record import field, record
from pyrunc.rootfs import inroot

# option -> (clear?, flag), as mount(8) and runc read them
_FLAGS = {
    "async": (True, n.MS_SYNCHRONOUS), "atime": (True, n.MS_NOATIME),
    "bind": (False, n.MS_BIND), "defaults": (False, 0), "dev": (True, n.MS_NODEV),
    "diratime": (True, n.MS_NODIRATIME), "dirsync": (False, n.MS_DIRSYNC),
    "exec": (True, n.MS_NOEXEC), "iversion": (False, 1 << 23), "lazytime": (False, n.MS_LAZYTIME),
    "loud": (True, n.MS_SILENT), "mand": (False, n.MS_MANDLOCK), "noatime": (False, n.MS_NOATIME),
    "nodev": (False, n.MS_NODEV), "nodiratime": (False, n.MS_NODIRATIME),
    "noexec": (False, n.MS_NOEXEC), "noiversion": (True, 1 << 23),
    "nolazytime": (True, n.MS_LAZYTIME), "nomand": (True, n.MS_MANDLOCK),
    "norelatime": (True, n.MS_RELATIME), "nostrictatime": (True, n.MS_STRICTATIME),
    "nosuid": (False, n.MS_NOSUID), "nosymfollow": (False, n.MS_NOSYMFOLLOW),
    "rbind": (False, n.MS_BIND | n.MS_REC), "relatime": (False, n.MS_RELATIME),
    "remount": (False, n.MS_REMOUNT), "ro": (False, n.MS_RDONLY), "rw": (True, n.MS_RDONLY),
    "silent": (False, n.MS_SILENT), "strictatime": (False, n.MS_STRICTATIME),
    "suid": (True, n.MS_NOSUID), "symfollow": (True, n.MS_NOSYMFOLLOW),
    "sync": (False, n.MS_SYNCHRONOUS),
}
PROPAGATION = {
    "private": n.MS_PRIVATE, "rprivate": n.MS_PRIVATE | n.MS_REC,
    "shared": n.MS_SHARED, "rshared": n.MS_SHARED | n.MS_REC,
    "slave": n.MS_SLAVE, "rslave": n.MS_SLAVE | n.MS_REC,
    "unbindable": n.MS_UNBINDABLE, "runbindable": n.MS_UNBINDABLE | n.MS_REC,
}
# recursive mount attributes (mount_setattr with AT_RECURSIVE): option -> (clear?, attr)
_ATTR_RDONLY, _ATTR_NOSUID, _ATTR_NODEV, _ATTR_NOEXEC = 0x1, 0x2, 0x4, 0x8
_ATTR_ATIME_MASK, _ATTR_NOATIME, _ATTR_STRICTATIME = 0x70, 0x10, 0x20
_ATTR_NODIRATIME, _ATTR_NOSYMFOLLOW = 0x80, 0x200000
_RECURSIVE = {
    "rro": (False, _ATTR_RDONLY), "rrw": (True, _ATTR_RDONLY),
    "rnosuid": (False, _ATTR_NOSUID), "rsuid": (True, _ATTR_NOSUID),
    "rnodev": (False, _ATTR_NODEV), "rdev": (True, _ATTR_NODEV),
    "rnoexec": (False, _ATTR_NOEXEC), "rexec": (True, _ATTR_NOEXEC),
    "rnodiratime": (False, _ATTR_NODIRATIME), "rdiratime": (True, _ATTR_NODIRATIME),
    "rrelatime": (True, _ATTR_ATIME_MASK), "rnorelatime": (True, _ATTR_ATIME_MASK),
    "rnoatime": (False, _ATTR_NOATIME), "ratime": (True, _ATTR_ATIME_MASK),
    "rstrictatime": (False, _ATTR_STRICTATIME), "rnostrictatime": (True, _ATTR_ATIME_MASK),
    "rnosymfollow": (False, _ATTR_NOSYMFOLLOW), "rsymfollow": (True, _ATTR_NOSYMFOLLOW),
}
# the atime "enum" (mutually exclusive), all atime flags, and the flags the
# kernel locks on mounts a less privileged mount namespace inherits (MNT_LOCK_*)
_ATIME_ENUM = n.MS_NOATIME | n.MS_RELATIME | n.MS_STRICTATIME
_ATIME = _ATIME_ENUM | n.MS_NODIRATIME
LOCKABLE = n.MS_RDONLY | n.MS_NODEV | n.MS_NOEXEC | n.MS_NOSUID | _ATIME
# statfs f_flag bit -> mount flag (fs/statfs.c calculate_f_flags)
_STATFS_FLAGS = ((0x1, n.MS_RDONLY), (0x2, n.MS_NOSUID), (0x4, n.MS_NODEV), (0x8, n.MS_NOEXEC),
                 (0x10, n.MS_SYNCHRONOUS), (0x40, n.MS_MANDLOCK), (0x400, n.MS_NOATIME),
                 (0x800, n.MS_NODIRATIME), (0x1000, n.MS_RELATIME), (0x2000, n.MS_NOSYMFOLLOW))
_FLAG_NAMES = (("MS_RDONLY", n.MS_RDONLY), ("MS_NOSUID", n.MS_NOSUID), ("MS_NODEV", n.MS_NODEV),
               ("MS_NOEXEC", n.MS_NOEXEC), ("MS_NOSYMFOLLOW", n.MS_NOSYMFOLLOW),
               ("MS_NOATIME", n.MS_NOATIME), ("MS_NODIRATIME", n.MS_NODIRATIME),
               ("MS_RELATIME", n.MS_RELATIME), ("MS_STRICTATIME", n.MS_STRICTATIME))
# what may be mounted below /proc: the files lxcfs emulates (runc's list)
_PROC_ALLOWED = frozenset(("/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat",
                           "/proc/swaps", "/proc/uptime", "/proc/loadavg", "/proc/slabinfo",
                           "/proc/sys/kernel/ns_last_pid", "/proc/sys/crypto/fips_enabled"))
PROC_SUPER_MAGIC = 0x9FA0


def mount_option_names() -> list[str]:
    """Every option parse_mount understands (for `features`)."""
    return list(_FLAGS) + list(PROPAGATION) + list(_RECURSIVE) + ["idmap", "ridmap"]


@record
class Mount:
    """One config mount, parsed and checked before fork."""
    index: int
    destination: str          # clean, absolute, relative to the container's "/"
    type: str
    source: str
    flags: int = 0
    cleared: int = 0          # flags the options explicitly clear (rw, dev, exec, atime…)
    propagation: list = field(default_factory=list)
    attr_set: int = 0
    attr_clr: int = 0
    data: str = ""
    idmap: object = None      # idmap.IdMapping of an id-mapped bind mount
    copy_up: bool = False     # tmpcopyup: a tmpfs starts with what it covers

    @property
    def where(self) -> str:
        return f"mounts[{self.index}]"

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & n.MS_BIND)

    @property
    def ro_later(self) -> bool:
        """Mounted read-write, made read-only in finalize (runc: tmpfs and /dev,
        which get files and mounts of their own first)."""
        return bool(self.flags & n.MS_RDONLY) and (self.type == "tmpfs"
                                                   or self.destination == "/dev")


def clean_destination(dest: str, rootfs: str = "") -> str:
    """runc's LexicallyStripRoot: "/"-relative and clean, the rootfs prefix
    (if a destination spells it out) removed."""
    dest = _clean_abs(dest)
    for root in {rootfs, os.path.realpath(rootfs)} if rootfs else ():
        root = _clean_abs(root)
        if root != "/" and (dest == root or dest.startswith(root + "/")):
            return dest[len(root):] or "/"
    return dest


def _clean_abs(path: str) -> str:
    path = os.path.normpath("/" + path)
    return path[1:] if path.startswith("//") else path  # POSIX normpath keeps a leading "//"


def parse_mount(index: int, m: dict, bundle: str, rootfs: str = "") -> Mount:
    """`rootfs`: the container's root path (as the config gives it, made absolute)."""
    where = f"mounts[{index}]"
    dest = m.get("destination", "")
    if not dest:
        raise ConfigError("mount destination is empty", f"{where}.destination")
    if not dest.startswith("/"):
        from pyrunc import log  # runtime-spec 1.2: allowed on Linux, relative to "/", deprecated
        log.warning(f"mount destination {dest} is not absolute. Support for non-absolute mount "
                    "destinations will be removed in a future release.")
    flags, cleared, data, propagation, copy_up = 0, 0, [], [], False
    idmap_opt = idmap_index = None
    attr_set = attr_clr = 0
    for j, opt in enumerate(m.get("options") or []):
        if opt in _FLAGS:
            is_clear, flag = _FLAGS[opt]
            if is_clear:
                flags &= ~flag
                cleared |= flag
            else:
                flags |= flag
                cleared &= ~flag
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt in _RECURSIVE:
            is_clear, attr = _RECURSIVE[opt]
            if is_clear:
                attr_clr |= attr
                attr_set &= ~attr
            else:
                attr_set |= attr
                attr_clr &= ~attr
            if attr & _ATTR_ATIME_MASK:
                attr_clr |= _ATTR_ATIME_MASK  # mount_setattr(2): the atime field is replaced
        elif opt in ("idmap", "ridmap"):
            if idmap_opt is None or opt == "ridmap":
                idmap_opt, idmap_index = opt, j
        elif opt == "tmpcopyup":
            copy_up = True
        else:
            data.append(opt)  # filesystem-specific, passed to mount(2) as data
    mtype = m.get("type") or ("bind" if flags & n.MS_BIND else "")
    if mtype == "bind":
        flags |= n.MS_BIND
    if flags & n.MS_BIND:
        mtype = "bind"  # runc: any other type is meaningless for a bind mount
    source = m.get("source") or mtype or "none"
    if flags & n.MS_BIND:
        if not os.path.isabs(source):
            source = os.path.join(bundle, source)
        # A source in the rootfs may be made by an earlier mount: init finds out.
        in_rootfs = rootfs and (_lexically_in(source, rootfs)
                                or _lexically_in(source, os.path.realpath(rootfs)))
        if not in_rootfs and not os.path.exists(source):
            raise ConfigError(f"bind source {source} does not exist", f"{where}.source")
    elif not mtype:
        raise ConfigError("mount has no type and is not a bind mount", f"{where}.type")
    mapping = None
    if idmap_opt or m.get("uidMappings") or m.get("gidMappings"):
        from pyrunc.rootfs import idmap
        idmap.check_bind(where, bool(flags & n.MS_BIND))
        mapping = idmap.parse(where, m, idmap_opt, idmap_index)
    if copy_up and mtype != "tmpfs":
        raise ConfigError("tmpcopyup only applies to tmpfs mounts", f"{where}.options")
    return Mount(index, clean_destination(dest, rootfs), mtype, source, flags, cleared,
                 propagation, attr_set, attr_clr, ",".join(data), idmap=mapping, copy_up=copy_up)


def _lexically_in(path: str, root: str) -> bool:
    return bool(root) and (path + "/").startswith(root.rstrip("/") + "/")


def flag_names(flags: int) -> str:
    return "|".join(name for name, bit in _FLAG_NAMES if flags & bit) or "none"


def statfs_flags(path_or_fd) -> int:
    """The mount flags of the mount holding `path_or_fd` (runc's statfsToMountFlags)."""
    f_flag = os.statvfs(path_or_fd).f_flag
    flags = 0
    for bit, ms in _STATFS_FLAGS:
        if f_flag & bit:
            flags |= ms
    if not flags & _ATIME_ENUM:
        flags |= n.MS_STRICTATIME  # not a stored flag: what "none of the others" means
    return flags


# --- in init ------------------------------------------------------------------

class Root:
    """What every mount in init needs: the rootfs (a path and an O_PATH fd),
    the cgroup mounter, and a way to ask the host for a mount source."""

    def __init__(self, rootfs: str, root_fd: int, cgroup_mounter=None, host_source=None):
        self.path = rootfs
        self.fd = root_fd
        self.cgroup_mounter = cgroup_mounter     # callable(root_fd, Mount), for cgroup mounts
        self.host_source = host_source           # callable(Mount) -> fd, or None (rootless)


class _Source:
    """A bind mount's source: its path, or an fd the host opened for it
    (an O_PATH fd, or a detached id-mapped tree to attach)."""

    def __init__(self, m: Mount, root: Root):
        self.path, self.fd, self.tree = m.source, -1, False
        if m.idmap is not None:
            self.fd, self.tree = _ask_host(m, root), True
        elif root.host_source is not None:
            try:
                os.stat(m.source)
            except OSError:  # out of our reach (a user namespace): the host opens it
                self.fd = _ask_host(m, root)
        if self.fd >= 0 and not self.tree:
            self.path = inroot.fd_path(self.fd)

    def stat_target(self):
        return self.path if self.fd < 0 else self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _ask_host(m: Mount, root: Root) -> int:
    if root.host_source is None:
        raise ConfigError("id-mapped mounts need the host's help, which a rootless "
                          "runtime cannot give", m.where)
    return root.host_source(m)


def mount_into_root(root: Root, m: Mount) -> None:
    """Perform one config mount onto its destination resolved inside the root."""
    if m.type == "cgroup" or m.type == "cgroup2":
        if root.cgroup_mounter is None:
            raise ConfigError("cgroup mounts need a mount namespace", m.where)
        root.cgroup_mounter(root.fd, m)
        return
    source = _Source(m, root) if m.is_bind else None
    try:
        if m.type in ("proc", "sysfs"):
            _check_ordinary_directory(root, m)
        target_fd, data = _mountpoint(root, m, source)
        try:
            in_root = _in_root_path(root, target_fd, m)
            check_proc_mount(in_root, m, source)
            if m.is_bind:
                _bind(root, m, source, target_fd, in_root)
            else:
                _mount_fs(root, m, target_fd, in_root, data)
        finally:
            os.close(target_fd)
        # the mount's own root, now that it covers the destination
        with inroot.opened(root.fd, in_root) as target:
            for prop in m.propagation:
                n.mount(None, target, None, prop)
            if m.attr_set or m.attr_clr:
                n.mount_setattr(-100, target, n.AT_RECURSIVE, m.attr_set, m.attr_clr)
    finally:
        if source is not None:
            source.close()


def _check_ordinary_directory(root: Root, m: Mount) -> None:
    """proc and sysfs never go through a symlink (or onto anything but a
    directory): the classic way to redirect them (CVE-2019-19921)."""
    try:
        parent, name = inroot.parent_and_name(root.fd, m.destination, create_parent=False)
    except FileNotFoundError:
        return
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    finally:
        os.close(parent)
    if not _is_dir(st.st_mode):
        raise ConfigError(f'filesystem "{m.type}" must be mounted on ordinary directory',
                          f"{m.where}.destination")


def _mountpoint(root: Root, m: Mount, source: _Source | None) -> tuple[int, str]:
    """An O_PATH fd of the destination (made if missing, as a file for a
    bind of a file), and the mount data (a tmpfs inherits the mode of the
    directory it covers)."""
    data = m.data
    try:
        fd = inroot.open_in_root(root.fd, m.destination)
    except FileNotFoundError:
        kind = "dir"
        if source is not None and not _is_dir(os.stat(source.stat_target()).st_mode):
            kind = "file"
        try:
            return inroot.make_in_root(root.fd, m.destination, kind), data
        except OSError as e:
            raise ConfigError(f"making mountpoint {m.destination}: {os.strerror(e.errno)}",
                              f"{m.where}.destination") from None
    if m.type == "tmpfs":
        mode = os.fstat(fd).st_mode & 0o7777
        data = f"mode={mode:04o}" + ("," + data if data else "")
    return fd, data


def _in_root_path(root: Root, fd: int, m: Mount) -> str:
    """The destination as resolved (symlinks followed inside the root)."""
    full = os.readlink(inroot.fd_path(fd))
    if not _lexically_in(full, root.path):
        raise ConfigError(f"mountpoint {full} is outside of rootfs {root.path}",
                          f"{m.where}.destination")
    rel = full[len(root.path.rstrip("/")):]
    if rel in ("", "/"):
        raise ConfigError(f"mountpoint {m.destination} is on the top of rootfs {root.path}",
                          f"{m.where}.destination")
    return rel


def check_proc_mount(in_root: str, m: Mount, source: _Source | None) -> None:
    """Only a procfs goes on /proc, and nothing below it but lxcfs's files."""
    if in_root == "/proc":
        if m.type == "proc":
            return
        if source is not None and n.fstatfs_type(source.stat_target()) == PROC_SUPER_MAGIC:
            return  # a bind of a procfs
        raise ConfigError(f'"{in_root}" cannot be mounted because it is not of type proc',
                          f"{m.where}.destination")
    if in_root.startswith("/proc/") and in_root not in _PROC_ALLOWED:
        raise ConfigError(f'"{in_root}" cannot be mounted because it is inside /proc',
                          f"{m.where}.destination")


def _is_dir(mode: int) -> bool:
    return mode & 0o170000 == 0o040000


def _mount_fs(root: Root, m: Mount, target_fd: int, in_root: str, data: str) -> None:
    flags = m.flags & ~n.MS_REMOUNT
    if m.ro_later:
        flags &= ~n.MS_RDONLY
    # tmpcopyup: keep a handle on what the tmpfs is about to cover
    covered = (inroot.open_in_root(root.fd, in_root, os.O_RDONLY | os.O_DIRECTORY)
               if m.copy_up else -1)
    try:
        try:
            n.mount(m.source, inroot.fd_path(target_fd), m.type, flags, data or None)
        except PermissionError:
            if m.type != "sysfs":
                raise
            # a user namespace without its own network namespace may not mount
            # sysfs: bind the host's, read-only (what runc does)
            bind_in_root(root.fd, "/sys", in_root,
                         n.MS_REC | n.MS_RDONLY | n.MS_NOSUID | n.MS_NODEV | n.MS_NOEXEC)
        if covered >= 0:
            with inroot.opened(root.fd, in_root) as target:
                _copy_tree(inroot.fd_path(covered), target)
    finally:
        if covered >= 0:
            os.close(covered)


def _copy_tree(source: str, target: str) -> None:
    """Copy a directory's contents keeping modes, times and owners (tmpcopyup)."""
    import shutil
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    for dirpath, dirnames, filenames in os.walk(source):
        for name in dirnames + filenames:
            src = os.path.join(dirpath, name)
            st = os.lstat(src)
            os.lchown(os.path.join(target, os.path.relpath(src, source)), st.st_uid, st.st_gid)
    st = os.stat(source)
    os.chown(target, st.st_uid, st.st_gid)
    os.chmod(target, st.st_mode & 0o7777)


def _bind(root: Root, m: Mount, source: _Source, target_fd: int, in_root: str) -> None:
    if source.tree:
        from pyrunc.rootfs import idmap  # a detached id-mapped tree the host made
        idmap.attach(source.fd, target_fd)
    else:
        n.mount(source.path, inroot.fd_path(target_fd), None, n.MS_BIND | (m.flags & n.MS_REC))
    # runc 1.2: no flag named at all keeps the source's; any set or cleared
    # flag asks for exactly the flags named (unlike mount(8), which ignores clears)
    if m.flags & ~(n.MS_BIND | n.MS_REC | n.MS_REMOUNT) or m.cleared:
        with inroot.opened(root.fd, in_root) as target:
            remount_bind(target, m.flags, m.cleared, lambda: statfs_flags(source.stat_target()))


class FlagsRefused(OSError):
    """The kernel keeps flags of the bind source locked that the config
    clears or changes; strerror says which."""


def remount_bind(target: str, flags: int, cleared: int, source_flags) -> None:
    """Give the bind mount at `target` the flags asked for. If the kernel
    refuses (flags it keeps locked from the source: a user namespace), keep
    the source's lockable flags that were not explicitly cleared; clearing
    one of those, or asking for another atime mode, is an error."""
    flags = (flags | n.MS_BIND | n.MS_REMOUNT) & ~n.MS_REC
    try:
        n.mount(None, target, None, flags)
        return
    except OSError as e:
        first = e
    src = source_flags()
    why = os.strerror(first.errno)
    locked = src & cleared & LOCKABLE
    if locked:
        raise FlagsRefused(first.errno, f"cannot clear locked flags {flag_names(locked)}: {why}")
    if flags & _ATIME and flags & _ATIME != src & _ATIME:
        raise FlagsRefused(first.errno, "cannot change locked atime flags "
                                        f"{flag_names(src & _ATIME)}: {why}")
    try:
        n.mount(None, target, None, flags | (src & LOCKABLE))
    except OSError as e:
        raise FlagsRefused(e.errno, f"remount with locked flags {flag_names(src & LOCKABLE)} "
                                    f"re-applied: {os.strerror(e.errno)}") from None


def bind_in_root(root_fd: int, source: str, dest: str, flags: int) -> None:
    """Bind `source` on the in-root `dest` with `flags` (the runtime's own
    binds: cgroup directories, the sysfs fallback)."""
    with inroot.opened(root_fd, dest) as target:
        n.mount(source, target, None, n.MS_BIND | (flags & n.MS_REC))
    if flags & ~(n.MS_BIND | n.MS_REC):
        with inroot.opened(root_fd, dest) as target:
            remount_bind(target, flags, 0, lambda: statfs_flags(source))


def remount(target: str, flags: int) -> None:
    n.mount(None, target, None, n.MS_REMOUNT | flags)
