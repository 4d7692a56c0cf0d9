"""Build the container's filesystem view, in init, in its own mount namespace.

prepare(): propagation, rootfs bind, config mounts, devices, /dev links.
enter():   pivot_root (or move + chroot with --no-pivot).
finalize(): read-only root, masked and read-only paths (after pivot, so the
            paths are the container's own).
"""
import os
from pyrunc.lean.record import field, record

from pyrunc import native as n
from pyrunc.lean.mountinfo import read_mountinfo
from pyrunc.rootfs import inroot
from pyrunc.rootfs.devices import Device, create_device, setup_dev_symlinks
from pyrunc.rootfs.mounts import PROPAGATION, Mount, mount_into_root, remount
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


def parse_propagation(value: str | None) -> int:
    if not value:
        return 0
    if value not in PROPAGATION:
        raise ConfigError(f"unknown rootfsPropagation {value!r}", "linux.rootfsPropagation")
    return PROPAGATION[value]


def prepare(plan: RootfsPlan) -> None:
    if plan.private_mount_ns:
        # Never let our mounts propagate to the host: rslave by default.
        n.mount(None, "/", None, plan.propagation or (n.MS_SLAVE | n.MS_REC))
        _make_parent_mount_private(plan.rootfs)
        n.mount(plan.rootfs, plan.rootfs, None, n.MS_BIND | n.MS_REC)
    root_fd = os.open(plan.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for m in plan.mounts:
            try:
                mount_into_root(root_fd, m, plan.cgroup_mounter)
            except OSError as e:
                raise ConfigError(f"mounting {m.source} on {m.destination} ({m.type}): "
                                  f"{os.strerror(e.errno)}", m.where) from None
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


def finalize(plan: RootfsPlan) -> None:
    """Runs after pivot_root: paths are the container's."""
    for i, path in enumerate(plan.readonly_paths):
        _readonly_path(path, f"linux.readonlyPaths[{i}]")
    for i, path in enumerate(plan.masked_paths):
        _mask_path(path, f"linux.maskedPaths[{i}]")
    if plan.readonly:
        remount("/", n.MS_BIND | n.MS_RDONLY | _current_flags("/"))


def _current_flags(path: str) -> int:
    st = os.statvfs(path)
    flags = 0
    for bit, ms in ((2, n.MS_NOSUID), (4, n.MS_NODEV), (8, n.MS_NOEXEC)):
        if st.f_flag & bit:
            flags |= ms
    return flags


def _readonly_path(path: str, where: str) -> None:
    root_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with inroot.opened(root_fd, path) as target:
            n.mount(target, target, None, n.MS_BIND | n.MS_REC)
        with inroot.opened(root_fd, path) as target:
            remount(target, n.MS_BIND | n.MS_RDONLY | n.MS_NOSUID | n.MS_NODEV | n.MS_NOEXEC
                    | _current_flags(target))
    except FileNotFoundError:
        return
    except OSError as e:
        raise ConfigError(f"making {path} read-only: {os.strerror(e.errno)}", where) from None
    finally:
        os.close(root_fd)


def _mask_path(path: str, where: str) -> None:
    root_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = inroot.open_in_root(root_fd, path)
        except FileNotFoundError:
            return
        try:
            target = inroot.fd_path(fd)
            if inroot.is_dir_fd(fd):
                n.mount("tmpfs", target, "tmpfs", n.MS_RDONLY, None)
            else:
                n.mount("/dev/null", target, None, n.MS_BIND)
        except OSError as e:
            raise ConfigError(f"masking {path}: {os.strerror(e.errno)}", where) from None
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)
