"""The systemd cgroup driver (runc's --systemd-cgroup; opencontainers/cgroups
systemd/): the container's cgroup is a transient unit systemd makes, and the
files it cannot express are written through the cgroupfs backend of the
host's version (fs on v1/hybrid, fs2 on v2) on the unit's directories.

    create:  new_manager(..., systemd=True) parses cgroupsPath ("slice:prefix:name"),
             computes the unit's properties (resources, annotations) and connects to
             systemd, all before any fork. add_process(init) then starts the unit
             (StartTransientUnit with PIDs=[init], Delegate=yes, DefaultDependencies=no,
             accounting, the resources), joins the v1 hierarchies systemd does not
             manage, and writes devices and the remaining resources to the files.
    update:  SetUnitProperties (runtime) with the effective resources, then the files.
    delete:  StopUnit (waiting for the job), ResetFailedUnit, and rmdir of what we made.
    pause/resume, stats, ps, kill: the files, as runc.
"""
from __future__ import annotations

import os

from pyrunc.errors import ConfigError

from ..common import CGROUP_ROOT, CgroupError, Target, read_file, write_pid
from ..manager import RMDIR_BUDGET, CgroupManager, remove_tree
from ..paths import V1_SUBSYSTEMS, parse_mountinfo
from . import properties as props_mod

# v1 hierarchies systemd creates and joins for a unit (the rest are ours)
SYSTEMD_V1 = frozenset({"cpu", "cpuacct", "blkio", "memory", "devices", "pids", "name=systemd"})


class SystemdManager(CgroupManager):
    driver = "systemd"

    def __init__(self, files: CgroupManager, unit: str, parent: str, name: str, *,
                 user: bool = False, spec: dict | None = None, started: bool = False,
                 extra_properties: list | None = None):
        super().__init__(files.paths, spec, files.created)
        self.files = files                 # the fs/fs2 backend on the unit's directories
        self.files.paths = self.paths      # one dict: dropped v1 hierarchies drop for both
        self.files.created = self.created
        self.version = files.version
        self.unit, self.parent, self.name, self.user = unit, parent, name, user
        self.started = started
        self.extra_properties = list(extra_properties or [])   # annotations
        self.device_rules: list | None = None
        self.bus = None

    # --- construction ----------------------------------------------------------
    @classmethod
    def for_config(cls, cgroups_path: str | None, container_id: str, spec: dict, version: str,
                   annotations: dict, *, rootless: bool = False) -> "SystemdManager":
        """Pure checks first (path, annotations: ConfigError), then systemd itself
        (SystemdUnavailable): nothing is made here."""
        parent, unit, name = props_mod.parse_cgroups_path(cgroups_path, container_id, rootless)
        extra = props_mod.annotation_properties(annotations)
        if rootless and version == "v1":
            raise ConfigError("the rootless systemd cgroup driver needs cgroup v2 (systemd "
                              "does not delegate v1 hierarchies to users)", "linux.cgroupsPath")
        from .dbus import Systemd
        bus = Systemd.connect(user=rootless)
        try:
            inner = props_mod.unit_cgroup(parent, unit)
            if rootless:
                inner = bus.control_group().rstrip("/") + inner
            files = _files_manager(version, inner)
        except BaseException:
            bus.close()
            raise
        self = cls(files, unit, parent, name, user=rootless, spec=spec, extra_properties=extra)
        self.bus = bus
        return self

    def to_dict(self) -> dict:
        d = self.files.to_dict()
        d.update(driver="systemd", unit=self.unit, parent=self.parent, name=self.name,
                 user=self.user)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SystemdManager":
        """A saved container's unit: create succeeded, so the unit was started."""
        try:
            files = _files_manager_from_dict(d)
            return cls(files, str(d["unit"]), str(d["parent"]), str(d.get("name", "")),
                       user=bool(d.get("user")), started=True)
        except (KeyError, TypeError, ValueError) as e:
            raise CgroupError(f"invalid cgroup state {d!r}") from e

    def _systemd(self):
        if self.bus is None:
            from .dbus import Systemd
            self.bus = Systemd.connect(user=self.user)
        return self.bus

    # --- host checks -----------------------------------------------------------
    def available_controllers(self) -> set[str]:
        return self.files.available_controllers()

    def _check_files(self, spec: dict, where: str) -> None:
        self.files._check_files(spec, where)

    # --- lifecycle -------------------------------------------------------------
    def check_new(self) -> None:
        """The base checks (an empty, unfrozen cgroup), said in systemd's terms
        when the cgroup in use is a unit's that already exists."""
        try:
            super().check_new()
        except CgroupError as e:
            if self._systemd().unit_loaded(self.unit):
                from .dbus import SystemdError
                raise SystemdError(f"systemd unit {self.unit} already exists ({e})") from None
            raise

    def create(self) -> None:
        """Nothing yet: systemd makes the unit with its first process (add_process)."""

    def properties(self, spec: dict) -> tuple[list, dict]:
        """(resource and device properties, the spec for the files)."""
        sd_version = self._systemd().version()
        props, files_spec = props_mod.resource_properties(spec, self.version, sd_version)
        if self.device_rules is not None:
            props = props_mod.device_properties(self.device_rules, sd_version) + props
        return props, files_spec

    def add_process(self, pid: int) -> None:
        """The init: start the unit with it, then what systemd does not do
        itself (runc's Apply + Set). Later processes (exec) join the unit's
        cgroup(s) through the files: the unit is delegated to us."""
        if self.started:
            self.files.add_process(pid)
            return
        bus = self._systemd()
        resources, self.spec = self.properties(self.spec)
        base = props_mod.unit_properties(self.name, self.parent, self.unit, self.version)
        start = base + [("PIDs", ("au", [pid]))] + resources + self.extra_properties
        bus.start_transient_unit(self.unit, start)
        self.started = True
        if self.version == "v1":
            self._join_v1(pid)
        elif not os.path.isdir(self.paths[""]):
            raise CgroupError(f"systemd started {self.unit} but its cgroup {self.paths['']} "
                              "does not exist")
        if self.device_rules is not None:
            self._apply_device_files()
        CgroupManager.apply_resources(self, creating=True)

    def _apply_device_files(self) -> None:
        """The device rules in the files (v1 lists, v2 eBPF). Rootless, the
        kernel refuses them (no CAP_SYS_ADMIN for BPF) and the user namespace
        already keeps host devices out: runc ignores the error there too."""
        try:
            self.files.apply_devices(self.device_rules)
        except CgroupError:
            if not self.user:
                raise

    def _join_v1(self, pid: int) -> None:
        """systemd placed pid in the hierarchies it manages; the others are ours
        to make and join (runc's joinCgroups)."""
        for name, path in list(self.paths.items()):
            if name in SYSTEMD_V1:
                continue
            try:
                self.files._mkdirs(path, cpuset=(name == "cpuset"))
                write_pid(path, pid)
            except CgroupError:
                if name in ("misc", "unified"):
                    del self.paths[name]
                    continue
                raise

    def _apply_devices(self, rules: list) -> None:
        """Before the unit exists: remembered for its start. After (update):
        DevicePolicy/DeviceAllow on the unit (v1: with the container frozen,
        since systemd rewrites v1 device rules disruptively, as runc knows),
        then the files."""
        self.device_rules = rules
        if not self.started:
            return
        props = props_mod.device_properties(self.device_rules, self._systemd().version())
        self._set_properties(props, freeze=self.version == "v1")
        self._apply_device_files()

    def apply_resources(self, spec: dict | None = None, *, context: dict | None = None,
                        creating: bool = False, rollback: bool = False,
                        where: str = "linux.resources") -> None:
        """Before the unit exists (create): the spec goes with its start. After
        (update): SetUnitProperties with the effective resources (`context`),
        then the change written to the files."""
        if not self.started:
            if spec is not None:
                self.spec = spec
            return
        change = self.spec if spec is None else spec
        effective = change if context is None else context
        self._check_memory_usage(change, effective)
        props, files_effective = self.properties(effective)
        self.device_rules = None
        cpu = files_effective.get("cpu", {})
        if "quota" in change.get("cpu", {}) and "quota" in cpu:
            change = dict(change, cpu=dict(change["cpu"], quota=cpu["quota"]))
        self._set_properties(props)
        CgroupManager.apply_resources(self, change, context=files_effective, rollback=rollback,
                                      where=where)

    def _check_memory_usage(self, change: dict, effective: dict) -> None:
        """runc checks before systemd sets a lower limit: the unit would be
        OOM-killed and gone before the files are written."""
        limit = change.get("memory", {}).get("limit", 0)
        if self.version != "v2" or limit <= 0 or not effective.get("memory", {}).get(
                "checkBeforeUpdate"):
            return
        current = int(read_file(self.paths[""], "memory.current"))
        if current >= limit:
            raise CgroupError(f"rejecting memory limit {limit}: the current usage {current} is "
                              "not below it (checkBeforeUpdate)", "linux.resources.memory.limit")

    def _set_properties(self, props: list, freeze: bool = False) -> None:
        if not props:
            return
        thaw = freeze and self.freeze_state() != "frozen" and self._set_frozen(True)
        try:
            self._systemd().set_unit_properties(self.unit, props)
        finally:
            if thaw:
                self.thaw()

    def _write(self, spec: dict, target: Target, ctx: dict, where: str) -> None:
        self.files._write(spec, target, ctx, where)

    # --- files -----------------------------------------------------------------
    def _freezer(self):
        return self.files._freezer()

    def _settled_frozen(self, path: str) -> bool:
        return self.files._settled_frozen(path)

    def _self_frozen(self, path: str) -> bool:
        return self.files._self_frozen(path)

    def _kill_file_dir(self) -> str | None:
        return self.files._kill_file_dir()

    def exec_dirs(self, sub: dict[str, str] | None = None) -> dict[str, str]:
        return self.files.exec_dirs(sub)

    def _init_cgroup(self, init_pid: int) -> str | None:
        return self.files._init_cgroup(init_pid)

    # --- removal ---------------------------------------------------------------
    def destroy(self) -> None:
        """Stop the unit (waiting for the job) and reset it if it failed, then
        remove the directories we made (v1 hierarchies systemd does not manage,
        sub-cgroups systemd left). Idempotent."""
        import time
        error = None
        ours = self.started        # never touch a unit (or its cgroup) someone else made
        if ours:
            try:
                self._systemd().stop_unit(self.unit)
                self.started = False
            except CgroupError as e:
                error = e
        deadline = time.monotonic() + RMDIR_BUDGET
        for path in ([self.paths[""]] if self.version == "v2" and ours else []):
            try:
                remove_tree(path, deadline)
            except OSError as e:
                error = error or CgroupError(f"cannot remove cgroup {path}: {e.strerror}")
        try:
            CgroupManager.destroy(self)
        except CgroupError as e:
            error = error or e
        if error is not None:
            raise error


def _files_manager(version: str, inner: str) -> CgroupManager:
    """The cgroupfs backend on the unit's directories: <mount><inner> for every
    v1 hierarchy runc uses (hybrid: the unified one too), or the v2 cgroup."""
    if version == "v2":
        from ..fs2 import Fs2Manager
        return Fs2Manager({"": CGROUP_ROOT + inner})
    from ..fs import FsManager
    with open("/proc/self/mountinfo") as f:
        mounts = parse_mountinfo(f.read())
    paths = {name: mounts[name][0] + inner for name in V1_SUBSYSTEMS if name in mounts}
    if "devices" not in paths:
        raise CgroupError("the devices cgroup hierarchy is not mounted (cgroup v1)")
    return FsManager(paths)


def _files_manager_from_dict(d: dict) -> CgroupManager:
    if d.get("version") == "v2":
        from ..fs2 import Fs2Manager
        return Fs2Manager({"": d["path"]}, None, list(d.get("created", [])))
    from ..fs import FsManager
    return FsManager(dict(d["paths"]), None, list(d.get("created", [])))

