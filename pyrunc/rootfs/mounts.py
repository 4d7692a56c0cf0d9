"""The config's `mounts`: option parsing (before fork) and mounting (in init)."""
import os
from pyrunc.lean.record import field, record

from pyrunc import native as n
from pyrunc.errors import ConfigError
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
    "suid": (True, n.MS_NOSUID), "sync": (False, n.MS_SYNCHRONOUS),
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
    "rrelatime": (True, _ATTR_ATIME_MASK), "rnorelatime": (False, _ATTR_NOATIME),
    "rnoatime": (False, _ATTR_NOATIME), "ratime": (True, _ATTR_ATIME_MASK),
    "rstrictatime": (False, _ATTR_STRICTATIME), "rnostrictatime": (True, _ATTR_ATIME_MASK),
    "rnosymfollow": (False, _ATTR_NOSYMFOLLOW), "rsymfollow": (True, _ATTR_NOSYMFOLLOW),
}
# flags that bind mounts can only get through a remount
_BIND_REMOUNT_MASK = (n.MS_RDONLY | n.MS_NOSUID | n.MS_NODEV | n.MS_NOEXEC | n.MS_NOATIME
                      | n.MS_NODIRATIME | n.MS_RELATIME | n.MS_STRICTATIME | n.MS_NOSYMFOLLOW)
def mount_option_names() -> list[str]:
    """Every option parse_mount understands (for `features`)."""
    return list(_FLAGS) + list(PROPAGATION) + list(_RECURSIVE) + ["idmap", "ridmap"]


@record
class Mount:
    """One config mount, parsed and checked before fork."""
    index: int
    destination: str
    type: str
    source: str
    flags: int = 0
    propagation: list = field(default_factory=list)
    attr_set: int = 0
    attr_clr: int = 0
    data: str = ""
    idmap: object = None      # idmap.IdMapping of an id-mapped bind mount
    idmap_fd: int = -1        # its detached mount, made by the host (idmap.open_mounts)
    copy_up: bool = False     # tmpcopyup: a tmpfs starts with what it covers

    @property
    def where(self) -> str:
        return f"mounts[{self.index}]"

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & n.MS_BIND)


def parse_mount(index: int, m: dict, bundle: str) -> Mount:
    where = f"mounts[{index}]"
    dest = m.get("destination", "")
    if not dest.startswith("/"):
        raise ConfigError(f"mount destination {dest!r} is not an absolute path", f"{where}.destination")
    flags, clear, data, propagation, copy_up = 0, 0, [], [], False
    idmap_opt = idmap_index = None
    attr_set = attr_clr = 0
    for j, opt in enumerate(m.get("options") or []):
        if opt in _FLAGS:
            is_clear, flag = _FLAGS[opt]
            if is_clear:
                flags &= ~flag
                clear |= flag
            else:
                flags |= flag
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt in _RECURSIVE:
            is_clear, attr = _RECURSIVE[opt]
            if is_clear:
                attr_clr |= attr
            else:
                attr_set |= attr
                if attr & _ATTR_ATIME_MASK:
                    attr_clr |= _ATTR_ATIME_MASK
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
    source = m.get("source") or mtype or "none"
    if flags & n.MS_BIND:
        if not os.path.isabs(source):
            source = os.path.join(bundle, source)
        if not os.path.exists(source):
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
    return Mount(index, os.path.normpath(dest), mtype, source, flags, propagation,
                 attr_set, attr_clr, ",".join(data), idmap=mapping, copy_up=copy_up)


# --- in the host, around the fork ---------------------------------------------------

def open_idmapped_mounts(plan) -> list[int]:
    """The detached id-mapped mounts init will attach (see idmap.py): their fds."""
    if not any(m.idmap is not None for m in plan.rootfs.mounts):
        return []
    from pyrunc.rootfs import idmap
    return idmap.open_mounts(plan)


def close_idmapped_mounts(plan) -> None:
    for m in plan.rootfs.mounts:
        if m.idmap_fd >= 0:
            os.close(m.idmap_fd)
            m.idmap_fd = -1


# --- in init ------------------------------------------------------------------

def mount_into_root(root_fd: int, m: Mount, cgroup_mounter=None) -> None:
    """Perform one config mount onto its destination resolved inside the root."""
    if m.type == "cgroup" or m.type == "cgroup2":
        if cgroup_mounter is None:
            raise ConfigError("cgroup mounts need a mount namespace", m.where)
        cgroup_mounter(root_fd, m)
        return
    kind = "dir"
    if m.is_bind and not os.path.isdir(m.source):
        kind = "file"
    os.close(inroot.make_in_root(root_fd, m.destination, kind))
    if m.idmap is not None:
        _attach_idmapped(root_fd, m)
    elif m.is_bind:
        bind_in_root(root_fd, m.source, m.destination, m.flags)
    else:
        # tmpcopyup: keep a handle on what the tmpfs is about to cover
        covered = (inroot.open_in_root(root_fd, m.destination, os.O_RDONLY | os.O_DIRECTORY)
                   if m.copy_up else -1)
        try:
            with inroot.opened(root_fd, m.destination) as target:
                n.mount(m.source, target, m.type, m.flags & ~n.MS_REMOUNT, m.data or None)
            if covered >= 0:
                with inroot.opened(root_fd, m.destination) as target:
                    _copy_tree(inroot.fd_path(covered), target)
        except PermissionError:
            if m.type != "sysfs":
                raise
            # a user namespace without its own network namespace may not mount
            # sysfs: bind the host's, read-only (what runc does)
            bind_in_root(root_fd, "/sys", m.destination,
                         n.MS_REC | n.MS_RDONLY | n.MS_NOSUID | n.MS_NODEV | n.MS_NOEXEC)
        finally:
            if covered >= 0:
                os.close(covered)
    # the mount's own root, now that it covers the destination
    with inroot.opened(root_fd, m.destination) as target:
        for prop in m.propagation:
            n.mount(None, target, None, prop)
        if m.attr_set or m.attr_clr:
            n.mount_setattr(-100, target, n.AT_RECURSIVE, m.attr_set, m.attr_clr)


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


def _attach_idmapped(root_fd: int, m: Mount) -> None:
    """Move the host-made detached id-mapped mount onto the destination, then
    remount it for the flags a bind ignores (as bind_in_root does)."""
    if m.idmap_fd < 0:
        raise ConfigError("the id-mapped mount was not prepared by the host", m.where)
    from pyrunc.rootfs import idmap  # imported by parse_mount in the host already
    try:
        target_fd = inroot.open_in_root(root_fd, m.destination)
        try:
            idmap.attach(m.idmap_fd, target_fd)
        finally:
            os.close(target_fd)
    finally:
        os.close(m.idmap_fd)
        m.idmap_fd = -1
    extra = m.flags & _BIND_REMOUNT_MASK
    if extra:
        with inroot.opened(root_fd, m.destination) as target:
            remount(target, extra | n.MS_BIND)


def bind_in_root(root_fd: int, source: str, dest: str, flags: int) -> None:
    """Bind `source` on the in-root `dest`, then remount it for the flags a
    bind ignores (a remount must name the new mount, so `dest` is reopened)."""
    with inroot.opened(root_fd, dest) as target:
        n.mount(source, target, None, n.MS_BIND | (flags & n.MS_REC))
    extra = flags & _BIND_REMOUNT_MASK
    if extra:
        with inroot.opened(root_fd, dest) as target:
            remount(target, extra | n.MS_BIND)


def remount(target: str, flags: int) -> None:
    n.mount(None, target, None, n.MS_REMOUNT | flags)
