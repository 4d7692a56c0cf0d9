"""Container statistics and OOM notifications for `events`, in the shape runc
1.1.5 prints (types/events.go: Go structs, so key order and omitempty rules
are reproduced here: a struct is always printed, a zero number or empty
list/map with omitempty is not, maps print with sorted keys).

    collect(version, paths) -> dict          the "data" of a stats event
    OOMWatcher(version, paths)               fileno() to poll; read() -> new OOM count
"""
from __future__ import annotations

import errno
import os

from .common import CgroupError, write_file

UINT64_MAX = (1 << 64) - 1
CLOCK_TICKS = 100        # runc's clockTicks: cpuacct.stat is in USER_HZ


def _read(d: str | None, name: str) -> str | None:
    if not d:
        return None
    try:
        with open(os.path.join(d, name)) as f:
            return f.read()
    except OSError:
        return None


def _uint(text: str | None) -> int:
    """runc's GetCgroupParamUint: "max" -> MaxUint64; negative -> 0."""
    if text is None:
        return 0
    text = text.strip()
    if text == "max":
        return UINT64_MAX
    try:
        return max(0, int(text))
    except ValueError:
        return 0


def _kv(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def _omit(d: dict, *keys: str) -> dict:
    """Drop the omitempty keys whose value is zero/empty."""
    return {k: v for k, v in d.items() if not (k in keys and not v)}


def _cpu_list(text: str | None) -> list[int]:
    out: list[int] = []
    for part in (text or "").strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            return []
    return out


def _memory_entry(limit=0, usage=0, peak=0, failcnt=0) -> dict:
    return _omit({"limit": limit, "usage": usage, "max": peak, "failcnt": failcnt},
                 "usage", "max")


def _usage(total=0, percpu=(), percpu_kernel=(), percpu_user=(), kernel=0, user=0) -> dict:
    return _omit({"total": total, "percpu": list(percpu), "percpu_kernel": list(percpu_kernel),
                  "percpu_user": list(percpu_user), "kernel": kernel, "user": user},
                 "total", "percpu", "percpu_kernel", "percpu_user")


def _throttling(periods=0, throttled=0, time_ns=0) -> dict:
    return _omit({"periods": periods, "throttledPeriods": throttled, "throttledTime": time_ns},
                 "periods", "throttledPeriods", "throttledTime")


def _cpuset(cpus=(), mems=(), **values) -> dict:
    d = {"cpus": list(cpus), "cpu_exclusive": 0, "mems": list(mems), "mem_hardwall": 0,
         "mem_exclusive": 0, "memory_migrate": 0, "memory_spread_page": 0,
         "memory_spread_slab": 0, "memory_pressure": 0, "sched_load_balance": 0,
         "sched_relax_domain_level": 0}
    d.update(values)
    return _omit(d, "cpus", "mems")


def _blkio(tables: dict[str, list]) -> dict:
    order = ("ioServiceBytesRecursive", "ioServicedRecursive", "ioQueueRecursive",
             "ioServiceTimeRecursive", "ioWaitTimeRecursive", "ioMergedRecursive",
             "ioTimeRecursive", "sectorsRecursive")
    return {k: [_omit(e, "major", "minor", "op", "value") for e in tables[k]]
            for k in order if tables.get(k)}


def _stats(cpu, cpuset, memory, pids, blkio, hugetlb) -> dict:
    return {"cpu": cpu, "cpuset": cpuset, "memory": memory, "pids": pids, "blkio": blkio,
            "hugetlb": dict(sorted(hugetlb.items())), "intel_rdt": {},
            "network_interfaces": None}


def collect(version: str, paths: dict[str, str], page_sizes=None) -> dict:
    """The stats of a container's cgroup(s); CgroupError if it is gone."""
    primary = paths.get("" if version == "v2" else "devices")
    if not primary or not os.path.isdir(primary):
        raise CgroupError(f"unable to get container cgroup stats: cgroup {primary} does "
                          "not exist")
    from .resources import host_page_sizes
    sizes = host_page_sizes() if page_sizes is None else page_sizes
    return collect_v2(primary, sizes) if version == "v2" else collect_v1(paths, sizes)


# --- v1 -------------------------------------------------------------------------------------

def collect_v1(paths: dict[str, str], page_sizes: list[str]) -> dict:
    cpu_d, acct, cs = paths.get("cpu"), paths.get("cpuacct"), paths.get("cpuset")
    st = _kv(_read(cpu_d, "cpu.stat"))
    throttling = _throttling(st.get("nr_periods", 0), st.get("nr_throttled", 0),
                             st.get("throttled_time", 0))
    usage = _usage()
    if acct and os.path.isdir(acct):
        brk = _kv(_read(acct, "cpuacct.stat"))
        percpu = [int(x) for x in (_read(acct, "cpuacct.usage_percpu") or "").split()]
        pk, pu = [], []
        for line in (_read(acct, "cpuacct.usage_all") or "").splitlines()[1:]:
            f = line.split(" ")
            if len(f) == 3:
                pk.append(int(f[2]))
                pu.append(int(f[1]))
        usage = _usage(_uint(_read(acct, "cpuacct.usage")), percpu, pk, pu,
                       brk.get("system", 0) * 10**9 // CLOCK_TICKS,
                       brk.get("user", 0) * 10**9 // CLOCK_TICKS)
    cpuset = _cpuset()
    if cs and os.path.isdir(cs):
        def n(name):
            return _uint(_read(cs, "cpuset." + name))
        relax = (_read(cs, "cpuset.sched_relax_domain_level") or "0").strip()
        cpuset = _cpuset(_cpu_list(_read(cs, "cpuset.cpus")), _cpu_list(_read(cs, "cpuset.mems")),
                         cpu_exclusive=n("cpu_exclusive"), mem_hardwall=n("mem_hardwall"),
                         mem_exclusive=n("mem_exclusive"), memory_migrate=n("memory_migrate"),
                         memory_spread_page=n("memory_spread_page"),
                         memory_spread_slab=n("memory_spread_slab"),
                         memory_pressure=n("memory_pressure"),
                         sched_load_balance=n("sched_load_balance"),
                         sched_relax_domain_level=int(relax) if relax.lstrip("-").isdigit()
                         else 0)
    memory = _memory_v1(paths.get("memory"))
    pids_d = paths.get("pids")
    limit = _uint(_read(pids_d, "pids.max"))
    pids = _omit({"current": _uint(_read(pids_d, "pids.current")),
                  "limit": 0 if limit == UINT64_MAX else limit}, "current", "limit")
    hugetlb = {}
    h = paths.get("hugetlb")
    if h and os.path.isdir(h):
        for size in page_sizes:
            p = f"hugetlb.{size}."
            hugetlb[size] = _omit({"usage": _uint(_read(h, p + "usage_in_bytes")),
                                   "max": _uint(_read(h, p + "max_usage_in_bytes")),
                                   "failcnt": _uint(_read(h, p + "failcnt"))}, "usage", "max")
    return _stats({"usage": usage, "throttling": throttling}, cpuset, memory, pids,
                  _blkio_v1(paths.get("blkio")), hugetlb)


def _memory_v1(d: str | None) -> dict:
    if not d or not os.path.isdir(d):
        return {"usage": _memory_entry(), "swap": _memory_entry(), "kernel": _memory_entry(),
                "kernelTCP": _memory_entry()}
    raw = _kv(_read(d, "memory.stat"))

    def entry(prefix: str) -> dict:
        usage = _read(d, prefix + "usage_in_bytes")
        if usage is None:
            return _memory_entry()
        return _memory_entry(_uint(_read(d, prefix + "limit_in_bytes")), _uint(usage),
                             _uint(_read(d, prefix + "max_usage_in_bytes")),
                             _uint(_read(d, prefix + "failcnt")))
    return _omit({"cache": raw.get("cache", 0), "usage": entry("memory."),
                  "swap": entry("memory.memsw."), "kernel": entry("memory.kmem."),
                  "kernelTCP": entry("memory.kmem.tcp."), "raw": dict(sorted(raw.items()))},
                 "cache", "raw")


def _blkio_lines(text: str | None) -> list[dict] | None:
    if text is None:
        return None
    out = []
    for line in text.splitlines():
        f = line.replace(":", " ").split()
        if len(f) < 3:
            continue
        try:
            if len(f) == 4:
                out.append({"major": int(f[0]), "minor": int(f[1]), "op": f[2],
                            "value": int(f[3])})
            else:
                out.append({"major": int(f[0]), "minor": int(f[1]), "op": "",
                            "value": int(f[2])})
        except ValueError:
            continue
    return out


def _blkio_v1(d: str | None) -> dict:
    """runc's order of preference: BFQ debug, BFQ, CFQ, throttle recursive,
    throttle; the first group whose first file exists (and is non-empty) wins."""
    if not d or not os.path.isdir(d):
        return {}
    groups = [
        [("blkio.bfq.sectors_recursive", "sectorsRecursive"),
         ("blkio.bfq.io_service_time_recursive", "ioServiceTimeRecursive"),
         ("blkio.bfq.io_wait_time_recursive", "ioWaitTimeRecursive"),
         ("blkio.bfq.io_merged_recursive", "ioMergedRecursive"),
         ("blkio.bfq.io_queued_recursive", "ioQueueRecursive"),
         ("blkio.bfq.time_recursive", "ioTimeRecursive"),
         ("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
         ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive")],
        [("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
         ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive")],
        [("blkio.sectors_recursive", "sectorsRecursive"),
         ("blkio.io_service_time_recursive", "ioServiceTimeRecursive"),
         ("blkio.io_wait_time_recursive", "ioWaitTimeRecursive"),
         ("blkio.io_merged_recursive", "ioMergedRecursive"),
         ("blkio.io_queued_recursive", "ioQueueRecursive"),
         ("blkio.time_recursive", "ioTimeRecursive"),
         ("blkio.io_serviced_recursive", "ioServicedRecursive"),
         ("blkio.io_service_bytes_recursive", "ioServiceBytesRecursive")],
        [("blkio.throttle.io_serviced_recursive", "ioServicedRecursive"),
         ("blkio.throttle.io_service_bytes_recursive", "ioServiceBytesRecursive")],
        [("blkio.throttle.io_serviced", "ioServicedRecursive"),
         ("blkio.throttle.io_service_bytes", "ioServiceBytesRecursive")],
    ]
    for group in groups:
        tables: dict[str, list] = {}
        for i, (name, key) in enumerate(group):
            entries = _blkio_lines(_read(d, name))
            if not entries:
                if i == 0:
                    break
                return _blkio(tables)
            tables[key] = entries
        else:
            return _blkio(tables)
    return {}


# --- v2 --------------------------------------------------------------------------------------

def collect_v2(d: str, page_sizes: list[str]) -> dict:
    current = _read(d, "pids.current")
    if current is not None:
        limit = _uint(_read(d, "pids.max"))
        pids = {"current": _uint(current), "limit": 0 if limit == UINT64_MAX else limit}
    else:
        pids = {"current": len((_read(d, "cgroup.procs") or "").split()), "limit": 0}
    pids = _omit(pids, "current", "limit")
    memory = {"usage": _memory_entry(), "swap": _memory_entry(), "kernel": _memory_entry(),
              "kernelTCP": _memory_entry()}
    stat = _read(d, "memory.stat")
    if stat is not None:
        raw = _kv(stat)
        mem_usage, mem_limit = _uint(_read(d, "memory.current")), _uint(_read(d, "memory.max"))
        swap = _memory_entry()
        if _read(d, "memory.swap.current") is not None:
            # v1 reports memory+swap: so does runc on v2
            s_limit = _uint(_read(d, "memory.swap.max"))
            if s_limit != UINT64_MAX:
                s_limit = min(UINT64_MAX, s_limit + mem_limit)
            swap = _memory_entry(s_limit, _uint(_read(d, "memory.swap.current")) + mem_usage)
        memory = _omit({"cache": raw.get("file", 0), "usage": _memory_entry(mem_limit, mem_usage),
                        "swap": swap, "kernel": _memory_entry(), "kernelTCP": _memory_entry(),
                        "raw": dict(sorted(raw.items()))}, "cache", "raw")
    tables: dict[str, list] = {"ioServiceBytesRecursive": [], "ioServicedRecursive": []}
    for line in (_read(d, "io.stat") or "").splitlines():
        f = line.split()
        if not f or ":" not in f[0]:
            continue
        major, _, minor = f[0].partition(":")
        for item in f[1:]:
            op, _, value = item.partition("=")
            key = {"rbytes": ("Read", "ioServiceBytesRecursive"),
                   "wbytes": ("Write", "ioServiceBytesRecursive"),
                   "rios": ("Read", "ioServicedRecursive"),
                   "wios": ("Write", "ioServicedRecursive")}.get(op)
            if key and value.isdigit():
                tables[key[1]].append({"major": int(major), "minor": int(minor), "op": key[0],
                                       "value": int(value)})
    st = _kv(_read(d, "cpu.stat"))
    cpu = {"usage": _usage(st.get("usage_usec", 0) * 1000, kernel=st.get("system_usec", 0) * 1000,
                           user=st.get("user_usec", 0) * 1000),
           "throttling": _throttling(st.get("nr_periods", 0), st.get("nr_throttled", 0),
                                     st.get("throttled_usec", 0) * 1000)}
    hugetlb = {}
    if _read(d, "cgroup.controllers") and "hugetlb" in _read(d, "cgroup.controllers").split():
        for size in page_sizes:
            hugetlb[size] = _omit({"usage": _uint(_read(d, f"hugetlb.{size}.current")),
                                   "failcnt": _kv(_read(d, f"hugetlb.{size}.events")).get("max",
                                                                                         0)},
                                  "usage")
    return _stats(cpu, _cpuset(), memory, pids, _blkio(tables), hugetlb)


# --- OOM notifications ---------------------------------------------------------------------------

class OOMWatcher:
    """Readable (poll POLLIN/POLLPRI on fileno()) when the kernel reports an OOM
    in the container's memory cgroup.

    v1: an eventfd registered on memory.oom_control through cgroup.event_control
    (runc's notifyOnOOM); the kernel also signals it when the cgroup is removed.
    v2: memory.events itself (kernfs files wake pollers with POLLPRI when they
    change); an OOM is a rise of its oom_kill counter."""

    def __init__(self, version: str, paths: dict[str, str]):
        self.version = version
        self.fd = -1
        self._aux = -1
        self.gone = False
        if version == "v2":
            self.dir = paths[""]
            path = os.path.join(self.dir, "memory.events")
            try:
                self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise CgroupError(f"cannot watch {path} for OOM events: {e.strerror}") from e
            self.count = self._oom_kills()
            return
        self.dir = paths.get("memory")
        if not self.dir:
            raise CgroupError("cannot watch for OOM events: the memory cgroup hierarchy is "
                              "not mounted")
        control = os.path.join(self.dir, "memory.oom_control")
        try:
            self._aux = os.open(control, os.O_RDONLY | os.O_CLOEXEC)
            self.fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            write_file(self.dir, "cgroup.event_control", f"{self.fd} {self._aux}")
        except (OSError, CgroupError) as e:
            self.close()
            raise CgroupError(f"cannot watch {control} for OOM events: "
                              f"{getattr(e, 'strerror', None) or e}") from e

    def fileno(self) -> int:
        return self.fd

    def poll_mask(self) -> int:
        import select
        return select.POLLIN if self.version == "v1" else select.POLLPRI | select.POLLERR

    def _oom_kills(self) -> int:
        try:
            os.lseek(self.fd, 0, os.SEEK_SET)
            data = os.read(self.fd, 4096).decode()
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                self.gone = True
            return getattr(self, "count", 0)
        return _kv(data).get("oom_kill", 0)

    def read(self) -> int:
        """1 if the kernel reported OOM since the last call, else 0 (like runc,
        one event per notification, however many kills it stands for)."""
        if self.version == "v2":
            now = self._oom_kills()
            new, self.count = now > self.count, max(now, self.count)
            if not os.path.isdir(self.dir):
                self.gone = True
            return int(new)
        try:
            n = int.from_bytes(os.read(self.fd, 8), "little")
        except BlockingIOError:
            return 0
        # the kernel signals the eventfd when the cgroup is removed, too
        if not os.path.exists(os.path.join(self.dir, "cgroup.event_control")):
            self.gone = True
            return 0
        return int(n > 0)

    def close(self) -> None:
        for fd in (self.fd, self._aux):
            if fd >= 0:
                os.close(fd)
        self.fd = self._aux = -1
