"""Build the container's filesystem view, in init, in its own mount namespace.

prepare(): propagation, rootfs bind, config mounts, devices, /dev links.
enter():   pivot_root (or move + chroot with --no-pivot).
finalize(): read-only tmpfs and /dev, read-only root, read-only and masked
            paths (after pivot, so the paths are the container's own), in
            runc's order.
"""
import errno
import os
import stat
import time

from pyrunc.lean.record import field, record

from pyrunc import log, native as n
from pyrunc.lean.mountinfo import read_mountinfo
from pyrunc.rootfs import inroot
from pyrunc.rootfs.devices import Device, create_device, setup_dev_symlinks
from pyrunc.rootfs.mounts import (PROPAGATION, FlagsRefused, Mount, Root, mount_into_root, remount,
                                  remount_bind, statfs_flags)
from pyrunc.errors import ConfigError


@record
class RootfsPlan:
    rootfs: str                       # absolute host path
    readonly: bool = False
    propagation: int = 0              # rootfsPropagation flags, 0 = runc's default (rslave)
    mounts: list[Mount] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    no_pivot: bool = False
    private_mount_ns: bool = True     # False: mounts land in the host's namespace (chroot)
    bind_devices: bool = False        # in a user namespace mknod is refused: bind the host's
    cgroup_mounter: object = None     # callable(root_fd, Mount) for type cgroup mounts
    host_sources: bool = True         # init may ask the host to open bind sources (not rootless)


def parse_propagation(value: str | None) -> int:
    if not value:
        return 0
    if value not in PROPAGATION:
        raise ConfigError(f"unknown rootfsPropagation {value!r}", "linux.rootfsPropagation")
    return PROPAGATION[value]


def prepare(plan: RootfsPlan, host_source=None) -> None:
    """`host_source(mount)` -> fd: the host opens a bind source (sources.py)."""
    if plan.private_mount_ns:
        # Never let our mounts propagate to the host: rslave by default.
        n.mount(None, "/", None, plan.propagation or (n.MS_SLAVE | n.MS_REC))
        _make_parent_mount_private(plan.rootfs)
        n.mount(plan.rootfs, plan.rootfs, None, n.MS_BIND | n.MS_REC)
    root_fd = os.open(plan.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        root = Root(plan.rootfs, root_fd, plan.cgroup_mounter,
                    host_source if plan.host_sources else None)
        for m in plan.mounts:
            log.debug("mounting %s on %s (type %s, flags %#x, data %r)", m.source, m.destination,
                      m.type, m.flags, m.data)
            try:
                mount_into_root(root, m)
            except OSError as e:
                why = e.strerror if isinstance(e, FlagsRefused) else os.strerror(e.errno)
                raise ConfigError(f"mounting {m.source} on {m.destination} ({m.type}): {why}",
                                  m.where) from None
        dev_is_bind = any(m.destination == "/dev" and m.is_bind for m in plan.mounts)
        if not dev_is_bind:
            old = os.umask(0)
            try:
                for i, dev in enumerate(plan.devices):
                    try:
                        create_device(root_fd, dev, plan.bind_devices)
                    except OSError as e:
                        raise ConfigError(f"creating device {dev.path}: {os.strerror(e.errno)}",
                                          "linux.devices") from None
            finally:
                os.umask(old)
            setup_dev_symlinks(root_fd)
            log.debug("created %d devices and the /dev symlinks", len(plan.devices))
    finally:
        os.close(root_fd)


def _make_parent_mount_private(path: str) -> None:
    """pivot_root refuses a new root whose parent mount is shared."""
    mountpoint = _mountpoint_of(path)
    n.mount(None, mountpoint, None, n.MS_PRIVATE)


def _mountpoint_of(path: str) -> str:
    best = "/"
    for m in read_mountinfo():
        mp = m.mountpoint
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
            best = mp
    return best


def enter(plan: RootfsPlan) -> None:
    os.chdir(plan.rootfs)
    if not plan.private_mount_ns:
        os.chroot(".")  # pivot_root would swap the host's own root
    elif plan.no_pivot:
        _hide_host_proc_and_sys(plan.rootfs)
        n.mount(plan.rootfs, "/", None, n.MS_MOVE)
        os.chroot(".")
    else:
        _pivot_root(plan.rootfs)
    os.chdir("/")
    # Propagation of the new "/" can only be set once it is "/" (doing it on
    # the old root would reach the host's mounts when they are shared).
    if plan.propagation and not plan.propagation & n.MS_PRIVATE:
        n.mount(None, "/", None, plan.propagation)


def _pivot_root(rootfs: str) -> None:
    """pivot_root(".", ".") stacks the old root under the new one; unmount it from there."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        n.pivot_root(".", ".")
        os.fchdir(old_root)
        # rslave first, so unmounting does not propagate to the host
        n.mount(None, ".", None, n.MS_SLAVE | n.MS_REC)
        n.umount(".", n.MNT_DETACH)
        os.fchdir(new_root)
    finally:
        os.close(old_root)
        os.close(new_root)


def _hide_host_proc_and_sys(rootfs: str) -> None:
    """--no-pivot: the host's procfs and sysfs stay in our mount namespace
    under the chroot. A whole (root "/") mount of either lets a process in
    the container mount a fresh one, which shows what maskedPaths hide (the
    kernel's mount_too_revealing check passes): detach them, or cover them
    where we may not (runc's msMoveRoot)."""
    for e in read_mountinfo():
        if e.root != "/" or e.fstype not in ("proc", "sysfs") or e.mountpoint.startswith(rootfs):
            continue
        try:
            n.mount(None, e.mountpoint, None, n.MS_SLAVE | n.MS_REC)  # keep the host's as is
        except FileNotFoundError:
            continue  # went with a parent already
        try:
            n.umount(e.mountpoint, n.MNT_DETACH)
        except OSError as err:
            if err.errno not in (errno.EINVAL, errno.EPERM):
                raise
            n.mount("tmpfs", e.mountpoint, "tmpfs", 0, None)


def finalize(plan: RootfsPlan) -> None:
    """Runs after pivot_root: paths are the container's. Without a mount
    namespace of its own there is nothing to finalize (as in runc)."""
    if not plan.private_mount_ns:
        return
    root_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for m in plan.mounts:
            if m.ro_later:
                _remount_readonly(root_fd, m)
        if plan.readonly:
            try:
                remount_bind("/", n.MS_RDONLY, 0, lambda: statfs_flags("/"))
            except OSError as e:
                raise ConfigError(f"making the root read-only: {os.strerror(e.errno)}",
                                  "root.readonly") from None
        for i, path in enumerate(plan.readonly_paths):
            _readonly_path(root_fd, path, f"linux.readonlyPaths[{i}]")
        _mask_paths(root_fd, plan.masked_paths)
    finally:
        os.close(root_fd)


def _remount_readonly(root_fd: int, m: Mount) -> None:
    """A read-only tmpfs or /dev, once what goes below it is there."""
    flags = (m.flags & ~n.MS_REC) | n.MS_REMOUNT | n.MS_BIND | n.MS_RDONLY
    for attempt in range(5):
        try:
            with inroot.opened(root_fd, m.destination) as target:
                n.mount(None, target, None, flags)
            return
        except OSError as e:
            if e.errno != errno.EBUSY or attempt == 4:
                raise ConfigError(f"making {m.destination} read-only: {os.strerror(e.errno)}",
                                  m.where) from None
            time.sleep(0.1)


def _readonly_path(root_fd: int, path: str, where: str) -> None:
    try:
        with inroot.opened(root_fd, path) as target:
            n.mount(target, target, None, n.MS_BIND | n.MS_REC)
        with inroot.opened(root_fd, path) as target:
            keep = statfs_flags(target) & (n.MS_NOSUID | n.MS_NODEV | n.MS_NOEXEC)
            remount(target, n.MS_BIND | n.MS_RDONLY | n.MS_NOSUID | n.MS_NODEV | n.MS_NOEXEC
                    | keep)
    except FileNotFoundError:
        return
    except OSError as e:
        raise ConfigError(f"making {path} read-only: {os.strerror(e.errno)}", where) from None


def _mask_paths(root_fd: int, paths: list[str]) -> None:
    """Files get /dev/null bound on them; directories a read-only tmpfs of
    one block and one inode, which later ones share (a bind of the first).
    A path listed twice is masked once (runc 1.5's maskPaths)."""
    if not paths:
        return
    null_fd = _open_dev_null(root_fd)
    shared, shared_ok, seen = -1, True, set()
    try:
        for i, path in enumerate(paths):
            where = f"linux.maskedPaths[{i}]"
            try:
                fd = inroot.open_in_root(root_fd, path)
            except FileNotFoundError:
                continue
            except OSError as e:
                raise ConfigError(f"masking {path}: {os.strerror(e.errno)}", where) from None
            try:
                clean = os.path.normpath("/" + path)
                if clean in seen:
                    continue
                seen.add(clean)
                target = inroot.fd_path(fd)
                if not inroot.is_dir_fd(fd):
                    n.mount(inroot.fd_path(null_fd), target, None, n.MS_BIND)
                    continue
                if shared >= 0 and shared_ok:
                    try:
                        n.mount(inroot.fd_path(shared), target, None, n.MS_BIND)
                        continue
                    except OSError:
                        shared_ok = False  # one tmpfs each from here on
                _mask_dir(target)
                if shared < 0 and shared_ok:
                    shared = inroot.open_in_root(root_fd, clean)  # the tmpfs just mounted
            except OSError as e:
                raise ConfigError(f"masking {path}: {os.strerror(e.errno)}", where) from None
            finally:
                os.close(fd)
    finally:
        os.close(null_fd)
        if shared >= 0:
            os.close(shared)


def _open_dev_null(root_fd: int) -> int:
    """The container's /dev/null, checked to be the real one before anything
    is bound from it."""
    try:
        fd = inroot.open_in_root(root_fd, "/dev/null")
    except OSError as e:
        raise ConfigError(f"can't mask paths: /dev/null: {os.strerror(e.errno)}",
                          "linux.maskedPaths") from None
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise ConfigError("can't mask paths: the container's /dev/null is not the null device",
                          "linux.maskedPaths")
    return fd


def _mask_dir(target: str) -> None:
    try:
        n.mount("tmpfs", target, "tmpfs", n.MS_RDONLY, "nr_blocks=1,nr_inodes=1")
    except OSError:  # some kernels want at least two inodes
        n.mount("tmpfs", target, "tmpfs", n.MS_RDONLY, "nr_blocks=1,nr_inodes=2")
