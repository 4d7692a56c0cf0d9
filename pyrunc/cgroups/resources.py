"""linux.resources other than `devices`: parsed and checked once, before
anything is forked, for every cgroup backend (fs, fs2, systemd):

    parse(resources, where, version)   pure: types, ranges, unknown keys, what the
                                       cgroup version cannot express -> a "spec"
    check(spec, where, version)        pure: cross-field rules on the effective
                                       values (memory vs swap, kernel memory, burst)
    check_host(spec, where, version, available, hugepage_sizes)
                                       the controllers and page sizes this host has
    merge(old, spec)                   what `update` persists

The writers live with their backends: fs.py (v1 files), fs2.py (v2 files),
systemd/ (unit properties, then the files).

A spec has the OCI shape (same keys) but keeps only what asks for something.
Like runc, 0 means "not set / leave as is" for memory.{limit,reservation,swap,
kernel,kernelTCP}, cpu.{shares,quota,period,realtimeRuntime,realtimePeriod},
blockIO.{weight,leafWeight} and network.classID: update tools send 0 for
"unchanged" (containerd's CRI does), so refusing 0 would break them. pids.limit
0 *is* a limit (runtime-spec 1.3: "0 is a valid limit value"); -1 is "max"
wherever a limit is a number. Anything else out of the kernel's range is a
ConfigError naming the field, e.g. linux.resources.memory.swappiness.

v1 -> v2 conversions (runc's, shared by fs2 and systemd): cpu.shares ->
cpu.weight = 1 + (shares-2)*9999/262142; blockIO.weight -> io.bfq.weight as
is, else io.weight = 1 + (weight-10)*9999/990; memory.swap is memory+swap, so
memory.swap.max = swap - limit (swap == limit: 0, no swap; -1: max).
"""
from __future__ import annotations

import os

from pyrunc.errors import ConfigError

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
UINT32_MAX = (1 << 32) - 1

CPU_SHARES_MIN, CPU_SHARES_MAX = 2, 262144          # kernel MIN_SHARES, MAX_SHARES
CFS_PERIOD_MIN, CFS_PERIOD_MAX = 1000, 1000000      # 1 ms .. 1 s (kernel)
CFS_QUOTA_MIN = 1000                                 # 1 ms (kernel)
BLKIO_WEIGHT_MIN, BLKIO_WEIGHT_MAX = 10, 1000        # runc's documented range
V2_DEFAULT_PERIOD = 100000

TOP_KEYS = ("devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network",
            "rdma", "unified")
MEMORY_KEYS = ("limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness",
               "disableOOMKiller", "useHierarchy", "checkBeforeUpdate")
CPU_KEYS = ("shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod",
            "cpus", "mems", "idle")
THROTTLE_KEYS = ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                 "throttleWriteIOPSDevice")
BLKIO_KEYS = ("weight", "leafWeight", "weightDevice") + THROTTLE_KEYS



# --- syntax checks -----------------------------------------------------------------------
# Plain string code, not `re`: importing re costs ~7 ms on every runtime command.
# Unlike the regular expressions these replaced, nothing here accepts a trailing
# newline or non-ASCII digits.

_CONTROLLER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_")
_PARAMETER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")


def _is_number(s: str) -> bool:
    """One or more ASCII digits (str.isdigit alone also takes "²" or "٣")."""
    return s.isascii() and s.isdigit()


def is_cpu_list(s: str) -> bool:
    """A cpuset list: "N" or "N-M" items joined by commas, e.g. "0-3,7" (leading
    zeros allowed; a backwards range like "3-1" is the caller's to refuse)."""
    for item in s.split(","):
        lo, dash, hi = item.partition("-")
        if not _is_number(lo) or (dash and not _is_number(hi)):
            return False
    return True


def is_page_size(s: str) -> bool:
    """A hugetlb page size as OCI writes it: "2MB", "64KB", "1GB" (no leading zero)."""
    number, unit = s[:-2], s[-2:]
    return unit in ("KB", "MB", "GB") and _is_number(number) and number[0] != "0"


def is_unified_key(s: str) -> bool:
    """A cgroup v2 file name "controller.parameter", e.g. "memory.high": the
    controller is [a-z_]+, the parameter [A-Za-z0-9_.]+."""
    controller, dot, parameter = s.partition(".")
    return (bool(dot) and bool(controller) and bool(parameter)
            and set(controller) <= _CONTROLLER_CHARS and set(parameter) <= _PARAMETER_CHARS)


def is_ifname(s: str) -> bool:
    """A network interface name: 1 to 15 characters (IFNAMSIZ - 1), no '/' and
    no whitespace."""
    return 0 < len(s) <= 15 and "/" not in s and not any(c.isspace() for c in s)


def hugepage_dir_kb(name: str) -> int | None:
    """The size in kB of a /sys/kernel/mm/hugepages entry ("hugepages-2048kB"
    -> 2048), None for any other name."""
    prefix, suffix = "hugepages-", "kB"
    if not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    number = name[len(prefix):len(name) - len(suffix)]
    return int(number) if _is_number(number) else None


# --- parsing -----------------------------------------------------------------------------

def _absent(value) -> bool:
    return value is None


def _int(value, at: str, lo: int, hi: int, what: str = "an integer") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"must be {what}, not {value!r}", at)
    if not lo <= value <= hi:
        raise ConfigError(f"{value} is out of range (want {what})", at)
    return value


def _bool(value, at: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, not {value!r}", at)
    return value


def _object(value, at: str, keys: tuple) -> dict:
    if not isinstance(value, dict):
        raise ConfigError("must be an object", at)
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise ConfigError(f"unknown field {unknown[0]!r}", at)
    return value


def _list(value, at: str) -> list:
    if not isinstance(value, list):
        raise ConfigError("must be a list", at)
    return value


def _bytes(value, at: str) -> int:
    """A memory amount: -1 (unlimited), 0 (not set) or a number of bytes."""
    return _int(value, at, -1, INT64_MAX, "-1 (unlimited), 0 (not set) or a number of bytes")


def parse(resources, where: str = "linux.resources", version: str | None = None) -> dict:
    """Validate linux.resources (minus devices) -> spec. With `version`, also
    refuse what that cgroup version cannot do (v1: unified; v2: swappiness,
    disableOOMKiller, useHierarchy false, realtime, leaf weights, network)."""
    if resources is None:
        return {}
    if not isinstance(resources, dict):
        raise ConfigError("must be an object", where)
    unknown = sorted(set(resources) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown field {unknown[0]!r}", where)
    spec: dict = {}
    for key, fn in (("memory", _parse_memory), ("cpu", _parse_cpu), ("pids", _parse_pids),
                    ("blockIO", _parse_blkio), ("hugepageLimits", _parse_hugepages),
                    ("network", _parse_network), ("rdma", _parse_rdma),
                    ("unified", _parse_unified)):
        value = resources.get(key)
        if _absent(value):
            continue
        parsed = fn(value, f"{where}.{key}")
        if parsed:
            spec[key] = parsed
    if version is not None:
        _refuse_unsupported(spec, where, version)
    return spec


def _parse_memory(m, at: str) -> dict:
    _object(m, at, MEMORY_KEYS)
    out: dict = {}
    for k in ("limit", "reservation", "swap", "kernel", "kernelTCP"):
        if not _absent(m.get(k)) and _bytes(m[k], f"{at}.{k}") != 0:
            out[k] = m[k]
    if not _absent(m.get("swappiness")):
        out["swappiness"] = _int(m["swappiness"], f"{at}.swappiness", 0, 100, "0 to 100")
    for k in ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate"):
        if not _absent(m.get(k)):
            out[k] = _bool(m[k], f"{at}.{k}")
    return out


def _parse_cpu(c, at: str) -> dict:
    _object(c, at, CPU_KEYS)
    out: dict = {}
    if not _absent(c.get("shares")) and _int(
            c["shares"], f"{at}.shares", 0, UINT64_MAX,
            f"0 (not set) or {CPU_SHARES_MIN} to {CPU_SHARES_MAX}") != 0:
        _int(c["shares"], f"{at}.shares", CPU_SHARES_MIN, CPU_SHARES_MAX,
             f"0 (not set) or {CPU_SHARES_MIN} to {CPU_SHARES_MAX}")
        out["shares"] = c["shares"]
    if not _absent(c.get("quota")):
        q = _int(c["quota"], f"{at}.quota", -1, INT64_MAX,
                 f"-1 (unlimited), 0 (not set) or at least {CFS_QUOTA_MIN} microseconds")
        if 0 < q < CFS_QUOTA_MIN:
            raise ConfigError(f"{q} is below the kernel's minimum quota of {CFS_QUOTA_MIN} "
                              "microseconds", f"{at}.quota")
        if q:
            out["quota"] = q
    if not _absent(c.get("period")):
        p = _int(c["period"], f"{at}.period", 0, UINT64_MAX,
                 f"0 (not set) or {CFS_PERIOD_MIN} to {CFS_PERIOD_MAX} microseconds")
        if p:
            _int(p, f"{at}.period", CFS_PERIOD_MIN, CFS_PERIOD_MAX,
                 f"0 (not set) or {CFS_PERIOD_MIN} to {CFS_PERIOD_MAX} microseconds")
            out["period"] = p
    if not _absent(c.get("burst")):
        out["burst"] = _int(c["burst"], f"{at}.burst", 0, UINT64_MAX, "microseconds (>= 0)")
    if not _absent(c.get("realtimeRuntime")) and _int(
            c["realtimeRuntime"], f"{at}.realtimeRuntime", -1, INT64_MAX,
            "-1 (unlimited), 0 (not set) or microseconds") != 0:
        out["realtimeRuntime"] = c["realtimeRuntime"]
    if not _absent(c.get("realtimePeriod")) and _int(
            c["realtimePeriod"], f"{at}.realtimePeriod", 0, UINT64_MAX,
            "0 (not set) or microseconds") != 0:
        out["realtimePeriod"] = c["realtimePeriod"]
    for k in ("cpus", "mems"):
        v = c.get(k)
        if _absent(v) or v == "":
            continue
        if not isinstance(v, str) or not is_cpu_list(v.strip()):
            raise ConfigError(f"{v!r} is not a list like \"0-3,7\"", f"{at}.{k}")
        for part in v.strip().split(","):
            lo, _, hi = part.partition("-")
            if hi and int(lo) > int(hi):
                raise ConfigError(f"{v!r}: range {part} is backwards", f"{at}.{k}")
        out[k] = v.strip()
    if not _absent(c.get("idle")):
        out["idle"] = _int(c["idle"], f"{at}.idle", 0, 1, "0 or 1")
    return out


def _parse_pids(p, at: str) -> dict:
    _object(p, at, ("limit",))
    if _absent(p.get("limit")):
        return {}
    return {"limit": _int(p["limit"], f"{at}.limit", -1, INT64_MAX,
                          "-1 (unlimited) or a number of tasks >= 0")}


def _weight(value, at: str) -> int:
    return _int(value, at, 0, BLKIO_WEIGHT_MAX,
                f"0 (not set) or {BLKIO_WEIGHT_MIN} to {BLKIO_WEIGHT_MAX}")


def _check_weight(w: int, at: str) -> int:
    if 0 < w < BLKIO_WEIGHT_MIN:
        raise ConfigError(f"{w} is out of range (want 0 (not set) or {BLKIO_WEIGHT_MIN} to "
                          f"{BLKIO_WEIGHT_MAX})", at)
    return w


def _device_numbers(d, at: str) -> tuple[int, int]:
    for k in ("major", "minor"):
        if _absent(d.get(k)):
            raise ConfigError("is required", f"{at}.{k}")
    return (_int(d["major"], f"{at}.major", 0, UINT32_MAX, "a device number >= 0"),
            _int(d["minor"], f"{at}.minor", 0, UINT32_MAX, "a device number >= 0"))


def _parse_blkio(b, at: str) -> dict:
    _object(b, at, BLKIO_KEYS)
    out: dict = {}
    for k in ("weight", "leafWeight"):
        if not _absent(b.get(k)) and _check_weight(_weight(b[k], f"{at}.{k}"), f"{at}.{k}"):
            out[k] = b[k]
    if not _absent(b.get("weightDevice")):
        entries = []
        for i, d in enumerate(_list(b["weightDevice"], f"{at}.weightDevice")):
            e = f"{at}.weightDevice[{i}]"
            _object(d, e, ("major", "minor", "weight", "leafWeight"))
            major, minor = _device_numbers(d, e)
            entry = {"major": major, "minor": minor}
            for k in ("weight", "leafWeight"):
                if not _absent(d.get(k)) and _check_weight(_weight(d[k], f"{e}.{k}"),
                                                           f"{e}.{k}"):
                    entry[k] = d[k]
            if len(entry) == 2:
                raise ConfigError("needs a non-zero weight or leafWeight", e)
            entries.append(entry)
        if entries:
            out["weightDevice"] = entries
    for k in THROTTLE_KEYS:
        if _absent(b.get(k)):
            continue
        entries = []
        for i, d in enumerate(_list(b[k], f"{at}.{k}")):
            e = f"{at}.{k}[{i}]"
            _object(d, e, ("major", "minor", "rate"))
            major, minor = _device_numbers(d, e)
            if _absent(d.get("rate")):
                raise ConfigError("is required", f"{e}.rate")
            rate = _int(d["rate"], f"{e}.rate", 0, UINT64_MAX, "a rate >= 0 (0: no limit)")
            entries.append({"major": major, "minor": minor, "rate": rate})
        if entries:
            out[k] = entries
    return out


def page_size_bytes(size: str) -> int:
    return int(size[:-2]) << {"K": 10, "M": 20, "G": 30}[size[-2]]


def _parse_hugepages(h, at: str) -> list:
    out = []
    seen = set()
    for i, d in enumerate(_list(h, at)):
        e = f"{at}[{i}]"
        _object(d, e, ("pageSize", "limit"))
        size = d.get("pageSize")
        if not isinstance(size, str) or not is_page_size(size):
            raise ConfigError(f"{size!r} is not a page size like \"2MB\" or \"1GB\"",
                              f"{e}.pageSize")
        if size in seen:
            raise ConfigError(f"page size {size} is listed twice", f"{e}.pageSize")
        seen.add(size)
        if _absent(d.get("limit")):
            raise ConfigError("is required", f"{e}.limit")
        out.append({"pageSize": size,
                    "limit": _int(d["limit"], f"{e}.limit", 0, UINT64_MAX, "bytes >= 0")})
    return out


def _parse_network(n, at: str) -> dict:
    _object(n, at, ("classID", "priorities"))
    out: dict = {}
    if not _absent(n.get("classID")) and _int(n["classID"], f"{at}.classID", 0, UINT32_MAX,
                                              "a 32-bit class id") != 0:
        out["classID"] = n["classID"]
    if not _absent(n.get("priorities")):
        prios = []
        for i, p in enumerate(_list(n["priorities"], f"{at}.priorities")):
            e = f"{at}.priorities[{i}]"
            _object(p, e, ("name", "priority"))
            name = p.get("name")
            if not isinstance(name, str) or not is_ifname(name):
                raise ConfigError(f"{name!r} is not a network interface name", f"{e}.name")
            if _absent(p.get("priority")):
                raise ConfigError("is required", f"{e}.priority")
            prios.append({"name": name, "priority": _int(p["priority"], f"{e}.priority", 0,
                                                         UINT32_MAX, "a 32-bit priority")})
        if prios:
            out["priorities"] = prios
    return out


def _parse_rdma(r, at: str) -> dict:
    if not isinstance(r, dict):
        raise ConfigError("must be an object of device name -> limits", at)
    out = {}
    for dev, limits in r.items():
        e = f"{at}.{dev}"
        if not dev or any(c.isspace() for c in dev) or "/" in dev:
            raise ConfigError(f"{dev!r} is not an RDMA device name", e)
        _object(limits, e, ("hcaHandles", "hcaObjects"))
        entry = {k: _int(limits[k], f"{e}.{k}", 0, UINT32_MAX, "a count >= 0")
                 for k in ("hcaHandles", "hcaObjects") if not _absent(limits.get(k))}
        if not entry:
            raise ConfigError("needs hcaHandles or hcaObjects", e)
        out[dev] = entry
    return out


def _parse_unified(u, at: str) -> dict:
    if not isinstance(u, dict):
        raise ConfigError("must be an object of cgroup v2 file name -> value", at)
    for k, v in u.items():
        if "/" in k or k in (".", "..") or not k:
            raise ConfigError(f"{k!r} must be a file name (no slashes)", at)
        if not is_unified_key(k):
            raise ConfigError(f"{k!r} must be in the form CONTROLLER.PARAMETER", at)
        if not isinstance(v, str):
            raise ConfigError(f"must be a string, not {v!r}", f"{at}.{k}")
    return dict(u)


def _refuse_unsupported(spec: dict, where: str, version: str) -> None:
    if version == "v1":
        if spec.get("unified"):
            raise ConfigError("invalid configuration: cannot use unified on cgroup v1",
                              f"{where}.unified")
        return
    m, c, b = spec.get("memory", {}), spec.get("cpu", {}), spec.get("blockIO", {})
    refusals = [
        ("swappiness" in m, "memory.swappiness", "cgroup v2 has no per-cgroup swappiness"),
        (m.get("disableOOMKiller") is True, "memory.disableOOMKiller",
         "cgroup v2 cannot disable the OOM killer (no memory.oom_control)"),
        (m.get("useHierarchy") is False, "memory.useHierarchy",
         "cgroup v2 memory accounting is always hierarchical"),
        ("realtimeRuntime" in c, "cpu.realtimeRuntime",
         "cgroup v2 has no realtime scheduling limits (cpu.rt_runtime_us)"),
        ("realtimePeriod" in c, "cpu.realtimePeriod",
         "cgroup v2 has no realtime scheduling limits (cpu.rt_period_us)"),
        ("leafWeight" in b, "blockIO.leafWeight", "cgroup v2 has no leaf weights"),
        (any("leafWeight" in d for d in b.get("weightDevice", [])), "blockIO.weightDevice",
         "cgroup v2 has no leaf weights (leafWeight)"),
        ("network" in spec, "network",
         "cgroup v2 has no net_cls/net_prio controllers (classID, priorities are v1 only)"),
    ]
    for refused, field, why in refusals:
        if refused:
            raise ConfigError(why, f"{where}.{field}")


# --- cross-field rules -----------------------------------------------------------------

def check(spec: dict, where: str = "linux.resources", version: str = "v1") -> None:
    """Rules between fields, on the effective values (for update: the persisted
    resources with the update merged in)."""
    m = spec.get("memory", {})
    limit, swap = m.get("limit", 0), m.get("swap", 0)
    if swap > 0:
        if limit <= 0:
            raise ConfigError("a swap limit (memory+swap) needs a memory limit",
                              f"{where}.memory.swap")
        if swap < limit:
            raise ConfigError(f"memory+swap limit {swap} must be >= the memory limit {limit}",
                              f"{where}.memory.swap")
    # Kernel memory: Linux >= 6.1 ignores writes to memory.kmem.limit_in_bytes
    # (and cgroup v2 has no separate kmem/tcp limit). Kernel memory is charged
    # to the memory limit, so a kernel limit >= the memory limit is already
    # enforced by it (the v1 documentation's "K >= U" case); a tighter one
    # cannot be, and is refused rather than silently ignored (runc only warns).
    for k, file in (("kernel", "memory.kmem.limit_in_bytes"),
                    ("kernelTCP", "memory.kmem.tcp.limit_in_bytes")):
        if k == "kernelTCP" and version == "v1":
            continue    # v1 still has a working tcp limit: written as asked
        value = m.get(k, 0)
        if value > 0 and (limit <= 0 or value < limit):
            raise ConfigError(
                f"a separate {'kernel' if k == 'kernel' else 'kernel TCP'} memory limit "
                f"({value}) below the memory limit ({limit if limit > 0 else 'unlimited'}) "
                f"cannot be enforced: this kernel has no working {file}"
                + (" on cgroup v2" if version == "v2" else ""), f"{where}.memory.{k}")
    c = spec.get("cpu", {})
    # a burst with an unlimited quota is taken (and kept for a later quota),
    # as by the kernel and runc 1.5; above the quota the kernel refuses it
    quota, burst = c.get("quota", 0), c.get("burst", 0)
    if quota > 0 and burst > quota:
        raise ConfigError(f"burst {burst} must not exceed the quota {quota}",
                          f"{where}.cpu.burst")
    if c.get("idle") == 1 and "shares" in c:
        raise ConfigError("shares cannot be set on an idle (idle: 1) cgroup: the kernel "
                          "gives idle cgroups the minimum weight", f"{where}.cpu.shares")


# --- host capabilities -------------------------------------------------------------------

def host_page_sizes(root: str = "/sys/kernel/mm/hugepages") -> list[str]:
    """Huge page sizes as cgroup files name them: hugepages-2048kB -> "2MB"."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    out = []
    for name in sorted(names):
        kb = hugepage_dir_kb(name)
        if kb is None:
            continue
        out.append(f"{kb >> 20}GB" if kb >= 1 << 20 else f"{kb >> 10}MB" if kb >= 1 << 10
                   else f"{kb}KB")
    return out


def needed_controllers(spec: dict, version: str) -> list[tuple[str, str]]:
    """[(controller, field)] the spec needs, in a stable order."""
    out: list[tuple[str, str]] = []
    if spec.get("memory"):
        out.append(("memory", "memory"))
    c = spec.get("cpu", {})
    if any(k in c for k in ("shares", "quota", "period", "burst", "realtimeRuntime",
                            "realtimePeriod", "idle")):
        out.append(("cpu", "cpu"))
    if "cpus" in c or "mems" in c:
        out.append(("cpuset", "cpu.cpus" if "cpus" in c else "cpu.mems"))
    if spec.get("pids"):
        out.append(("pids", "pids"))
    if spec.get("blockIO"):
        out.append(("blkio" if version == "v1" else "io", "blockIO"))
    if spec.get("hugepageLimits"):
        out.append(("hugetlb", "hugepageLimits"))
    n = spec.get("network", {})
    if "classID" in n:
        out.append(("net_cls", "network.classID"))
    if "priorities" in n:
        out.append(("net_prio", "network.priorities"))
    if spec.get("rdma"):
        out.append(("rdma", "rdma"))
    for key in spec.get("unified", {}):
        ctrl = key.split(".", 1)[0]
        if ctrl != "cgroup":
            out.append((ctrl, f"unified.{key}"))
    return out


def check_host(spec: dict, where: str, version: str, available, page_sizes=None) -> None:
    """Every controller the spec needs is mounted (v1) / available to the
    cgroup (v2), and every huge page size exists. ConfigError otherwise."""
    for ctrl, field in needed_controllers(spec, version):
        if ctrl not in available:
            how = ("is not mounted on this host" if version == "v1"
                   else "is not available (not in the parent's cgroup.controllers)")
            raise ConfigError(f"needs the {ctrl} cgroup controller, which {how}",
                              f"{where}.{field}")
    if spec.get("hugepageLimits"):
        sizes = host_page_sizes() if page_sizes is None else page_sizes
        for i, h in enumerate(spec["hugepageLimits"]):
            if h["pageSize"] not in sizes:
                raise ConfigError(f"huge page size {h['pageSize']} is not supported by this "
                                  f"kernel (has: {', '.join(sizes) or 'none'})",
                                  f"{where}.hugepageLimits[{i}].pageSize")


def block_devices(spec: dict) -> list[tuple[int, int, str]]:
    """[(major, minor, field)] of the block devices blockIO names."""
    b = spec.get("blockIO", {})
    out = []
    for key in ("weightDevice",) + THROTTLE_KEYS:
        for i, d in enumerate(b.get(key, [])):
            out.append((d["major"], d["minor"], f"blockIO.{key}[{i}]"))
    return out


def check_block_devices(spec: dict, where: str, sysfs: str = "/sys/dev/block") -> None:
    """The kernel refuses limits for devices it does not have (ENODEV)."""
    if not os.path.isdir(sysfs):
        return
    for major, minor, field in block_devices(spec):
        if not os.path.exists(os.path.join(sysfs, f"{major}:{minor}")):
            raise ConfigError(f"block device {major}:{minor} does not exist on this host",
                              f"{where}.{field}")


# --- merging (update) ----------------------------------------------------------------------

def merge(old: dict, new: dict) -> dict:
    """OCI resources `old` with the spec `new` laid over it (what update persists):
    scalars replace, device lists merge per major:minor, huge pages per size,
    rdma per device, unified per key, network priorities per interface."""
    import copy
    out = copy.deepcopy(old) if isinstance(old, dict) else {}
    for section, value in new.items():
        if section == "hugepageLimits":
            by = {h.get("pageSize"): h for h in out.get(section) or []}
            for h in value:
                by[h["pageSize"]] = dict(h)
            out[section] = list(by.values())
            continue
        if section in ("rdma", "unified"):
            cur = dict(out.get(section) or {})
            cur.update(copy.deepcopy(value))
            out[section] = cur
            continue
        cur = dict(out.get(section) or {})
        for k, v in value.items():
            if isinstance(v, list):
                key = ("name",) if k == "priorities" else ("major", "minor")
                by = {tuple(d.get(x) for x in key): d for d in cur.get(k) or []}
                for d in v:
                    by[tuple(d[x] for x in key)] = dict(d)
                cur[k] = list(by.values())
            else:
                cur[k] = v
        out[section] = cur
    return out


def rdma_lines(spec: dict) -> list[tuple[str, str]]:
    """[(device, rdma.max line)] of the spec's rdma limits (v1 and v2 alike)."""
    out = []
    for dev, limits in spec.get("rdma", {}).items():
        line = dev
        if "hcaHandles" in limits:
            line += f" hca_handle={limits['hcaHandles']}"
        if "hcaObjects" in limits:
            line += f" hca_object={limits['hcaObjects']}"
        out.append((dev, line))
    return out


def pids_max(limit: int) -> str:
    """pids.max for linux.resources.pids.limit, as runc 1.5 writes it: -1 is
    "max" (runc takes any negative number so; parse() refuses below -1), and
    0 (runtime-spec 1.3: "a valid limit value") is 1, since systemd's TasksMax
    cannot be 0 and runc keeps its drivers alike: with init alone in the
    cgroup, 1 forbids any fork as 0 would. The systemd driver's TasksMax
    takes the same number."""
    return "max" if limit < 0 else str(limit or 1)


# --- v1 -> v2 conversions (fs2 and the systemd driver) ----------------------------------

def cpu_shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000] (runc)."""
    return 0 if shares == 0 else 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """v1 blkio weight [10, 1000] -> v2 io.weight [1, 10000] (runc)."""
    return 0 if weight == 0 else 1 + ((weight - 10) * 9999) // 990


def swap_to_v2(swap: int, limit: int) -> str | None:
    """OCI memory.swap is memory+swap (v1's memsw); v2 memory.swap.max is swap
    alone: swap - limit. None = leave memory.swap.max alone (runc's
    ConvertMemorySwapToCgroupV2Value; check() already refused the bad pairs)."""
    if limit == -1 and swap == 0:
        return "max"            # "unlimited memory" means unlimited swap too
    if swap == -1:
        return "max"
    if swap == 0:
        return None
    return str(swap - limit)
