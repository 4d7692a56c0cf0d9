"""A container without a private mount namespace mounts into the host's
(runc does the same). Those mounts are found again by difference with the
mount table taken before create, and removed when the container goes."""
from pyrunc import native
from pyrunc.lean.mountinfo import read_mountinfo

UMOUNT_NOFOLLOW = 8


def mounts_under(path: str) -> list[tuple[int, str]]:
    """(mount id, mount point) of every mount at or below `path`, in table order."""
    prefix = path.rstrip("/") + "/"
    return [(m.mount_id, m.mountpoint) for m in read_mountinfo()
            if m.mountpoint == path or m.mountpoint.startswith(prefix)]


def unmount_new(path: str, baseline: list[int]) -> None:
    """Unmount (lazily, newest first) every mount below `path` not in `baseline`."""
    keep = set(baseline)
    for mount_id, mountpoint in reversed(mounts_under(path)):
        if mount_id not in keep:
            try:
                native.umount(mountpoint, native.MNT_DETACH | UMOUNT_NOFOLLOW)
            except OSError:
                pass  # already gone with a parent
