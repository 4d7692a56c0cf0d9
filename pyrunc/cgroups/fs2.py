"""cgroupfs on cgroup v2 (runc's cgroups/fs2): one directory, made and removed
by us, controllers enabled on the way down, the v2 writes of linux.resources
(with runc's v1 -> v2 conversions) and the device eBPF program."""
from __future__ import annotations

import errno
import os

from pyrunc.lean.procfs import read_small

from .common import CGROUP_ROOT, CgroupError, Target, errno_of, read_file, write_file, write_pid
from .manager import CgroupManager
from .paths import v2_path
from .resources import (THROTTLE_KEYS, V2_DEFAULT_PERIOD, blkio_weight_to_io_weight,
                        cpu_shares_to_weight, pids_max, rdma_lines, swap_to_v2)

# the io.max key of each OCI throttle list
THROTTLE_V2 = dict(zip(THROTTLE_KEYS, ("rbps", "wbps", "riops", "wiops")))


class Fs2Manager(CgroupManager):
    driver, version = "fs2", "v2"

    @classmethod
    def at(cls, inner: str, spec: dict | None = None) -> "Fs2Manager":
        """The manager of cgroup `inner` (resolve_path's form)."""
        return cls({"": v2_path(inner)}, spec)

    def to_dict(self) -> dict:
        """Small JSON-able state: {"version": "v2", "path", "created"}."""
        return {"version": "v2", "path": self.paths[""], "created": list(self.created)}

    @classmethod
    def from_dict(cls, d: dict) -> "Fs2Manager":
        try:
            if d["version"] != "v2":
                raise ValueError(d["version"])
            return cls({"": d["path"]}, None, list(d.get("created", [])))
        except (KeyError, TypeError, ValueError) as e:
            raise CgroupError(f"invalid cgroup state {d!r}") from e

    def available_controllers(self) -> set[str]:
        """The controllers of the nearest existing ancestor of the cgroup
        (create() enables those in every cgroup.subtree_control on the way down)."""
        current = os.path.dirname(self.paths[""])
        while not os.path.isdir(current) and os.path.dirname(current) != current:
            current = os.path.dirname(current)
        try:
            return set(read_file(current, "cgroup.controllers").split())
        except CgroupError:
            return set()

    # --- lifecycle -------------------------------------------------------------
    def create(self) -> None:
        """mkdir -p the cgroup, remembering the directories made here; all the
        controllers each parent has are enabled in its cgroup.subtree_control
        (errors ignored, as runc does). On error, what was made is removed."""
        try:
            self.created += make_path(self.paths[""])
        except BaseException:
            try:
                self.destroy()
            except CgroupError:
                pass
            raise

    def add_process(self, pid: int) -> None:
        write_pid(self.paths[""], pid)

    def _init_cgroup(self, init_pid: int) -> str | None:
        from .paths import process_cgroup_v2
        return process_cgroup_v2(init_pid) if init_pid else None

    def _apply_devices(self, rules: list) -> None:
        """With an attached eBPF program (replacing ours)."""
        from .bpf import attach_device_filter
        attach_device_filter(self.paths[""], rules)

    def _write(self, spec: dict, target: Target, ctx: dict, where: str) -> None:
        apply(spec, target, ctx, where)

    # --- freezer ---------------------------------------------------------------
    def _freezer(self):
        return (self.paths[""], "cgroup.freeze", "1", "0")

    def _self_frozen(self, path: str) -> bool:
        return read_small(os.path.join(path, "cgroup.freeze")).strip() == b"1"

    def _settled_frozen(self, path: str) -> bool:
        for line in read_file(path, "cgroup.events").splitlines():
            if line.startswith("frozen "):
                return line.split()[1] == "1"
        return True     # no "frozen" key: the kernel cannot tell us; trust cgroup.freeze


def enable_controllers(directory: str) -> None:
    """Enable in `directory` every controller it has, so its children get them."""
    controllers = read_file(directory, "cgroup.controllers").split()
    if not controllers:
        return
    try:
        write_file(directory, "cgroup.subtree_control", " ".join("+" + c for c in controllers))
    except CgroupError:
        for c in controllers:
            try:
                write_file(directory, "cgroup.subtree_control", "+" + c)
            except CgroupError:
                pass


def make_path(path: str) -> list[str]:
    """mkdir -p a v2 cgroup below the mount, enabling controllers on the way
    (runc's fs2 CreateCgroupPath); returns the directories it made."""
    root = CGROUP_ROOT if path.startswith(CGROUP_ROOT + "/") else os.path.dirname(path)
    made: list[str] = []
    current = root
    for part in os.path.relpath(path, root).split("/"):
        enable_controllers(current)
        current = os.path.join(current, part)
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            continue
        except OSError as e:
            raise CgroupError(f"cannot create cgroup {current}: {e.strerror}") from e
        made.append(current)
    return made


# --- the writes, in runc's fs2 order: pids, memory, io, cpu, cpuset, hugetlb, rdma,
# unified ---------------------------------------------------------------------------------

def _num(v: int) -> str:
    return "max" if v == -1 else str(v)


def apply(spec: dict, t: Target, ctx: dict | None = None, where: str = "linux.resources"
          ) -> None:
    """Write the spec into the cgroup. `ctx` is the effective (merged) spec,
    used where a write needs a value the spec leaves out."""
    ctx = spec if ctx is None else ctx
    if "pids" in spec:
        t.write(f"{where}.pids.limit", "", "pids.max", pids_max(spec["pids"]["limit"]))
    if "memory" in spec:
        _memory(spec["memory"], t, ctx.get("memory", {}), f"{where}.memory")
    if "blockIO" in spec:
        _io(spec["blockIO"], t, f"{where}.blockIO")
    c = spec.get("cpu", {})
    if c:
        _cpu(c, t, ctx.get("cpu", {}), f"{where}.cpu")
    for k in ("cpus", "mems"):
        if k in c:
            t.write(f"{where}.cpu.{k}", "", f"cpuset.{k}", c[k])
    for i, h in enumerate(spec.get("hugepageLimits", [])):
        field = f"{where}.hugepageLimits[{i}]"
        prefix = f"hugetlb.{h['pageSize']}"
        t.write(field, "", prefix + ".max", str(h["limit"]))
        if t.has("", prefix + ".rsvd.max"):
            t.write(field, "", prefix + ".rsvd.max", str(h["limit"]))
    for dev, line in rdma_lines(spec):
        t.write(f"{where}.rdma.{dev}", "", "rdma.max", line)
    for key, value in spec.get("unified", {}).items():
        t.write(f"{where}.unified.{key}", "", key, value)


def _memory(m: dict, t: Target, ctx: dict, at: str) -> None:
    limit = m.get("limit", 0)
    if limit > 0 and ctx.get("checkBeforeUpdate"):
        current = int(t.read("", "memory.current", f"{at}.limit"))
        if current >= limit:
            raise CgroupError(f"rejecting memory limit {limit}: the current usage {current} is "
                              "not below it (checkBeforeUpdate)", f"{at}.limit")
    swap = m.get("swap", 0)
    if swap or limit == -1:
        # swap needs the effective memory limit (the update may change only swap)
        value = swap_to_v2(swap, limit if limit else ctx.get("limit", 0))
        if value is not None:
            try:
                t.write(f"{at}.swap", "", "memory.swap.max", value)
            except CgroupError as e:
                # no swap accounting: "unlimited" or "no swap" are already true
                if not (errno_of(e) == errno.ENOENT and value in ("max", "0")):
                    raise
    if limit:
        t.write(f"{at}.limit", "", "memory.max", _num(limit))
    if "reservation" in m:
        t.write(f"{at}.reservation", "", "memory.low", _num(m["reservation"]))
    # kernel / kernelTCP: no v2 file; check() allowed only values the memory
    # limit already enforces. swappiness, disableOOMKiller, useHierarchy:
    # refused by parse() unless they ask for v2's fixed behaviour.


def _io(b: dict, t: Target, at: str) -> None:
    bfq = t.has("", "io.bfq.weight")
    # BFQ takes per-device weights ("MAJ:MIN W") since Linux 5.4, when reading
    # io.bfq.weight shows more than one number (runc's bfqDeviceWeightSupported)
    per_device_bfq = bfq and bool(b.get("weightDevice")) and \
        not t.read("", "io.bfq.weight").isdigit()
    if "weight" in b:
        if bfq:
            t.write(f"{at}.weight", "", "io.bfq.weight", str(b["weight"]))
        else:
            t.write(f"{at}.weight", "", "io.weight",
                    str(blkio_weight_to_io_weight(b["weight"])))
    if b.get("weightDevice"):
        # per-device weights: BFQ, else io.weight's per-device form (iocost),
        # converted like the default weight
        for i, d in enumerate(b["weightDevice"]):
            field = f"{at}.weightDevice[{i}].weight"
            dev = f"{d['major']}:{d['minor']}"
            if per_device_bfq:
                t.write(field, "", "io.bfq.weight", f"{dev} {d['weight']}")
            elif t.has("", "io.weight"):
                t.write(field, "", "io.weight",
                        f"{dev} {blkio_weight_to_io_weight(d['weight'])}")
            else:
                raise CgroupError("cannot set a per-device weight: the kernel has neither "
                                  "BFQ per-device weights (io.bfq.weight) nor io.weight", field)
    for key, name in THROTTLE_V2.items():
        for i, d in enumerate(b.get(key, [])):
            # v1 semantics: rate 0 removes the limit; v2 spells that "max"
            rate = d["rate"] or "max"
            t.write(f"{at}.{key}[{i}]", "", "io.max",
                    f"{d['major']}:{d['minor']} {name}={rate}")


def _cpu(c: dict, t: Target, ctx: dict, at: str) -> None:
    if "idle" in c:
        t.write(f"{at}.idle", "", "cpu.idle", str(c["idle"]))
    if "shares" in c:
        t.write(f"{at}.shares", "", "cpu.weight", str(cpu_shares_to_weight(c["shares"])))
    burst_retry = False
    if "burst" in c:
        try:
            t.write(f"{at}.burst", "", "cpu.max.burst", str(c["burst"]))
        except CgroupError as e:
            if errno_of(e) != errno.EINVAL or "quota" not in c:
                raise
            burst_retry = True
    if "quota" in c or "period" in c:
        # cpu.max takes both: the one not in this spec comes from the
        # effective resources (update of only one of them keeps the other)
        quota = c.get("quota", ctx.get("quota", -1))
        period = c.get("period", ctx.get("period", V2_DEFAULT_PERIOD))
        field = f"{at}.quota" if "quota" in c else f"{at}.period"
        t.write(field, "", "cpu.max", f"{'max' if quota <= 0 else quota} {period}")
        if burst_retry:
            t.write(f"{at}.burst", "", "cpu.max.burst", str(c["burst"]))
