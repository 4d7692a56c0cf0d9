"""The cgroup layer for container create/delete/state (cgroupfs driver, like
runc without --systemd-cgroup). Importing it is cheap: stdlib only; cffi
(pyrunc.native) is loaded only when a v2 device program is attached.

    detect() -> "v1" | "v2"
        "v2" iff /sys/fs/cgroup is a cgroup2 root; hybrid hosts are "v1".
        Nothing is cached across calls or processes.
    resolve_path(cgroups_path, container_id) -> str
        Cleans/validates linux.cgroupsPath: "/abs" (under each hierarchy root)
        or "rel" (under the runtime's own cgroup per v1 hierarchy; on v2 under
        the parent of its own cgroup, as runc); None/"" -> "<container_id>"
        (relative, as runc's cgroupfs driver). ConfigError for '..' escapes,
        the root itself, NUL; NotSupportedError for systemd "slice:prefix:name".
    CgroupManager(cgroups_path, resources=None, container_id=None)
        Validates resources and resolves the directories (reads /proc/self).
      .validate(resources, where="linux.resources") -> [Rule]   (staticmethod, pure)
        Only `devices` is supported; any other non-empty key raises
        NotSupportedError(where="linux.resources.<key>"). Device rules are
        checked (ConfigError names e.g. linux.resources.devices[2].type).
      .create()                 mkdir -p, remembering the dirs it made
      .add_process(pid)         pid -> cgroup.procs in every hierarchy
      .apply_devices(rules)     caller passes devices.DEFAULT_ALLOWED_DEVICES +
                                linux.resources.devices; v1 allow/deny writes,
                                v2 an attached eBPF program (replacing ours)
      .processes() -> [pid]     cgroup.procs of the primary hierarchy
      .freeze_state() -> "frozen" | "thawed"
      .kill_all(sig)            signal every process in the cgroup tree
      .destroy()                rmdir what create() made (bottom-up, EBUSY
                                retried ~1 s); idempotent
      .to_dict() / CgroupManager.from_dict(d)   state.json form:
        {"version": "v1", "paths": {"devices": "/sys/fs/cgroup/devices/x", ...},
         "created": [dirs create() made]}
        {"version": "v2", "path": "/sys/fs/cgroup/x", "created": [...]}
    CgroupError: PyruncError subclass; one-line messages naming the cgroup path.
"""
from .common import CgroupError, detect
from .manager import CgroupManager
from .paths import resolve_path

__all__ = ["CgroupError", "CgroupManager", "detect", "resolve_path"]
