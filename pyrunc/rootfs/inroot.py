"""Resolve paths *inside* a container rootfs, never escaping it.

Every lookup goes through openat2(RESOLVE_IN_ROOT): `..` and absolute
symlinks in the rootfs are clamped to the rootfs, and magic links are
refused. Callers get an O_PATH fd and operate on `/proc/self/fd/N`, so a
symlink swapped in after the check cannot redirect a mount to the host.
"""
import os
import stat

from pyrunc import native

_RESOLVE = native.RESOLVE_IN_ROOT | native.RESOLVE_NO_MAGICLINKS
O_PATH = os.O_PATH | os.O_CLOEXEC


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


class opened:  # noqa: N801 - used like a function; contextlib costs an import on create
    """`/proc/self/fd/N` of the in-root path, valid inside the with-block."""

    def __init__(self, root_fd: int, path: str):
        self._fd = open_in_root(root_fd, path)

    def __enter__(self) -> str:
        return fd_path(self._fd)

    def __exit__(self, *exc) -> None:
        os.close(self._fd)


def open_in_root(root_fd: int, path: str, flags: int = O_PATH) -> int:
    """Open `path` as seen from inside the root (raises FileNotFoundError etc.)."""
    return native.openat2(root_fd, path.lstrip("/") or ".", flags | os.O_CLOEXEC, 0, _RESOLVE)


def make_in_root(root_fd: int, path: str, kind: str = "dir", mode: int = 0o755) -> int:
    """Create every missing component of `path` inside the root (the last one
    as a directory or an empty regular file) and return an O_PATH fd to it.
    A dangling symlink on the way is followed inside the root (its target is
    created there), as the kernel would resolve it from inside the container.
    An existing last component is accepted whatever its type; callers check."""
    for _hop in range(40):  # the kernel's own limit on symlink hops
        parts = _parts(path)
        parent = os.dup(root_fd)
        try:
            for i, name in enumerate(parts):
                last = i == len(parts) - 1
                sub = "/".join(parts[: i + 1])
                try:
                    fd = open_in_root(root_fd, sub)
                except FileNotFoundError:
                    target = _create(parent, name, "file" if last and kind == "file" else "dir", mode)
                    if target is not None:  # dangling symlink: restart along its target
                        base = "" if target.startswith("/") else "/".join(parts[:i])
                        path = "/".join([base, target] + parts[i + 1:])
                        break
                    fd = open_in_root(root_fd, sub)
                os.close(parent)
                parent = fd
            else:
                return parent
        except BaseException:
            os.close(parent)
            raise
        os.close(parent)
    raise OSError(40, "too many levels of symbolic links", path)


def _create(parent_fd: int, name: str, kind: str, mode: int) -> str | None:
    """Create `name`; if it turns out to be a dangling symlink, return its target."""
    if name == "..":
        return None  # clamped to the root by RESOLVE_IN_ROOT; nothing to create
    try:
        if kind == "dir":
            os.mkdir(name, mode, dir_fd=parent_fd)
        else:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o644, dir_fd=parent_fd))
    except FileExistsError:
        return os.readlink(name, dir_fd=parent_fd)
    return None


def is_dir_fd(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)


def parent_and_name(root_fd: int, path: str, create_parent: bool = True) -> tuple[int, str]:
    """An O_PATH fd of the (in-root) parent directory of `path`, and the last name."""
    parts = _parts(path)
    if not parts:
        raise OSError(22, "the root itself has no parent")
    parent_path = "/".join(parts[:-1])
    fd = make_in_root(root_fd, parent_path) if create_parent else open_in_root(root_fd, parent_path)
    return fd, parts[-1]


def symlink_in_root(root_fd: int, link: str, target: str, replace: bool = False) -> None:
    """Create the in-root symlink `link` -> `target` (an existing entry is kept
    unless `replace`)."""
    parent, name = parent_and_name(root_fd, link)
    try:
        if replace:
            try:
                os.unlink(name, dir_fd=parent)
            except FileNotFoundError:
                pass
        try:
            os.symlink(target, name, dir_fd=parent)
        except FileExistsError:
            pass
    finally:
        os.close(parent)
