"""Id-mapped bind mounts: `mounts[].uidMappings/gidMappings` and the
`idmap`/`ridmap` options (runtime-spec 1.1, runc semantics).

  * mappings given (with or without `idmap`) -> those mappings;
  * `idmap`/`ridmap` without mappings -> the container's user namespace
    (its linux.uid/gidMappings, or the namespace it joins by path);
  * `ridmap` applies the mapping to every mount of an rbind tree, `idmap`
    to its top mount only.

A mapping reads like a user namespace's: a file owned by `containerID` on
the source filesystem shows as owned by `hostID` on the mount (so with the
container's own mappings, files of the host's uid 0 belong to the
container's root).

Where it happens: setting MOUNT_ATTR_IDMAP needs CAP_SYS_ADMIN both in the
user namespace that owns the source filesystem (the host's, for a host
directory) and in the mapping's namespace. The container's init has
neither once it is in its own user namespace, so, as runc does, the host
prepares each mount when init asks for it (sources.py), in the container's
mount namespace, so that a source the earlier mounts made is seen:

  host: one user namespace per distinct mapping (a child unshares
      CLONE_NEWUSER and waits, we write its maps, keep an fd of
      /proc/<child>/ns/user, kill and reap it); open_tree(OPEN_TREE_CLONE
      [|AT_RECURSIVE for rbind]) of the source and mount_setattr(
      MOUNT_ATTR_IDMAP [|AT_RECURSIVE for ridmap]): a detached id-mapped
      mount whose fd goes to init over the sync channel;
  init, before pivot_root: move_mount of that fd onto the destination
      resolved inside the rootfs, then the flags a bind ignores (ro,
      nosuid…) by remount, like any bind mount (see mounts.mount_into_root).
"""
import os
import _signal  # the signal module's C core: the wrapper imports enum (slow start-up)

from pyrunc import native as n
from pyrunc.errors import ConfigError

OPEN_TREE_CLOEXEC = os.O_CLOEXEC


class IdMapping:
    """An id-mapped mount's mapping, parsed before fork."""
    __slots__ = ("uid_mappings", "gid_mappings", "recursive", "option")

    def __init__(self, uid_mappings: list, gid_mappings: list, recursive: bool, option: str | None):
        self.uid_mappings = uid_mappings    # [(containerID, hostID, size)], [] = the container's
        self.gid_mappings = gid_mappings
        self.recursive = recursive          # ridmap
        self.option = option                # "idmap", "ridmap" or None (mappings only)

    def __repr__(self) -> str:
        return (f"IdMapping(uid={self.uid_mappings}, gid={self.gid_mappings}, "
                f"recursive={self.recursive})")


def parse_mappings(entries: list | None, where: str) -> list[tuple[int, int, int]]:
    """[(containerID, hostID, size)] of a user namespace or an id-mapped mount,
    checked for overlaps on either side."""
    maps = []
    for i, m in enumerate(entries or []):
        c, h, size = m.get("containerID"), m.get("hostID"), m.get("size")
        if not all(isinstance(v, int) and v >= 0 for v in (c, h, size)) or size == 0:
            raise ConfigError("a mapping needs containerID, hostID and a size > 0", f"{where}[{i}]")
        if c + size > 1 << 32 or h + size > 1 << 32:
            raise ConfigError("mapping is out of the 32-bit id range", f"{where}[{i}]")
        for j, (c2, h2, size2) in enumerate(maps):
            if c < c2 + size2 and c2 < c + size or h < h2 + size2 and h2 < h + size:
                raise ConfigError(f"mapping overlaps {where}[{j}]", f"{where}[{i}]")
        maps.append((c, h, size))
    return maps


def parse(where: str, m: dict, option: str | None, option_index: int | None) -> IdMapping:
    """From a config mount with mappings and/or an idmap/ridmap option."""
    uid_maps = parse_mappings(m.get("uidMappings"), f"{where}.uidMappings")
    gid_maps = parse_mappings(m.get("gidMappings"), f"{where}.gidMappings")
    if bool(uid_maps) != bool(gid_maps):
        missing = "gidMappings" if uid_maps else "uidMappings"
        raise ConfigError("an id-mapped mount needs both uidMappings and gidMappings",
                          f"{where}.{missing}")
    if os.geteuid() != 0:
        field = f"{where}.options[{option_index}]" if option_index is not None else \
            f"{where}.uidMappings"
        raise ConfigError("id-mapped mounts are not supported for rootless containers "
                          "(setting MOUNT_ATTR_IDMAP needs the host's CAP_SYS_ADMIN)", field)
    return IdMapping(uid_maps, gid_maps, option == "ridmap", option)


def check_bind(where: str, is_bind: bool) -> None:
    if not is_bind:
        raise ConfigError("id-mapped mounts are only supported for bind mounts", f"{where}.type")


# --- host side ------------------------------------------------------------------------

def check_userns(m, namespaces) -> None:
    """Before fork: a mount without mappings of its own borrows the container's."""
    idm = m.idmap
    if idm.uid_mappings or "user" in namespaces.join or namespaces.has_new("user"):
        return
    field = f"{m.where}.options" if idm.option else m.where
    raise ConfigError(f"'{idm.option or 'idmap'}' without uidMappings/gidMappings uses the "
                      "container's user namespace mappings, but the container has no user "
                      "namespace", field)


def userns_for(m, namespaces, cache: dict) -> int:
    """An fd of a user namespace carrying the mount's mapping (cached per mapping)."""
    idm = m.idmap
    if idm.uid_mappings:
        uid_maps, gid_maps = idm.uid_mappings, idm.gid_mappings
    elif "user" in namespaces.join:
        path = namespaces.join["user"]
        key = ("path", path)
        if key not in cache:
            try:
                cache[key] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise ConfigError(f"cannot open the user namespace {path} for an id-mapped "
                                  f"mount: {e.strerror}", m.where) from None
        return cache[key]
    else:
        uid_maps, gid_maps = namespaces.uid_mappings, namespaces.gid_mappings
    key = (tuple(uid_maps), tuple(gid_maps))
    if key not in cache:
        cache[key] = make_userns(uid_maps, gid_maps, m.where)
    return cache[key]


def make_userns(uid_maps: list, gid_maps: list, where: str) -> int:
    """An fd of a new user namespace with these maps, owned by no process:
    a child unshares it and waits while we write its maps and open it."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    hold_r, hold_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(ready_r)
            os.close(hold_w)
            n.unshare(n.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(hold_r, 1)  # until the parent has opened our namespace
            code = 0
        except BaseException:
            pass
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(hold_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise ConfigError("cannot create a user namespace for an id-mapped mount", where)
        for kind, maps in (("uid", uid_maps), ("gid", gid_maps)):
            try:
                with open(f"/proc/{pid}/{kind}_map", "w") as f:
                    f.write("".join(f"{c} {h} {size}\n" for c, h, size in maps))
            except OSError as e:
                raise ConfigError(f"cannot write the {kind} map of an id-mapped mount: "
                                  f"{e.strerror}", f"{where}.{kind}Mappings") from None
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(hold_w)
        try:
            os.kill(pid, _signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)


def idmapped_tree(m, userns_fd: int) -> int:
    """A detached clone of the mount's source, id-mapped through `userns_fd`
    (run in the container's mount namespace: open_tree clones only mounts
    of the caller's)."""
    flags = n.OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
    if m.flags & n.MS_REC:
        flags |= n.AT_RECURSIVE
    try:
        fd = n.open_tree(-100, m.source, flags)
    except OSError as e:
        raise ConfigError(f"cannot clone the bind source {m.source} (open_tree): "
                          f"{os.strerror(e.errno)}", m.where) from None
    try:
        at = n.AT_EMPTY_PATH | (n.AT_RECURSIVE if m.idmap.recursive else 0)
        n.mount_setattr(fd, "", at, n.MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    except OSError as e:
        os.close(fd)
        if e.errno == 22:  # EINVAL
            why = f"the filesystem of {m.source} does not support id-mapped mounts on this kernel"
        elif e.errno == 1:  # EPERM
            why = (f"cannot id-map {m.source}: {os.strerror(e.errno)} (id-mapped mounts need "
                   "CAP_SYS_ADMIN in the user namespace that owns its filesystem)")
        else:
            why = f"cannot id-map {m.source}: {os.strerror(e.errno)}"
        raise ConfigError(why, m.where) from None
    return fd


# --- in init ---------------------------------------------------------------------------

def attach(mount_fd: int, target_fd: int) -> None:
    """move_mount the detached tree onto the (O_PATH) target itself. A
    /proc/self/fd/N target path would not do: move_mount does not follow
    the last component's (magic) link without MOVE_MOUNT_T_SYMLINKS."""
    n.move_mount(mount_fd, target_fd, "", n.MOVE_MOUNT_F_EMPTY_PATH | n.MOVE_MOUNT_T_EMPTY_PATH)


def supported() -> bool:
    """open_tree/move_mount (5.2) and mount_setattr with MOUNT_ATTR_IDMAP (5.12)."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 12)
