"""Mounts of type `cgroup`: show the container its own cgroup(s).

v1: a tmpfs at the destination with one entry per host hierarchy, either a
fresh cgroup mount (with a cgroup namespace, which roots it at the
container's cgroup) or a bind of the container's cgroup directory.
v2: a cgroup2 mount (with a cgroup namespace; a bind where the kernel refuses
that mount, as runc falls back) or a bind of its directory.
"""
import errno
import os

from pyrunc import native as n
from pyrunc.lean.mountinfo import read_mountinfo
from pyrunc.rootfs import inroot
from pyrunc.rootfs.mounts import Mount, bind_in_root

_DEFAULT_FLAGS = n.MS_NOEXEC | n.MS_NOSUID | n.MS_NODEV


def host_cgroup_mounts() -> list[tuple[str, str, str]]:
    """(mount point, fstype, super options) of the host's cgroup hierarchies."""
    return [(m.mountpoint, m.fstype, m.super_options) for m in read_mountinfo()
            if m.fstype in ("cgroup", "cgroup2")]


class CgroupMounter:
    """Built before fork (reads the host's mount table); called by init."""

    def __init__(self, cgroup_dirs: list[str], cgroupns: bool, rootless: bool = False):
        self.cgroup_dirs = cgroup_dirs  # the container's cgroup directories on the host
        self.cgroupns = cgroupns
        self.rootless = rootless
        self.hierarchies = host_cgroup_mounts()
        self.unified = any(mp == "/sys/fs/cgroup" and t == "cgroup2"
                           for mp, t, _ in self.hierarchies)

    def __call__(self, root_fd: int, m: Mount) -> None:
        flags = _DEFAULT_FLAGS | (m.flags & n.MS_RDONLY)
        if self.unified:
            self._mount_one(root_fd, m.destination, "/sys/fs/cgroup", "cgroup2", "", flags)
            return
        os.close(inroot.make_in_root(root_fd, m.destination))
        with inroot.opened(root_fd, m.destination) as target:
            n.mount("tmpfs", target, "tmpfs", _DEFAULT_FLAGS, "mode=755")
        for mountpoint, fstype, superopts in self.hierarchies:
            if fstype != "cgroup" or os.path.dirname(mountpoint) != "/sys/fs/cgroup":
                continue
            name = os.path.basename(mountpoint)
            options = ",".join(o for o in superopts.split(",") if o not in ("rw", "ro"))
            self._mount_one(root_fd, f"{m.destination}/{name}", mountpoint, "cgroup", options, flags)
            for controller in name.split(",") if "," in name else ():
                inroot.symlink_in_root(root_fd, f"{m.destination}/{controller}", name)
        if m.flags & n.MS_RDONLY:
            with inroot.opened(root_fd, m.destination) as target:
                n.mount(None, target, None, n.MS_REMOUNT | n.MS_BIND | n.MS_RDONLY | _DEFAULT_FLAGS)

    def _mount_one(self, root_fd, dest, host_mountpoint, fstype, options, flags) -> None:
        os.close(inroot.make_in_root(root_fd, dest))
        if self.cgroupns:
            try:
                with inroot.opened(root_fd, dest) as target:
                    n.mount("cgroup" if fstype == "cgroup" else "cgroup2", target, fstype, flags,
                            options or None)
                return
            except OSError as e:
                # runc's fallback for cgroup2: a user namespace may not mount it
                # (EPERM), and the kernel refuses the same cgroup2 root again on
                # a mount point that already is it (EBUSY: /sys bound from the
                # host by a rootless config, and a cgroup namespace rooted at
                # the root cgroup). A bind shows the same tree.
                if fstype != "cgroup2" or e.errno not in (errno.EPERM, errno.EBUSY):
                    raise
        try:
            bind_in_root(root_fd, self._source(host_mountpoint), dest, n.MS_REC | flags)
        except FileNotFoundError:
            if not self.rootless:
                raise
            # rootless, with no cgroup of its own to show: hide the host's
            # tree rather than fail (runc masks it too)
            with inroot.opened(root_fd, dest) as target:
                n.mount("tmpfs", target, "tmpfs", n.MS_RDONLY | _DEFAULT_FLAGS, "size=0")

    def _source(self, host_mountpoint: str) -> str:
        """The container's directory in this hierarchy (its root if we made none there)."""
        for d in self.cgroup_dirs:
            if d == host_mountpoint or d.startswith(host_mountpoint.rstrip("/") + "/"):
                return d
        return host_mountpoint
