"""Device nodes and the /dev symlinks every container gets."""
import os
import stat
from pyrunc.lean.record import record

from pyrunc.errors import ConfigError
from pyrunc.rootfs import inroot


@record(frozen=True)
class Device:
    path: str
    type: str      # c, u, b, p
    major: int
    minor: int
    mode: int = 0o666
    uid: int = 0
    gid: int = 0


# what runc creates in every container (libcontainer/specconv AllowedDevices)
DEFAULT_DEVICES = (
    Device("/dev/null", "c", 1, 3), Device("/dev/zero", "c", 1, 5),
    Device("/dev/full", "c", 1, 7), Device("/dev/random", "c", 1, 8),
    Device("/dev/urandom", "c", 1, 9), Device("/dev/tty", "c", 5, 0),
)
SYMLINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"))
_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def parse_devices(entries: list | None) -> list[Device]:
    """linux.devices plus the defaults it does not override, in creation order."""
    devices, paths = [], set()
    for i, d in enumerate(entries or []):
        where = f"linux.devices[{i}]"
        path = d.get("path", "")
        if not path.startswith("/dev/") or ".." in path.split("/"):
            raise ConfigError(f"device path {path!r} must be an absolute path under /dev", f"{where}.path")
        dtype = d.get("type")
        if dtype not in _TYPES:
            raise ConfigError(f"unknown device type {dtype!r} (want c, u, b or p)", f"{where}.type")
        if dtype != "p" and ("major" not in d or "minor" not in d):
            raise ConfigError("major and minor are required for a character or block device", where)
        mode = d.get("fileMode", 0o666)
        devices.append(Device(os.path.normpath(path), dtype, d.get("major", 0), d.get("minor", 0),
                              mode & 0o7777, d.get("uid", 0), d.get("gid", 0)))
        paths.add(os.path.normpath(path))
    return [dev for dev in DEFAULT_DEVICES if dev.path not in paths] + devices


def create_device(root_fd: int, dev: Device, bind: bool = False) -> None:
    if bind:
        _bind_host_device(root_fd, dev)
        return
    parent, name = inroot.parent_and_name(root_fd, dev.path)
    try:
        try:
            existing = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_IFMT(existing.st_mode) == _TYPES[dev.type] and \
                    existing.st_rdev == os.makedev(dev.major, dev.minor):
                _own(parent, name, dev)
                return
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            pass
        os.mknod(name, _TYPES[dev.type] | dev.mode, os.makedev(dev.major, dev.minor), dir_fd=parent)
        _own(parent, name, dev)
    finally:
        os.close(parent)


def _bind_host_device(root_fd: int, dev: Device) -> None:
    """What runc does in a user namespace: bind the host's node onto an empty file."""
    from pyrunc import native
    os.close(inroot.make_in_root(root_fd, dev.path, "file"))
    with inroot.opened(root_fd, dev.path) as target:
        native.mount(dev.path, target, None, native.MS_BIND)


def _own(parent: int, name: str, dev: Device) -> None:
    os.chown(name, dev.uid, dev.gid, dir_fd=parent, follow_symlinks=False)
    os.chmod(name, dev.mode, dir_fd=parent)


def setup_dev_symlinks(root_fd: int) -> None:
    """/dev/fd, /dev/std{in,out,err}, /dev/ptmx -> pts/ptmx; /dev/core when the host has kcore."""
    links = list(SYMLINKS) + [("pts/ptmx", "/dev/ptmx")]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    for target, link in links:
        inroot.symlink_in_root(root_fd, link, target, replace=link == "/dev/ptmx")
