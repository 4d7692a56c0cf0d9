"""cgroupfs on cgroup v1 (runc's cgroups/fs): one directory per mounted
hierarchy, made and removed by us, and the v1 writes of linux.resources."""
from __future__ import annotations

import errno
import os

from pyrunc.errors import ConfigError
from pyrunc.lean.procfs import read_small

from . import devices as _devices
from .common import CgroupError, Target, errno_of, read_file, write_file, write_pid
from .manager import CgroupManager, missing_dirs
from .paths import V1_BEST_EFFORT, sub_cgroup, v1_paths
from .resources import THROTTLE_KEYS, pids_max, rdma_lines

# the blkio.throttle.* file of each OCI throttle list
THROTTLE_V1 = dict(zip(THROTTLE_KEYS, ("blkio.throttle.read_bps_device",
                                       "blkio.throttle.write_bps_device",
                                       "blkio.throttle.read_iops_device",
                                       "blkio.throttle.write_iops_device")))


class FsManager(CgroupManager):
    driver, version = "fs", "v1"

    @classmethod
    def at(cls, inner: str, spec: dict | None = None) -> "FsManager":
        """The manager of cgroup `inner` (resolve_path's form) in every hierarchy."""
        return cls(v1_paths(inner), spec)

    def to_dict(self) -> dict:
        """Small JSON-able state: {"version": "v1", "paths", "created"}."""
        return {"version": "v1", "paths": dict(self.paths), "created": list(self.created)}

    @classmethod
    def from_dict(cls, d: dict) -> "FsManager":
        try:
            if d["version"] != "v1":
                raise ValueError(d["version"])
            return cls(dict(d["paths"]), None, list(d.get("created", [])))
        except (KeyError, TypeError, ValueError) as e:
            raise CgroupError(f"invalid cgroup state {d!r}") from e

    # --- host checks -----------------------------------------------------------
    def available_controllers(self) -> set[str]:
        """The mounted hierarchies the container has a directory in."""
        return set(self.paths)

    def _check_files(self, spec: dict, where: str) -> None:
        for ctrl, file, field in optional_files(spec):
            probe = self.paths[ctrl]
            while not os.path.isdir(probe) and os.path.dirname(probe) != probe:
                probe = os.path.dirname(probe)
            if not os.path.exists(os.path.join(probe, file)):
                raise ConfigError(f"this kernel has no {file} (the {ctrl} controller "
                                  "lacks the feature)", f"{where}.{field}")

    # --- lifecycle -------------------------------------------------------------
    def create(self) -> None:
        """mkdir -p every cgroup directory, remembering the ones made here.
        cpuset dirs get cpuset.cpus/mems from their parent (else no task could
        join); best-effort hierarchies (name=systemd, misc, the hybrid unified
        one) are dropped on failure, like runc. On error, what was made is
        removed."""
        try:
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
        missing = missing_dirs([path])
        if cpuset:
            cpuset_fill(os.path.dirname(missing[0]) if missing else path)
        for d in missing:
            try:
                os.mkdir(d, 0o755)
            except FileExistsError:
                continue
            except OSError as e:
                raise CgroupError(f"cannot create cgroup {d}: {e.strerror}") from e
            self.created.append(d)
            if cpuset:
                cpuset_copy(d)

    def add_process(self, pid: int) -> None:
        """Write pid to cgroup.procs in every hierarchy (best-effort ones may fail)."""
        for name, path in self.paths.items():
            try:
                write_pid(path, pid)
            except CgroupError:
                if name not in V1_BEST_EFFORT:
                    raise

    def exec_dirs(self, sub: dict[str, str] | None = None) -> dict[str, str]:
        """v1: one sub-cgroup for every hierarchy, or one per named controller
        (the others stay in the container's cgroup), as runc's addIntoCgroupV1."""
        if not sub or "" in sub:
            return super().exec_dirs(sub)
        unknown = sorted(set(sub) - set(self.paths))
        if unknown:
            raise CgroupError(f"unknown controller {unknown[0]} in --cgroup (this container's "
                              f"are {', '.join(sorted(self.paths))})")
        return {ctrl: sub_cgroup(d, sub.get(ctrl, "")) for ctrl, d in self.paths.items()}

    def _apply_devices(self, rules: list) -> None:
        """Exactly in runc's emulator semantics."""
        apply_device_rules(self.paths["devices"], rules)

    def _write(self, spec: dict, target: Target, ctx: dict, where: str) -> None:
        apply(spec, target, ctx, where)

    # --- freezer ---------------------------------------------------------------
    def _freezer(self):
        path = self.paths.get("freezer")
        return (path, "freezer.state", "FROZEN", "THAWED") if path else None

    def _settled_frozen(self, path: str) -> bool:
        return read_file(path, "freezer.state").strip() == "FROZEN"

    def _self_frozen(self, path: str) -> bool:
        # FROZEN or FREEZING by its own freezer.state (runc's GetState)
        return read_small(os.path.join(path, "freezer.self_freezing")).strip() == b"1"

    def _kill_file_dir(self) -> str | None:
        return self.paths.get("unified")     # the hybrid host's cgroup2 directory


def cpuset_copy(d: str) -> None:
    """A new v1 cpuset cgroup is empty: give it its parent's cpus and mems
    (no task can join a cpuset without both: ENOSPC)."""
    parent = os.path.dirname(d)
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not read_file(d, name).strip():
            write_file(d, name, read_file(parent, name).strip())


def cpuset_fill(d: str) -> None:
    """Existing cpuset cgroup `d` and its ancestors below the hierarchy's root
    get cpus/mems copied down from the nearest populated ancestor where theirs
    are empty (someone made them and never filled them), top down as runc's
    cpusetEnsureParent does: else the container's cgroup below would be empty."""
    chain = []
    while os.path.exists(os.path.join(os.path.dirname(d), "cpuset.cpus")):
        chain.append(d)
        d = os.path.dirname(d)
    for current in reversed(chain):
        cpuset_copy(current)


def apply_device_rules(path: str, rules: list) -> None:
    """v1 devices.allow/deny writes that turn devices.list into `rules`, then
    runc's final safety check: the kernel now shows exactly the target
    (devices.list can only be compared exactly in allow-list mode)."""
    current = read_file(path, "devices.list")
    for file, line in _devices.v1_writes(current, rules):
        write_file(path, file, line)
    target = _devices.Emulator.from_rules(rules)
    after = _devices.Emulator.from_list(read_file(path, "devices.list"))
    if (after.default_allow != target.default_allow
            or (not target.default_allow and after != target)):
        raise CgroupError(f"devices cgroup {path} does not match the requested rules "
                          "after applying them")


def optional_files(spec: dict) -> list[tuple[str, str, str]]:
    """[(controller, file, field)] of v1 control files that only some kernels
    have and that the spec needs. They show in every cgroup of a hierarchy,
    its root included, so they can be checked before the container's cgroup
    exists."""
    out = []
    m, c, b = spec.get("memory", {}), spec.get("cpu", {}), spec.get("blockIO", {})
    if m.get("swap", 0) > 0:
        out.append(("memory", "memory.memsw.limit_in_bytes", "memory.swap"))
    if "kernelTCP" in m:
        out.append(("memory", "memory.kmem.tcp.limit_in_bytes", "memory.kernelTCP"))
    if "burst" in c:
        out.append(("cpu", "cpu.cfs_burst_us", "cpu.burst"))
    if "idle" in c:
        out.append(("cpu", "cpu.idle", "cpu.idle"))
    for k, file in (("realtimeRuntime", "cpu.rt_runtime_us"), ("realtimePeriod", "cpu.rt_period_us")):
        if k in c:
            out.append(("cpu", file, f"cpu.{k}"))
    if "leafWeight" in b:
        out.append(("blkio", "blkio.leaf_weight", "blockIO.leafWeight"))
    for i, d in enumerate(b.get("weightDevice", [])):
        if "leafWeight" in d:
            out.append(("blkio", "blkio.leaf_weight_device", f"blockIO.weightDevice[{i}]"))
    return out


# --- the writes, in runc's fs driver order: cpuset, memory, cpu, pids, blkio,
# hugetlb, net_cls, net_prio, rdma -------------------------------------------------------

def apply(spec: dict, t: Target, ctx: dict | None = None, where: str = "linux.resources"
          ) -> None:
    """Write the spec into the cgroup. `ctx` is the effective (merged) spec,
    used where a write needs a value the spec leaves out."""
    ctx = spec if ctx is None else ctx
    c = spec.get("cpu", {})
    for k in ("cpus", "mems"):
        if k in c:
            t.write(f"{where}.cpu.{k}", "cpuset", f"cpuset.{k}", c[k])
    if "memory" in spec:
        _memory(spec["memory"], t, f"{where}.memory")
    if c:
        _cpu(c, t, f"{where}.cpu")
    if "pids" in spec:
        t.write(f"{where}.pids.limit", "pids", "pids.max", pids_max(spec["pids"]["limit"]))
    if "blockIO" in spec:
        _blkio(spec["blockIO"], t, f"{where}.blockIO")
    for i, h in enumerate(spec.get("hugepageLimits", [])):
        field = f"{where}.hugepageLimits[{i}]"
        prefix = f"hugetlb.{h['pageSize']}"
        t.write(field, "hugetlb", prefix + ".limit_in_bytes", str(h["limit"]))
        if t.has("hugetlb", prefix + ".rsvd.limit_in_bytes"):
            t.write(field, "hugetlb", prefix + ".rsvd.limit_in_bytes", str(h["limit"]))
    n = spec.get("network", {})
    if "classID" in n:
        t.write(f"{where}.network.classID", "net_cls", "net_cls.classid", str(n["classID"]))
    for i, p in enumerate(n.get("priorities", [])):
        t.write(f"{where}.network.priorities[{i}]", "net_prio", "net_prio.ifpriomap",
                f"{p['name']} {p['priority']}")
    _rdma(spec, t, where)


def _memory(m: dict, t: Target, at: str) -> None:
    limit, swap = m.get("limit", 0), m.get("swap", 0)
    memsw = "memory.memsw.limit_in_bytes"
    # runc: memory -1 with swap unset means "both unlimited"
    if limit == -1 and swap == 0 and t.has("memory", memsw):
        swap = -1
    if swap and not t.has("memory", memsw):
        raise CgroupError(f"cannot set it: {memsw} does not exist (the kernel has no swap "
                          "accounting: CONFIG_MEMCG_SWAP / swapaccount=0)", f"{at}.swap")

    def set_limit():
        if not limit:
            return
        try:
            t.write(f"{at}.limit", "memory", "memory.limit_in_bytes", str(limit))
        except CgroupError as e:
            if errno_of(e) != errno.EBUSY:
                raise
            usage = t.read("memory", "memory.usage_in_bytes", f"{at}.limit")
            peak = t.read("memory", "memory.max_usage_in_bytes", f"{at}.limit")
            raise CgroupError(f"unable to set memory limit to {limit} (current usage: {usage}, "
                              f"peak usage: {peak})", f"{at}.limit") from e.__cause__

    def set_swap():
        if swap:
            t.write(f"{at}.swap", "memory", memsw, str(swap))

    # The kernel keeps memsw >= memory at every moment: raising both, write
    # memsw first; lowering, memory first (runc's setMemoryAndSwap).
    if limit and swap:
        current = int(t.read("memory", "memory.limit_in_bytes", f"{at}.limit"))
        if swap == -1 or current < swap:
            set_swap()
            set_limit()
        else:
            set_limit()
            set_swap()
    else:
        set_limit()
        set_swap()
    if "reservation" in m:
        t.write(f"{at}.reservation", "memory", "memory.soft_limit_in_bytes",
                str(m["reservation"]))
    if "kernelTCP" in m:
        t.write(f"{at}.kernelTCP", "memory", "memory.kmem.tcp.limit_in_bytes",
                str(m["kernelTCP"]))
    # kernel: never written (see check(): Linux >= 6.1 ignores the file)
    if "disableOOMKiller" in m:
        current = t.read("memory", "memory.oom_control", f"{at}.disableOOMKiller")
        on = "oom_kill_disable 1" in current
        if on != m["disableOOMKiller"]:
            t.write(f"{at}.disableOOMKiller", "memory", "memory.oom_control",
                    "1" if m["disableOOMKiller"] else "0")
    if "swappiness" in m:
        t.write(f"{at}.swappiness", "memory", "memory.swappiness", str(m["swappiness"]))
    if "useHierarchy" in m:
        want = "1" if m["useHierarchy"] else "0"
        if t.read("memory", "memory.use_hierarchy", f"{at}.useHierarchy") != want:
            t.write(f"{at}.useHierarchy", "memory", "memory.use_hierarchy", want)


def _cpu(c: dict, t: Target, at: str) -> None:
    if "shares" in c:
        t.write(f"{at}.shares", "cpu", "cpu.shares", str(c["shares"]))
        got = int(t.read("cpu", "cpu.shares", f"{at}.shares"))
        if got != c["shares"]:
            raise CgroupError(f"the {'maximum' if c['shares'] > got else 'minimum'} allowed "
                              f"cpu-shares is {got}", f"{at}.shares")
    quota = c.get("quota", 0)
    # A new period (or burst) can be refused (EINVAL) until the new quota is
    # in: retry it after the quota (runc).
    retry = []
    for key, file in (("period", "cpu.cfs_period_us"), ("burst", "cpu.cfs_burst_us")):
        if key not in c:
            continue
        try:
            t.write(f"{at}.{key}", "cpu", file, str(c[key]))
        except CgroupError as e:
            if errno_of(e) != errno.EINVAL or not quota:
                raise
            retry.append((key, file))
    if quota:
        t.write(f"{at}.quota", "cpu", "cpu.cfs_quota_us", str(quota))
        for key, file in retry:
            t.write(f"{at}.{key}", "cpu", file, str(c[key]))
    if "idle" in c:
        t.write(f"{at}.idle", "cpu", "cpu.idle", str(c["idle"]))
    rt_retry = False
    if "realtimePeriod" in c:
        try:
            t.write(f"{at}.realtimePeriod", "cpu", "cpu.rt_period_us", str(c["realtimePeriod"]))
        except CgroupError as e:
            if errno_of(e) != errno.EINVAL or "realtimeRuntime" not in c:
                raise
            rt_retry = True
    if "realtimeRuntime" in c:
        t.write(f"{at}.realtimeRuntime", "cpu", "cpu.rt_runtime_us",
                str(c["realtimeRuntime"]))
        if rt_retry:
            t.write(f"{at}.realtimePeriod", "cpu", "cpu.rt_period_us",
                    str(c["realtimePeriod"]))


def _blkio(b: dict, t: Target, at: str) -> None:
    # CFQ's blkio.weight is gone since Linux 5.0; BFQ has blkio.bfq.weight (runc
    # prefers blkio.weight when both exist).
    bfq = not t.has("blkio", "blkio.weight") and t.has("blkio", "blkio.bfq.weight")
    weight_file = "blkio.bfq.weight" if bfq else "blkio.weight"
    weight_device_file = "blkio.bfq.weight_device" if bfq else "blkio.weight_device"
    if "weight" in b:
        t.write(f"{at}.weight", "blkio", weight_file, str(b["weight"]))
    if "leafWeight" in b:
        t.write(f"{at}.leafWeight", "blkio", "blkio.leaf_weight", str(b["leafWeight"]))
    for i, d in enumerate(b.get("weightDevice", [])):
        dev = f"{d['major']}:{d['minor']}"
        if "weight" in d:
            t.write(f"{at}.weightDevice[{i}].weight", "blkio", weight_device_file,
                    f"{dev} {d['weight']}")
        if "leafWeight" in d:
            t.write(f"{at}.weightDevice[{i}].leafWeight", "blkio", "blkio.leaf_weight_device",
                    f"{dev} {d['leafWeight']}")
    for key, file in THROTTLE_V1.items():
        for i, d in enumerate(b.get(key, [])):
            t.write(f"{at}.{key}[{i}]", "blkio", file, f"{d['major']}:{d['minor']} {d['rate']}")


def _rdma(spec: dict, t: Target, where: str) -> None:
    for dev, line in rdma_lines(spec):
        t.write(f"{where}.rdma.{dev}", "rdma", "rdma.max", line)
