"""CgroupManager: create/join, populate, restrict devices, inspect and remove
a container's cgroup(s) on cgroup v1 (one directory per hierarchy) or v2."""
from __future__ import annotations

import _signal  # the signal module's C core: the wrapper imports enum (slow start-up)
import errno
import os
import time

from pyrunc.errors import ConfigError

from . import devices as _devices
from . import freezer
from .freezer import FREEZE_WAIT
from .common import (CGROUP_ROOT, CgroupError, detect, read_all_pids, read_file,
                     read_pids, write_file, write_pid)
from .paths import V1_BEST_EFFORT, resolve_path, v1_paths, v2_path

RMDIR_BUDGET = 1.0        # seconds destroy() keeps retrying EBUSY
CREATE_TASKS = 2          # tasks in the cgroup while create runs: middle + init


class CgroupManager:
    """The cgroup(s) of one container. See pyrunc.cgroups for the contract."""

    def __init__(self, path: str | None, resources: dict | None = None,
                 container_id: str | None = None, *, version: str | None = None):
        self.version = version or detect()
        self.validate(resources, version=self.version)
        self.resources = resources
        self.created: list[str] = []
        self.pending: dict = {}
        inner = resolve_path(path, container_id or "")
        if self.version == "v2":
            self.paths = {"": v2_path(inner)}
        else:
            self.paths = v1_paths(inner)
        if resources:
            self.check_host(resources)

    # --- construction ----------------------------------------------------------
    @classmethod
    def _bare(cls, version: str, paths: dict[str, str], created: list[str]) -> "CgroupManager":
        self = cls.__new__(cls)
        self.version, self.paths, self.created, self.resources = version, dict(paths), \
            list(created), None
        self.pending = {}
        return self

    def to_dict(self) -> dict:
        """Small JSON-able state: v1 {"version","paths","created"}, v2 {"version","path","created"}."""
        d: dict = {"version": self.version}
        if self.version == "v2":
            d["path"] = self.paths[""]
        else:
            d["paths"] = dict(self.paths)
        d["created"] = list(self.created)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CgroupManager":
        try:
            version = d["version"]
            if version == "v2":
                paths = {"": d["path"]}
            elif version == "v1":
                paths = dict(d["paths"])
            else:
                raise ValueError(version)
            created = list(d.get("created", []))
        except (KeyError, TypeError, ValueError) as e:
            raise CgroupError(f"invalid cgroup state {d!r}") from e
        return cls._bare(version, paths, created)

    # --- validation ------------------------------------------------------------
    @staticmethod
    def validate(resources, where: str = "linux.resources", *, version: str | None = None
                 ) -> list:
        """Check linux.resources before anything is forked; returns the parsed device
        rules. Pure: types, ranges, unknown keys and cross-field rules (see
        resources.py); with `version` also what that cgroup version cannot do
        (unified on v1, swappiness/realtime/network... on v2). ConfigError
        names the field, e.g. linux.resources.memory.swappiness."""
        from . import resources as _resources
        if resources is None:
            return []
        spec = _resources.parse(resources, where, version)
        _resources.check(spec, where, version or "v1")
        return _devices.parse_rules(resources.get("devices"), f"{where}.devices")

    @staticmethod
    def combined_device_rules(config_rules, extra_rules, where: str = "linux.resources.devices"
                              ) -> list:
        """The config's device rules followed by the allow rules the runtime adds
        (DEFAULT_ALLOWED_DEVICES, linux.devices), checked together (pure): a
        default allow that would punch a hole in a config rule is refused before
        anything is made. Returns Rules for apply_devices()."""
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
                              "gets, from the default devices or linux.devices, conflicts "
                              "with these rules)", where) from None

    def available_controllers(self) -> set[str]:
        """v1: the mounted hierarchies the container has a directory in; v2: the
        controllers of the nearest existing ancestor of its cgroup (create()
        enables those in every cgroup.subtree_control on the way down)."""
        if self.version == "v1":
            return set(self.paths)
        current = os.path.dirname(self.paths[""])
        while not os.path.isdir(current) and os.path.dirname(current) != current:
            current = os.path.dirname(current)
        try:
            return set(read_file(current, "cgroup.controllers").split())
        except CgroupError:
            return set()

    def check_host(self, resources, where: str = "linux.resources") -> None:
        """Pre-fork: every controller the resources need exists for this cgroup
        and every huge page size is the kernel's (ConfigError naming the field)."""
        from . import resources as _resources
        spec = _resources.parse(resources, where, self.version)
        _resources.check_host(spec, where, self.version, self.available_controllers())
        _resources.check_block_devices(spec, where)
        for ctrl, file, field in _resources.optional_files(spec, self.version):
            probe = self.paths[ctrl]
            while not os.path.isdir(probe) and os.path.dirname(probe) != probe:
                probe = os.path.dirname(probe)
            if not os.path.exists(os.path.join(probe, file)):
                raise ConfigError(f"this kernel has no {file} (the {ctrl} controller "
                                  "lacks the feature)", f"{where}.{field}")

    # --- applying resources ---------------------------------------------------------
    def apply_resources(self, resources, *, context=None, creating: bool = False,
                        rollback: bool = False, where: str = "linux.resources") -> None:
        """Write linux.resources except devices (apply_devices does those) into
        the cgroup(s), after the process was placed. `context`: the effective
        resources when `resources` is only a change (update). `creating`: pids
        limits below CREATE_TASKS (the middle process forks init while in the
        cgroup) are kept in .pending until apply_pending() (after the fork).
        `rollback`: on error, put back the single-value files already written.
        CgroupError names the field and the file."""
        from . import resources as _resources
        spec = _resources.parse(resources, where, self.version)
        ctx = spec if context is None else _resources.parse(context, where, self.version)
        if creating and "pids" in spec and 0 <= spec["pids"]["limit"] < CREATE_TASKS:
            self.pending = {"pids": spec.pop("pids")}
        target = _resources.Target(self.version, self.paths, [] if rollback else None)
        try:
            _resources.apply(spec, target, ctx, where)
        except BaseException:
            if rollback:
                target.rollback()
            raise

    def apply_pending(self) -> None:
        """Write what apply_resources(creating=True) held back."""
        from . import resources as _resources
        pending, self.pending = self.pending, {}
        if pending:
            _resources.apply(pending, _resources.Target(self.version, self.paths), pending)

    def stats(self) -> dict:
        """The container's statistics, as runc's `events` prints them ("data")."""
        from .stats import collect
        return collect(self.version, self.paths)

    def oom_watcher(self):
        """An OOMWatcher on this cgroup (see stats.py)."""
        from .stats import OOMWatcher
        return OOMWatcher(self.version, self.paths)

    def all_processes(self) -> list[int]:
        """Pids in the container's cgroup and all its sub-cgroups."""
        return read_all_pids(self.path)

    # --- lifecycle -------------------------------------------------------------
    @property
    def path(self) -> str:
        """The primary directory: v2 the cgroup, v1 the devices hierarchy's."""
        return self.paths[""] if self.version == "v2" else self.paths["devices"]

    def create(self) -> None:
        """mkdir -p every cgroup directory, remembering the ones made here.
        v1: cpuset dirs get cpuset.cpus/mems from their parent (else no task
        could join); best-effort hierarchies (name=systemd, misc, the hybrid
        unified one) are dropped on failure, like runc. v2: all controllers
        the parent has are enabled in every ancestor's cgroup.subtree_control
        (errors ignored, as runc does). On error, what was made is removed."""
        try:
            if self.version == "v2":
                self._create_v2(self.paths[""])
            else:
                for name, path in list(self.paths.items()):
                    try:
                        self._mkdirs(path, cpuset=(name == "cpuset"))
                    except CgroupError:
                        if name not in V1_BEST_EFFORT:
                            raise
                        del self.paths[name]
        except BaseException:
            try:
                self.destroy()
            except CgroupError:
                pass
            raise

    def _mkdirs(self, path: str, cpuset: bool = False) -> None:
        missing = []
        current = path
        while not os.path.isdir(current):
            missing.append(current)
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        for d in reversed(missing):
            try:
                os.mkdir(d, 0o755)
            except FileExistsError:
                continue
            except OSError as e:
                raise CgroupError(f"cannot create cgroup {d}: {e.strerror}") from e
            self.created.append(d)
            if cpuset:
                self._cpuset_copy(d)

    @staticmethod
    def _cpuset_copy(d: str) -> None:
        parent = os.path.dirname(d)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not read_file(d, name).strip():
                write_file(d, name, read_file(parent, name).strip())

    def _create_v2(self, path: str) -> None:
        root = CGROUP_ROOT if path.startswith(CGROUP_ROOT + "/") else os.path.dirname(path)
        rel = os.path.relpath(path, root)
        current = root
        for part in rel.split("/"):
            # enable in `current` what it has, so the child below gets them
            controllers = read_file(current, "cgroup.controllers").split()
            if controllers:
                try:
                    write_file(current, "cgroup.subtree_control",
                               " ".join("+" + c for c in controllers))
                except CgroupError:
                    for c in controllers:
                        try:
                            write_file(current, "cgroup.subtree_control", "+" + c)
                        except CgroupError:
                            pass
            current = os.path.join(current, part)
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                continue
            except OSError as e:
                raise CgroupError(f"cannot create cgroup {current}: {e.strerror}") from e
            self.created.append(current)

    def add_process(self, pid: int) -> None:
        """Write pid to cgroup.procs in every hierarchy (best-effort ones may fail)."""
        for name, path in self.paths.items():
            try:
                write_pid(path, pid)
            except CgroupError:
                if self.version == "v2" or name not in V1_BEST_EFFORT:
                    raise

    def apply_devices(self, rules) -> None:
        """Enforce device rules (OCI dicts, or Rules from devices.parse_rules)
        exactly in runc's emulator semantics; the caller includes the defaults."""
        if rules and isinstance(rules[0], dict):
            rules = _devices.parse_rules(rules)
        rules = list(rules or [])
        if self.version == "v2":
            from .bpf import attach_device_filter
            attach_device_filter(self.paths[""], rules)
            return
        path = self.paths["devices"]
        current = read_file(path, "devices.list")
        for file, line in _devices.v1_writes(current, rules):
            write_file(path, file, line)
        # runc's final safety check: the kernel now shows exactly the target
        # (devices.list can only be compared exactly in allow-list mode).
        target = _devices.Emulator.from_rules(rules)
        after = _devices.Emulator.from_list(read_file(path, "devices.list"))
        if (after.default_allow != target.default_allow
                or (not target.default_allow and after != target)):
            raise CgroupError(f"devices cgroup {path} does not match the requested rules "
                              "after applying them")

    # --- inspection ------------------------------------------------------------
    def processes(self) -> list[int]:
        """Pids in the container's cgroup (primary hierarchy); [] once it is gone."""
        return read_pids(self.path)

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
            if not (isinstance(e.__cause__, OSError) and e.__cause__.errno == errno.ENOENT):
                raise

    def _set_frozen(self, frozen: bool) -> bool:
        """False if this cgroup has no freezer."""
        if self.version == "v2":
            path, file, value = self.paths[""], "cgroup.freeze", "1" if frozen else "0"
        else:
            path = self.paths.get("freezer")
            if not path:
                return False
            file, value = "freezer.state", "FROZEN" if frozen else "THAWED"
        write_file(path, file, value)
        if not frozen:
            return True
        deadline = time.monotonic() + FREEZE_WAIT
        while not self._settled_frozen(path):
            if time.monotonic() >= deadline:
                write_file(path, file, "0" if self.version == "v2" else "THAWED")
                raise CgroupError(f"cannot freeze cgroup {path}: still freezing after "
                                  f"{FREEZE_WAIT:g} s")
            time.sleep(0.001)
        return True

    def _settled_frozen(self, path: str) -> bool:
        if self.version == "v1":
            return read_file(path, "freezer.state").strip() == "FROZEN"
        for line in read_file(path, "cgroup.events").splitlines():
            if line.startswith("frozen "):
                return line.split()[1] == "1"
        return True     # no "frozen" key: the kernel cannot tell us; trust cgroup.freeze

    def kill_all(self, sig: int = _signal.SIGKILL) -> None:
        """Send sig to every process in the cgroup tree (runc's signalAllProcesses):
        cgroup.kill for SIGKILL where the kernel has it, else freeze, signal each
        pid, and thaw again -- unless it was frozen before (a paused container
        stays paused), except for SIGKILL, after which it is thawed so the
        tasks can die. A missing cgroup is a no-op."""
        was_frozen = self.freeze_state() == "frozen"
        unified = self.paths.get("" if self.version == "v2" else "unified")
        if sig == _signal.SIGKILL and unified:
            try:
                write_file(unified, "cgroup.kill", "1")
                if was_frozen:
                    self.thaw()
                return
            except CgroupError as e:
                if not (isinstance(e.__cause__, OSError)
                        and e.__cause__.errno in (errno.ENOENT, errno.EINVAL)):
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
    def destroy(self) -> None:
        """Remove the directories create() made (deepest first, sub-cgroups of
        them too), retrying EBUSY for up to ~1 s while tasks exit. Pre-existing
        cgroups are left alone. Idempotent: a missing directory is fine."""
        deadline = time.monotonic() + RMDIR_BUDGET
        failed: list[tuple[str, OSError]] = []
        for d in sorted(set(self.created), key=lambda p: p.count("/"), reverse=True):
            try:
                _remove_tree(d, deadline)
            except OSError as e:
                failed.append((d, e))
        self.created = [d for d in self.created if any(d == f for f, _ in failed)]
        if failed:
            d, e = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise CgroupError(f"cannot remove cgroup {d}: {e.strerror}{more}") from e


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


def _remove_tree(path: str, deadline: float) -> None:
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
        _remove_tree(child, deadline)
    _rmdir(path, deadline)
