"""The cgroup layer for container create/delete/state and update, pause,
resume, ps, events (cgroupfs driver, like runc without --systemd-cgroup).
Importing it is cheap: stdlib only; cffi (pyrunc.native) is loaded only when
a v2 device program is attached.

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
        Validates resources (version-aware) and resolves the directories (reads
        /proc/self); with resources, also check_host() -- all before any fork.
      .validate(resources, where="linux.resources", *, version=None) -> [Rule]
        (staticmethod, pure) every linux.resources field (resources.py): types,
        ranges, unknown keys, cross-field rules; with version also what that
        cgroup version cannot do (unified on v1; swappiness, realtime, network,
        ... on v2). ConfigError names the field, e.g.
        linux.resources.memory.swappiness or linux.resources.devices[2].type.
      .combined_device_rules(config_rules, extra_rules) -> [Rule]   (static, pure)
        config rules + the runtime's allow rules checked together.
      .check_host(resources)    controllers mounted (v1) / available (v2), huge page
                                sizes, block devices, optional v1 files
      .available_controllers() -> set
      .create()                 mkdir -p, remembering the dirs it made
      .add_process(pid)         pid -> cgroup.procs in every hierarchy
      .apply_devices(rules)     caller passes devices.DEFAULT_ALLOWED_DEVICES +
                                linux.resources.devices; v1 allow/deny writes,
                                v2 an attached eBPF program (replacing ours)
      .apply_resources(resources, *, context=None, creating=False, rollback=False)
                                everything but devices, in runc's order with runc's
                                v1->v2 conversions; CgroupError names field and file.
                                creating: pids limits < 2 wait for apply_pending()
      .apply_pending()          (create, once init runs alone)
      .processes() -> [pid]     cgroup.procs of the primary hierarchy
      .all_processes() -> [pid] ... and of every sub-cgroup (ps, runc's GetAllPids)
      .freeze_state() -> "frozen" | "thawed"
      .freeze() / .thaw()       pause / resume (v1 freezer.state, v2 cgroup.freeze)
      .stats() -> dict          runc 1.1.5's events "data" object (stats.py)
      .oom_watcher()            OOMWatcher: poll fileno(), read() -> 1 per OOM event
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

__all__ = ["CgroupError", "CgroupManager", "detect", "resolve_path"]


def __getattr__(name: str):
    """The manager and path resolution load on first use: `state` and `kill`
    only need pyrunc.cgroups.freezer, not this whole layer."""
    if name == "CgroupManager":
        from .manager import CgroupManager
        return CgroupManager
    if name == "resolve_path":
        from .paths import resolve_path
        return resolve_path
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
