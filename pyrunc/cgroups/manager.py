"""The cgroup manager interface, its factory, and what every backend shares.

Backends (each in its own module, as runc's cgroups/fs, fs2 and systemd):
    fs.FsManager            cgroupfs on v1 (one directory per hierarchy)
    fs2.Fs2Manager          cgroupfs on v2 (one directory)
    systemd.SystemdManager  a transient systemd unit over D-Bus, then the files
                            through an fs/fs2 manager on the unit's directories

linux.resources is parsed and checked once, by new_manager(); the backends
get the spec (pyrunc.cgroups.resources) and never parse it again.
"""
from __future__ import annotations

import _signal  # the signal module's C core: the wrapper imports enum (slow start-up)
import errno
import os
import time

from pyrunc.errors import ConfigError

from . import devices as _devices
from . import freezer
from .common import (CgroupError, Target, cgroup_gone, detect, errno_of, read_all_pids,
                     read_pids, write_file, write_pid)
from .freezer import FREEZE_WAIT

RMDIR_BUDGET = 1.0        # seconds destroy() keeps retrying EBUSY
CREATE_TASKS = 2          # tasks in the cgroup while create runs: middle + init


def parse_resources(resources, where: str = "linux.resources", version: str | None = None
                    ) -> dict:
    """linux.resources (minus devices) -> the checked spec every backend takes.
    Without a version only what holds on both (no per-version refusals)."""
    from . import resources as _resources
    spec = _resources.parse(resources, where, version)
    _resources.check(spec, where, version or "v1")
    return spec


def new_manager(cgroups_path: str | None, resources: dict | None, container_id: str, *,
                systemd: bool = False, version: str | None = None,
                annotations: dict | None = None, rootless: bool = False) -> "CgroupManager":
    """The manager for a new container: resources parsed and checked (ConfigError
    naming the field), the cgroup path resolved for the driver, and, with
    resources, the host checked for what they need. Nothing is created yet."""
    version = version or detect()
    spec = parse_resources(resources, version=version) if resources else {}
    if systemd:
        from .systemd import SystemdManager
        manager: CgroupManager = SystemdManager.for_config(
            cgroups_path, container_id, spec, version, annotations or {}, rootless=rootless)
    else:
        from .paths import resolve_path
        inner = resolve_path(cgroups_path, container_id)
        if version == "v2":
            from .fs2 import Fs2Manager
            manager = Fs2Manager.at(inner, spec)
        else:
            from .fs import FsManager
            manager = FsManager.at(inner, spec)
    if spec:
        manager.check_host(spec)
    return manager


def load_manager(d: dict) -> "CgroupManager":
    """The manager of an existing container, from its state.json form (to_dict)."""
    if not isinstance(d, dict):
        raise CgroupError(f"invalid cgroup state {d!r}")
    driver = d.get("driver")
    if driver == "systemd":
        from .systemd import SystemdManager
        return SystemdManager.from_dict(d)
    if d.get("version") == "v2":
        from .fs2 import Fs2Manager
        return Fs2Manager.from_dict(d)
    from .fs import FsManager
    return FsManager.from_dict(d)


class CgroupManager:
    """The cgroup(s) of one container. See pyrunc.cgroups for the contract.
    A backend sets `driver` and `version` and implements create, add_process,
    _apply_devices, _write, _freezer and to_dict/from_dict."""

    driver = ""
    version = ""
    paths: dict[str, str]

    def __init__(self, paths: dict[str, str], spec: dict | None = None,
                 created: list[str] | None = None):
        self.paths = dict(paths)
        self.spec = spec or {}
        self.created: list[str] = list(created or [])
        self.pending: dict = {}

    @classmethod
    def from_dict(cls, d: dict) -> "CgroupManager":
        """The manager a state.json cgroup entry describes (see load_manager)."""
        return load_manager(d)

    # --- validation (pure) -----------------------------------------------------
    @staticmethod
    def validate(resources, where: str = "linux.resources", *, version: str | None = None
                 ) -> list:
        """Check linux.resources before anything is forked; returns the parsed device
        rules. Pure: types, ranges, unknown keys and cross-field rules (see
        resources.py); with `version` also what that cgroup version cannot do
        (unified on v1, swappiness/realtime/network... on v2). ConfigError
        names the field, e.g. linux.resources.memory.swappiness."""
        if resources is None:
            return []
        parse_resources(resources, where, version)
        return _devices.parse_rules(resources.get("devices"), f"{where}.devices")

    @staticmethod
    def container_device_rules(linux: dict, where: str = "linux.resources.devices") -> list:
        """The device rules a container's cgroup gets, as runc builds them:
        linux.resources.devices, then runc's allow rules (devices.runtime_allow_rules:
        mknod of anything and the default nodes not replaced by linux.devices;
        none for linux.devices themselves). Checked (pure); Rules for apply_devices()."""
        return CgroupManager.combined_device_rules(
            (linux.get("resources") or {}).get("devices"),
            _devices.runtime_allow_rules(linux.get("devices")), where)

    @staticmethod
    def combined_device_rules(config_rules, extra_rules, where: str = "linux.resources.devices"
                              ) -> list:
        """The config's device rules followed by the allow rules the runtime adds,
        checked together (pure): a default allow that would punch a hole in a
        config rule is refused before anything is made. Returns Rules for
        apply_devices()."""
        config_rules = list(config_rules or [])
        extra_rules = list(extra_rules or [])
        try:
            return _devices.parse_rules(config_rules + extra_rules, where)
        except ConfigError as e:
            at = e.where or ""
            if not at.startswith(where + "["):
                raise
            i = int(at[len(where) + 1:at.index("]", len(where))])
            if i < len(config_rules):
                raise
            r = extra_rules[i - len(config_rules)]
            dev = (f"{r.get('type', 'a')} {r.get('major', '*')}:{r.get('minor', '*')}"
                   if isinstance(r, dict) else str(r))
            raise ConfigError(f"{e.message} (the allow rule for {dev} that every container "
                              "gets, as in runc, conflicts with these rules)", where) from None

    # --- host checks -----------------------------------------------------------
    def available_controllers(self) -> set[str]:
        raise NotImplementedError

    def check_host(self, spec: dict, where: str = "linux.resources") -> None:
        """Pre-fork: every controller the spec needs exists for this cgroup, every
        huge page size and block device is the kernel's (ConfigError naming the
        field); backends add their own file checks (_check_files)."""
        from . import resources as _resources
        _resources.check_host(spec, where, self.version, self.available_controllers())
        _resources.check_block_devices(spec, where)
        self._check_files(spec, where)

    def _check_files(self, spec: dict, where: str) -> None:
        pass

    # --- applying resources ----------------------------------------------------
    def apply_resources(self, spec: dict | None = None, *, context: dict | None = None,
                        creating: bool = False, rollback: bool = False,
                        where: str = "linux.resources") -> None:
        """Write a checked spec (default: the one given at construction) except
        devices (apply_devices does those), after the process was placed.
        `context`: the effective spec when `spec` is only a change (update).
        `creating`: pids limits below CREATE_TASKS (the middle process forks
        init while in the cgroup) are kept in .pending until apply_pending()
        (after the fork). `rollback`: on error, put back the single-value
        files already written. CgroupError names the field and the file."""
        spec = dict(self.spec if spec is None else spec)
        ctx = spec if context is None else context
        if creating and "pids" in spec and 0 <= spec["pids"]["limit"] < CREATE_TASKS:
            self.pending = {"pids": spec.pop("pids")}
        target = Target(self.paths, [] if rollback else None)
        try:
            self._write(spec, target, ctx, where)
        except BaseException:
            if rollback:
                target.rollback()
            raise

    def apply_pending(self) -> None:
        """Write what apply_resources(creating=True) held back."""
        pending, self.pending = self.pending, {}
        if pending:
            self._write(pending, Target(self.paths), pending, "linux.resources")

    def _write(self, spec: dict, target: Target, ctx: dict, where: str) -> None:
        raise NotImplementedError

    def apply_devices(self, rules) -> None:
        """Enforce device rules (OCI dicts, or Rules from devices.parse_rules);
        the caller includes the defaults."""
        if rules and isinstance(rules[0], dict):
            rules = _devices.parse_rules(rules)
        self._apply_devices(list(rules or []))

    def _apply_devices(self, rules: list) -> None:
        raise NotImplementedError

    # --- exec'd processes -------------------------------------------------------------
    def exec_dirs(self, sub: dict[str, str] | None = None) -> dict[str, str]:
        """{controller: directory} an exec'd process joins: the container's
        cgroup, or with `exec --cgroup` (paths.parse_sub_cgroups) a sub-cgroup
        of it ("" for all controllers). Checked before the process is forked:
        CgroupError for a path leaving the container's cgroup (runc's AddPid)."""
        from .paths import sub_cgroup
        s = (sub or {}).get("", "")
        return {ctrl: sub_cgroup(d, s) for ctrl, d in self.paths.items()}

    def add_exec_process(self, pid: int, dirs: dict[str, str], init_pid: int = 0) -> None:
        """Put an exec'd process into `dirs` (exec_dirs()). A hierarchy runc
        joins only best-effort may refuse; on v2 the container's own cgroup may
        refuse processes (it delegates to sub-cgroups: "no internal processes")
        and then, unless a sub-cgroup was asked for, init's own cgroup is
        joined instead, as runc's addIntoCgroupV2 does."""
        from .paths import V1_BEST_EFFORT
        for ctrl, d in dirs.items():
            try:
                write_pid(d, pid)
            except CgroupError:
                if ctrl in V1_BEST_EFFORT:
                    continue
                fallback = self._init_cgroup(init_pid) if d == self.paths.get(ctrl) else None
                if not fallback or not fallback.startswith(d + "/"):
                    raise
                write_pid(fallback, pid)

    def _init_cgroup(self, init_pid: int) -> str | None:
        """The v2 cgroup init is in now (fs2 only)."""
        return None

    # --- joining -------------------------------------------------------------------
    def check_new(self) -> None:
        """Before a container is made in this cgroup (runc 1.2+'s libcontainer
        Create): an existing cgroup must hold no process (runc 1.1 only warned;
        1.2 made it an error) and must not be frozen, nor lie under a frozen
        cgroup (a new cgroup is born frozen there): init would freeze as it
        joins and create would never finish. CgroupError; nothing is made."""
        pids = self.all_processes()
        if pids:
            raise CgroupError(f"container's cgroup is not empty: {len(pids)} process(es) "
                              f"found in {self.path}")
        where = self._freezer()
        if where is None:
            return
        own = d = where[0]
        while True:
            try:
                frozen = self._self_frozen(d)
            except FileNotFoundError:
                if os.path.isdir(d):
                    return          # the hierarchy's root: it cannot be frozen
                frozen = False      # not made yet: what its ancestors say
            if frozen:
                if d == own:
                    raise CgroupError(f"container's cgroup unexpectedly frozen: {d}")
                raise CgroupError(f"container's cgroup {own} is under a frozen cgroup: {d}")
            parent = os.path.dirname(d)
            if parent == d:
                return
            d = parent

    def _self_frozen(self, path: str) -> bool:
        """Whether cgroup `path` is frozen by its own setting (not an ancestor's);
        FileNotFoundError when it has no freezer file (missing, or the root)."""
        raise NotImplementedError

    # --- inspection ------------------------------------------------------------
    @property
    def path(self) -> str:
        """The primary directory: v2 the cgroup, v1 the devices hierarchy's."""
        return self.paths[""] if self.version == "v2" else self.paths["devices"]

    def processes(self) -> list[int]:
        """Pids in the container's cgroup (primary hierarchy); [] once it is gone."""
        return read_pids(self.path)

    def all_processes(self) -> list[int]:
        """Pids in the container's cgroup and all its sub-cgroups."""
        return read_all_pids(self.path)

    def stats(self) -> dict:
        """The container's statistics, as runc's `events` prints them ("data")."""
        from .stats import collect
        return collect(self.version, self.paths)

    def oom_watcher(self):
        """An OOMWatcher on this cgroup (see stats.py)."""
        from .stats import OOMWatcher
        return OOMWatcher(self.version, self.paths)

    # --- freezer ---------------------------------------------------------------
    def _freezer(self) -> tuple[str, str, str, str] | None:
        """(directory, file, frozen value, thawed value), None without a freezer."""
        raise NotImplementedError

    def _settled_frozen(self, path: str) -> bool:
        raise NotImplementedError

    def freeze_state(self) -> str:
        """"frozen" or "thawed" (also when there is no freezer or no cgroup)."""
        return freezer.freeze_state(self.version, self.paths)

    def freeze(self) -> None:
        """Freeze every task (pause); waits up to ~1 s for the kernel to finish."""
        if not self._set_frozen(True):
            raise CgroupError(f"cannot freeze: no freezer cgroup for {self.path}")

    def thaw(self) -> None:
        """Thaw (resume); a no-op when there is no freezer or the cgroup is gone."""
        try:
            self._set_frozen(False)
        except CgroupError as e:
            if not cgroup_gone(e):
                raise

    def _set_frozen(self, frozen: bool) -> bool:
        """False if this cgroup has no freezer."""
        where = self._freezer()
        if where is None:
            return False
        path, file, frozen_value, thawed_value = where
        write_file(path, file, frozen_value if frozen else thawed_value)
        if not frozen:
            return True
        deadline = time.monotonic() + FREEZE_WAIT
        while not self._settled_frozen(path):
            if time.monotonic() >= deadline:
                write_file(path, file, thawed_value)
                raise CgroupError(f"cannot freeze cgroup {path}: still freezing after "
                                  f"{FREEZE_WAIT:g} s")
            time.sleep(0.001)
        return True

    # --- signals ---------------------------------------------------------------
    def _kill_file_dir(self) -> str | None:
        """The cgroup v2 directory whose cgroup.kill kills the whole tree."""
        return self.paths.get("")

    def kill_all(self, sig: int = _signal.SIGKILL) -> None:
        """Send sig to every process in the cgroup tree (runc's signalAllProcesses):
        cgroup.kill for SIGKILL where the kernel has it, else freeze, signal each
        pid, and thaw again -- unless it was frozen before (a paused container
        stays paused), except for SIGKILL, after which it is thawed so the
        tasks can die. A missing cgroup is a no-op."""
        was_frozen = self.freeze_state() == "frozen"
        unified = self._kill_file_dir()
        if sig == _signal.SIGKILL and unified:
            try:
                write_file(unified, "cgroup.kill", "1")
                if was_frozen:
                    self.thaw()
                return
            except CgroupError as e:
                # EINVAL: a kernel without cgroup.kill; gone: the v2 directory is
                # (being) removed, though a hybrid host's v1 ones may still hold
                # processes: signal what is left one by one
                if not (cgroup_gone(e) or errno_of(e) == errno.EINVAL):
                    raise
        froze = False
        if not was_frozen:
            try:
                froze = self._set_frozen(True)
            except CgroupError:
                froze = False
        try:
            for pid in read_all_pids(self.path):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if froze or (was_frozen and sig == _signal.SIGKILL):
                try:
                    self.thaw()
                except CgroupError:
                    pass

    # --- removal ---------------------------------------------------------------
    def intent(self) -> dict:
        """to_dict() as it will be once create() made its directories: what
        destroy() must remove if create is killed from now on (create's
        journal records it before create()). A backend that makes more than
        directories (a systemd unit) names it in to_dict(), and its destroy()
        accepts that it was never made."""
        d = self.to_dict()
        d["created"] = list(dict.fromkeys(self.created + missing_dirs(self.paths.values())))
        return d

    def destroy(self) -> None:
        """Remove the directories create() made (deepest first, sub-cgroups of
        them too), retrying EBUSY for up to ~1 s while tasks exit. Pre-existing
        cgroups are left alone. Idempotent: a missing directory is fine."""
        deadline = time.monotonic() + RMDIR_BUDGET
        failed: list[tuple[str, OSError]] = []
        for d in sorted(set(self.created), key=lambda p: p.count("/"), reverse=True):
            try:
                remove_tree(d, deadline)
            except OSError as e:
                failed.append((d, e))
        self.created = [d for d in self.created if any(d == f for f, _ in failed)]
        if failed:
            d, e = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise CgroupError(f"cannot remove cgroup {d}: {e.strerror}{more}") from e


def missing_dirs(paths) -> list[str]:
    """The directories `mkdir -p` of each path would make, parents first."""
    out: list[str] = []
    for path in paths:
        missing = []
        while path and not os.path.isdir(path):
            missing.append(path)
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
        out += reversed(missing)
    return out


def _rmdir(path: str, deadline: float | None) -> None:
    delay = 0.001
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno == errno.EINTR:
                continue
            if e.errno != errno.EBUSY or deadline is None or time.monotonic() >= deadline:
                raise
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay *= 2


def remove_tree(path: str, deadline: float) -> None:
    """rmdir, else remove child cgroups first and retry EBUSY (runc's RemovePath)."""
    try:
        _rmdir(path, None)
        return
    except OSError:
        pass
    try:
        children = [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    for child in children:
        remove_tree(child, deadline)
    _rmdir(path, deadline)
