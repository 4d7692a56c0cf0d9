"""The config.json that `pyrunc spec` writes.

Mirrors runc's libcontainer/specconv/example.go (`Example()` and
`ToRootless()`), field for field and in the same key order (Go marshals
struct fields in declaration order and drops empty `omitempty` fields), with
two deliberate differences: ociVersion is the runtime-spec version we
implement (pyrunc.SPEC_VERSION; runc writes its vendored specs.Version) and the hostname
is "pyrunc" instead of "runc".

Like runc >= 1.1.2 (CVE-2022-29162) no inheritable or ambient capabilities are
set.  Like runc, the cgroup namespace is only added on a cgroup v2 (unified)
host.
"""

from __future__ import annotations

import json
import os
import posixpath

from pyrunc import SPEC_VERSION

__all__ = ["OCI_VERSION", "DEFAULT_CAPABILITIES", "default_spec", "to_rootless", "spec_json", "cgroup2_unified"]

OCI_VERSION = SPEC_VERSION

DEFAULT_CAPABILITIES = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

_MOUNTS = [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {
        "destination": "/dev",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
        "destination": "/dev/pts",
        "type": "devpts",
        "source": "devpts",
        "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
        "destination": "/dev/shm",
        "type": "tmpfs",
        "source": "shm",
        "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
    {
        "destination": "/dev/mqueue",
        "type": "mqueue",
        "source": "mqueue",
        "options": ["nosuid", "noexec", "nodev"],
    },
    {
        "destination": "/sys",
        "type": "sysfs",
        "source": "sysfs",
        "options": ["nosuid", "noexec", "nodev", "ro"],
    },
    {
        "destination": "/sys/fs/cgroup",
        "type": "cgroup",
        "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
    },
]

_MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
]

_READONLY_PATHS = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]


# specs-go Linux struct field order (what `runc spec` output follows).
_LINUX_ORDER = (
    "uidMappings", "gidMappings", "sysctl", "resources", "cgroupsPath", "namespaces",
    "devices", "netDevices", "seccomp", "rootfsPropagation", "maskedPaths",
    "readonlyPaths", "mountLabel", "intelRdt", "memoryPolicy", "personality", "timeOffsets",
)


def _copy_mount(m: dict) -> dict:
    m = dict(m)
    if "options" in m:
        m["options"] = list(m["options"])
    return m


def cgroup2_unified() -> bool:
    """True on a pure cgroup v2 host (/sys/fs/cgroup is the cgroup2 root)."""
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def default_spec(rootless: bool = False, *, cgroup_ns: bool | None = None) -> dict:
    """The spec `runc spec [--rootless]` writes, as a fresh dict.

    cgroup_ns: add a cgroup namespace; None (default) decides like runc, i.e.
    only on a cgroup v2 unified host.
    """
    if cgroup_ns is None:
        cgroup_ns = cgroup2_unified()
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]
    if cgroup_ns:
        namespaces.append({"type": "cgroup"})
    spec = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": list(DEFAULT_CAPABILITIES),
                "effective": list(DEFAULT_CAPABILITIES),
                "permitted": list(DEFAULT_CAPABILITIES),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyrunc",
        "mounts": [_copy_mount(m) for m in _MOUNTS],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": namespaces,
            "maskedPaths": list(_MASKED_PATHS),
            "readonlyPaths": list(_READONLY_PATHS),
        },
    }
    if rootless:
        to_rootless(spec)
    return spec


def to_rootless(spec: dict, euid: int | None = None, egid: int | None = None) -> dict:
    """runc's specconv.ToRootless, in place (and returned): user namespace with
    a one-id mapping of the current euid/egid to root, no network namespace,
    /sys as a read-only rbind of the host's, no uid=/gid= mount options, no
    cgroup resources."""
    linux = spec.setdefault("linux", {})
    euid = os.geteuid() if euid is None else euid
    egid = os.getegid() if egid is None else egid

    namespaces = [ns for ns in linux.get("namespaces") or () if ns.get("type") not in ("network", "user")]
    namespaces.append({"type": "user"})
    linux["namespaces"] = namespaces
    linux["uidMappings"] = [{"containerID": 0, "hostID": euid, "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": egid, "size": 1}]
    linux.pop("resources", None)
    # Re-order like Go's struct (uidMappings/gidMappings come first).
    ordered = {k: linux[k] for k in _LINUX_ORDER if k in linux}
    ordered.update((k, v) for k, v in linux.items() if k not in ordered)
    linux.clear()
    linux.update(ordered)

    mounts = []
    for m in spec.get("mounts") or ():
        if posixpath.normpath(m.get("destination", "")) == "/sys":
            mounts.append(
                {
                    "destination": "/sys",
                    "type": "none",
                    "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
                }
            )
            continue
        m = dict(m)
        if "options" in m:
            opts = [o for o in m["options"] if not o.startswith(("gid=", "uid="))]
            if opts:
                m["options"] = opts
            else:  # Go: nil slice, omitted
                del m["options"]
        mounts.append(m)
    spec["mounts"] = mounts
    return spec


def spec_json(spec: dict) -> str:
    """Serialise like runc (json.MarshalIndent(spec, "", "\\t"), no trailing newline)."""
    return json.dumps(spec, indent="\t", ensure_ascii=False)
