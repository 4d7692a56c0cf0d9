"""OCI linux.cgroupsPath -> cgroup directories, mirroring runc's cgroupfs driver
(opencontainers/cgroups fs/paths.go, fs2/defaultpath.go, internal/path)."""
from __future__ import annotations

import os

from pyrunc.errors import ConfigError, NotSupportedError

from pyrunc.lean import mountinfo

from .common import CGROUP_ROOT, CgroupError

WHERE = "linux.cgroupsPath"

# The v1 hierarchies runc's fs driver puts a container in (fs.go `subsystems`),
# in its order. Best-effort ones (runc's NameGroup{Join: true}) are joined but
# failures to create or join them are ignored; "unified" is the cgroup2
# hierarchy of a hybrid host (runc's "" key).
V1_SUBSYSTEMS = ("cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio",
                 "hugetlb", "net_cls", "net_prio", "perf_event", "freezer", "rdma",
                 "name=systemd", "misc", "unified")
V1_BEST_EFFORT = frozenset({"name=systemd", "misc", "unified"})


def _is_systemd_form(path: str) -> bool:
    """runc's "slice:prefix:name": exactly two colons, no slash, a non-empty
    name. Plain string code: `re` costs ~7 ms per command at import."""
    if "/" in path:
        return False
    parts = path.split(":")
    return len(parts) == 3 and parts[2] != ""


def resolve_path(cgroups_path: str | None, container_id: str) -> str:
    """Clean and check linux.cgroupsPath; returns "/abs/path" or "rel/path".

    Absolute paths are relative to the hierarchy roots; relative ones to the
    runtime's own cgroup (per v1 hierarchy; on v2 to the *parent* of its own
    cgroup, as runc does). Empty/None gives the relative path "<container_id>",
    which is what runc's cgroupfs driver does (c.Name = id, no Parent).
    `..` that would climb above the start, NUL bytes, the hierarchy root itself
    and the systemd "slice:prefix:name" form are refused."""
    raw = cgroups_path or container_id
    if not isinstance(raw, str) or not raw:
        raise ConfigError("cgroups path must be a non-empty string", WHERE)
    if "\0" in raw:
        raise ConfigError("cgroups path contains a NUL byte", WHERE)
    if cgroups_path and _is_systemd_form(raw):
        raise NotSupportedError(WHERE, f"systemd cgroups path {raw!r} (slice:prefix:name)")
    absolute = raw.startswith("/")
    parts: list[str] = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ConfigError(f"cgroups path {raw!r} escapes its parent with '..'", WHERE)
            parts.pop()
            continue
        parts.append(part)
    if not parts:
        raise ConfigError(f"cgroups path {raw!r} names the root cgroup, not a cgroup below it",
                          WHERE)
    inner = "/".join(parts)
    return "/" + inner if absolute else inner


# --- /proc parsing (pure functions of the text, for tests) -----------------------

def parse_mountinfo(text: str) -> dict[str, tuple[str, str]]:
    """{subsystem: (mountpoint, mount root)} for cgroup v1 mounts (keys are
    controller names and "name=xxx") and "unified" for a cgroup2 mount.
    The first mount of each hierarchy wins."""
    found: dict[str, tuple[str, str]] = {}
    for m in mountinfo.parse(text):
        if m.fstype == "cgroup":
            for opt in m.super_options.split(","):
                if opt in V1_SUBSYSTEMS or opt.startswith("name="):
                    found.setdefault(opt, (m.mountpoint, m.root))
        elif m.fstype == "cgroup2":
            found.setdefault("unified", (m.mountpoint, m.root))
    return found


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup -> {subsystem: cgroup path}; the v2 entry is "unified"."""
    own: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hid, controllers, path = parts
        if not controllers:
            own["unified"] = path
        else:
            for c in controllers.split(","):
                own[c] = path
    return own


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise CgroupError(f"cannot read {path}: {e.strerror}") from e


def _join(base: str, inner: str) -> str:
    return os.path.normpath(os.path.join(base, inner.lstrip("/")))


def v1_paths(inner: str, mountinfo: str | None = None,
             proc_cgroup: str | None = None) -> dict[str, str]:
    """{subsystem: directory} for every mounted v1 hierarchy runc uses."""
    mounts = parse_mountinfo(mountinfo if mountinfo is not None
                             else _read("/proc/self/mountinfo"))
    own: dict[str, str] = {}
    if not inner.startswith("/"):
        own = parse_proc_cgroup(proc_cgroup if proc_cgroup is not None
                                else _read("/proc/self/cgroup"))
    paths: dict[str, str] = {}
    for subsystem in V1_SUBSYSTEMS:
        if subsystem not in mounts:
            continue
        mountpoint, mount_root = mounts[subsystem]
        if inner.startswith("/"):
            paths[subsystem] = _join(mountpoint, inner)
            continue
        if subsystem == "unified":
            # runc's GetOwnCgroupPath("") returns the hybrid mountpoint itself,
            # so relative paths there hang off the unified root.
            paths[subsystem] = _join(mountpoint, inner)
            continue
        mine = own.get(subsystem)
        if mine is None:
            continue
        # Like runc's getCgroupPathHelper: the own cgroup relative to the
        # mount's root (they differ for nested containers without cgroupns).
        rel = os.path.relpath(mine, mount_root) if mine.startswith(mount_root) else mine
        paths[subsystem] = _join(_join(mountpoint, rel), inner)
    if "devices" not in paths:
        # runc treats a missing devices hierarchy as fatal, for security.
        raise CgroupError("the devices cgroup hierarchy is not mounted (cgroup v1)")
    return paths


def v2_path(inner: str, proc_cgroup: str | None = None, root: str = CGROUP_ROOT) -> str:
    """The cgroup v2 directory: absolute -> <root><inner>; relative -> under the
    parent of the runtime's own cgroup (its own one usually has processes)."""
    if inner.startswith("/"):
        return _join(root, inner)
    own = parse_proc_cgroup(proc_cgroup if proc_cgroup is not None
                            else _read("/proc/self/cgroup")).get("unified")
    if own is None:
        raise CgroupError("cannot find the runtime's own cgroup v2 in /proc/self/cgroup")
    return _join(_join(root, os.path.dirname(own)), inner)


def process_cgroup_v2(pid: int, root: str = CGROUP_ROOT) -> str | None:
    """The cgroup v2 directory a process is in, None if unknown."""
    try:
        own = parse_proc_cgroup(_read(f"/proc/{pid}/cgroup")).get("unified")
    except CgroupError:
        return None
    return _join(root, own) if own else None


def parse_sub_cgroups(args) -> dict[str, str]:
    """`exec --cgroup` arguments (runc's getSubCgroupPaths): one PATH (every
    controller; cgroup v2's form), or any number of CTRL[,CTRL...]:PATH (v1)
    -> {controller or "": sub-cgroup path}. UsageError as runc words it."""
    from pyrunc.errors import UsageError
    paths: dict[str, str] = {}
    for arg in args or ():
        ctrls, colon, path = arg.partition(":")
        if not colon:
            if len(args) != 1:
                raise UsageError(f"invalid --cgroup argument: {arg} (missing <controller>: prefix)")
            paths[""] = arg
            continue
        for ctrl in ctrls.split(","):
            if not ctrl:
                raise UsageError(f"invalid --cgroup argument: {arg} (empty <controller> prefix)")
            if ctrl in paths:
                raise UsageError(f"invalid --cgroup argument(s): controller {ctrl} specified "
                                 "multiple times")
            paths[ctrl] = path
    return paths


def sub_cgroup(base: str, sub: str) -> str:
    """`sub` below cgroup `base`; CgroupError if it would leave it."""
    d = _join(base, sub)
    if d != base and not d.startswith(base + "/"):
        raise CgroupError(f"bad sub cgroup path: {sub}")
    return d
