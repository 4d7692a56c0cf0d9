"""The cgroup layer for container create/delete/state and update, pause,
resume, ps, events. One manager interface (manager.py) with a backend per
driver, each in its own module as in runc: fs.py (cgroupfs v1), fs2.py
(cgroupfs v2), systemd/ (a transient systemd unit over D-Bus). Importing this
package is cheap: stdlib only; cffi (pyrunc.native) is loaded only when a v2
device program is attached, D-Bus only on the systemd path.

    detect() -> "v1" | "v2"
        "v2" iff /sys/fs/cgroup is a cgroup2 root; hybrid hosts are "v1".
        Nothing is cached across calls or processes.
    resolve_path(cgroups_path, container_id) -> str      (cgroupfs drivers)
        Cleans/validates linux.cgroupsPath: "/abs" (under each hierarchy root)
        or "rel" (under the runtime's own cgroup per v1 hierarchy; on v2 under
        the parent of its own cgroup, as runc); None/"" -> "<container_id>"
        (relative, as runc's cgroupfs driver). ConfigError for '..' escapes,
        the root itself, NUL; NotSupportedError for systemd "slice:prefix:name".
    manager.parse_resources(resources, where, version) -> spec
        every linux.resources field but devices (resources.py): types, ranges,
        unknown keys, cross-field rules, what that cgroup version cannot do
        (unified on v1; swappiness, realtime, network, ... on v2). ConfigError
        names the field, e.g. linux.resources.memory.swappiness.
    manager.new_manager(cgroups_path, resources, container_id, *, systemd=False)
        -> CgroupManager: resources parsed and checked once, the path resolved
        for the driver, the host checked for what the resources need (controllers,
        huge page sizes, block devices, optional v1 files) -- all before any fork.
    manager.load_manager(state_dict) -> CgroupManager     (from state.json)
    CgroupManager (every backend):
      .validate(resources, where, *, version=None) -> [Rule]   (static, pure)
      .combined_device_rules(config_rules, extra_rules) -> [Rule]   (static, pure)
        config rules + the runtime's allow rules checked together.
      .check_host(spec)         see new_manager
      .available_controllers() -> set
      .create()                 make the cgroup (systemd: nothing until add_process)
      .add_process(pid)         pid -> the cgroup (systemd: starts the unit with it)
      .apply_devices(rules)     caller passes devices.DEFAULT_ALLOWED_DEVICES +
                                linux.resources.devices; v1 allow/deny writes,
                                v2 an attached eBPF program (replacing ours)
      .apply_resources(spec=None, *, context=None, creating=False, rollback=False)
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
      .destroy()                remove what create()/add_process() made; idempotent
      .to_dict()                state.json form:
        {"version": "v1", "paths": {"devices": "/sys/fs/cgroup/devices/x", ...},
         "created": [dirs create() made]}
        {"version": "v2", "path": "/sys/fs/cgroup/x", "created": [...]}
        (systemd adds "driver": "systemd" and the unit; see systemd/)
    CgroupError: PyruncError subclass; one-line messages naming the cgroup path.
"""
from .common import CgroupError, detect

# The global --systemd-cgroup flag (pyrunc.cli.commands.configure): new containers get the
# systemd driver. Existing ones keep the driver their state records.
systemd_driver = False

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
