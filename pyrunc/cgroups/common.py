"""Shared bits of the cgroup layer: the error type, version detection and
small cgroupfs file helpers."""
from __future__ import annotations

import errno
import os
import time

from pyrunc.errors import PyruncError
from pyrunc.lean.procfs import read_small

CGROUP_ROOT = "/sys/fs/cgroup"


class CgroupError(PyruncError):
    """A cgroup operation failed; the message names the cgroup path."""


def detect(root: str = CGROUP_ROOT) -> str:
    """"v2" when `root` is a cgroup2 mount (pure unified mode), else "v1".

    Hybrid hosts (v1 controllers plus cgroup2 at <root>/unified) are "v1": the
    resource controllers live in the v1 hierarchies. Only a cgroup2 root has
    cgroup.controllers at its top level. Nothing is cached."""
    return "v2" if os.path.exists(os.path.join(root, "cgroup.controllers")) else "v1"


def read_file(directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    try:
        return read_small(path).decode()
    except OSError as e:
        raise CgroupError(f"cannot read {path}: {e.strerror}") from e


def write_file(directory: str, name: str, data: str) -> None:
    """One write(2) of `data`, as cgroupfs wants (no buffering, no partial lines)."""
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"cannot open {path}: {e.strerror}") from e
    try:
        os.write(fd, data.encode())
    except OSError as e:
        raise CgroupError(f"cannot write {data!r} to {path}: {e.strerror}") from e
    finally:
        os.close(fd)


def write_pid(directory: str, pid: int) -> None:
    """Write pid to <directory>/cgroup.procs, retrying EINVAL (a task still in
    TASK_NEW is refused for a moment, as runc's WriteCgroupProc knows)."""
    for attempt in range(5):
        try:
            write_file(directory, "cgroup.procs", str(pid))
            return
        except CgroupError as e:
            cause = e.__cause__
            if isinstance(cause, OSError) and cause.errno == errno.EINVAL and attempt < 4:
                time.sleep(0.03)
                continue
            raise CgroupError(f"cannot add pid {pid} to cgroup {directory}: "
                              f"{getattr(cause, 'strerror', e)}") from cause


def read_pids(directory: str) -> list[int]:
    """cgroup.procs of one cgroup; [] if the cgroup is gone."""
    try:
        with open(os.path.join(directory, "cgroup.procs")) as f:
            return [int(line) for line in f.read().split()]
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENODEV):  # (ENODEV: being removed, see cgroup_gone)
            return []
        raise CgroupError(f"cannot read {directory}/cgroup.procs: {e.strerror}") from e


def read_all_pids(directory: str) -> list[int]:
    """cgroup.procs of a cgroup and all its descendants."""
    pids: list[int] = []
    for current, _dirs, _files in os.walk(directory):
        pids.extend(read_pids(current))
    return pids


class Target:
    """Where a backend's writes go: {controller: directory} on v1, {"": the
    cgroup} on v2 (whose writers name controller ""). Every write error names
    the OCI field and the file. `journal` (a list) records the previous
    content of single-value files for rollback()."""

    def __init__(self, paths: dict[str, str], journal: list | None = None):
        self.paths = paths
        self.journal = journal

    def dir(self, ctrl: str, field: str) -> str:
        path = self.paths.get(ctrl)
        if not path:
            raise CgroupError(f"cannot set it: the {ctrl} cgroup hierarchy is not mounted "
                              "(or the container has no cgroup in it)", field)
        return path

    def has(self, ctrl: str, file: str) -> bool:
        d = self.paths.get(ctrl)
        return bool(d) and os.path.exists(os.path.join(d, file))

    def read(self, ctrl: str, file: str, field: str = "") -> str:
        path = os.path.join(self.dir(ctrl, field), file)
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError as e:
            raise CgroupError(f"cannot read {path}: {e.strerror}", field or None) from e

    def write(self, field: str, ctrl: str, file: str, value: str) -> None:
        path = os.path.join(self.dir(ctrl, field), file)
        if self.journal is not None:
            try:
                with open(path) as f:
                    old = f.read()
                if old.strip() and "\n" not in old.strip() and ":" not in old:
                    self.journal.append((path, old.strip()))
            except OSError:
                pass
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        except OSError as e:
            if e.errno == errno.ENOENT:
                raise CgroupError(f"cannot set it: {path} does not exist (the kernel lacks "
                                  "this control file)", field) from e
            raise CgroupError(f"cannot open {path}: {e.strerror}", field) from e
        try:
            os.write(fd, value.encode())
        except OSError as e:
            raise CgroupError(f"cannot write {value!r} to {path}: {e.strerror}", field) from e
        finally:
            os.close(fd)

    def rollback(self) -> None:
        """Best effort: put back the single-value files written so far."""
        for path, old in reversed(self.journal or []):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, old.encode())
                finally:
                    os.close(fd)
            except OSError:
                pass
        if self.journal is not None:
            self.journal.clear()


def errno_of(e: CgroupError) -> int | None:
    """The errno behind a CgroupError, if an OSError caused it."""
    return getattr(e.__cause__, "errno", None)


def cgroup_gone(e: CgroupError) -> bool:
    """The cgroup was removed (ENOENT), or is being removed under an open file
    (kernfs: ENODEV), e.g. by systemd once the container's scope emptied."""
    return errno_of(e) in (errno.ENOENT, errno.ENODEV)
