"""The cgroup-backed operations on an existing container: pause, resume,
update, ps, events (runc 1.1.5's pause.go, update.go, ps.go, events.go).
pyrunc/cli/cgroup_commands.py is the thin CLI over these; the Python API is the same:

    from pyrunc.container import Container
    from pyrunc.container import cgroup_ops
    c = Container.load("demo")
    cgroup_ops.update(c, {"memory": {"limit": 100 << 20}, "pids": {"limit": 50}})
    cgroup_ops.pause(c); cgroup_ops.resume(c)
    cgroup_ops.processes(c)          # [pid, ...]
    cgroup_ops.stats(c)              # runc's events "data" object
"""
from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import time

from pyrunc.container import state as st
from pyrunc.errors import ConfigError, ContainerNotRunning, InvalidState, PyruncError

WHERE = "linux.resources"


class _Locked:
    """Hold the container's state-dir lock and work on a fresh copy of its state."""

    def __init__(self, container):
        self.container = container

    def __enter__(self):
        self.container._dir.lock()
        try:
            self.container.state = self.container._dir.load()
        except BaseException:
            self.container._dir.unlock()
            raise
        return self.container

    def __exit__(self, *exc):
        self.container._dir.unlock()
        return False


def _cgroup(container):
    cgroup = container._cgroup()
    if cgroup is None:
        raise PyruncError(f"container {container.id} has no cgroup")
    return cgroup


# --- pause / resume ---------------------------------------------------------------

def pause(container) -> None:
    """Freeze every process (v1 freezer.state, v2 cgroup.freeze). Allowed from
    created and running, like runc; anything else is "container not running"."""
    with _Locked(container) as c:
        if c.status() not in (st.CREATED, st.RUNNING):
            raise ContainerNotRunning()
        cgroup = c._cgroup()
        if cgroup is None:
            raise PyruncError("cannot toggle freezer: cgroups not configured for container")
        cgroup.freeze()


def resume(container) -> None:
    with _Locked(container) as c:
        if c.status() != st.PAUSED:
            raise InvalidState("container not paused")
        _cgroup(c).thaw()


# --- update -------------------------------------------------------------------------

def update(container, resources: dict) -> None:
    """Apply a LinuxResources change to a created/running/paused container and
    persist the merged result in state.json (config.linux.resources).

    Fields left out, or 0 where runc reads 0 as "not set" (see
    pyrunc.cgroups.resources), stay as they are. Everything is validated
    before the first write (nothing changes on bad input); if the kernel then
    refuses a write, the single-value files already written are put back.
    `devices`, when given, replaces the device rules (runc 1.1 ignores them
    in update; pyrunc applies them exactly like create, defaults included)."""
    from pyrunc.cgroups import resources as res
    from pyrunc.cgroups.manager import CgroupManager
    if not isinstance(resources, dict):
        raise ConfigError("must be an object", WHERE)
    with _Locked(container) as c:
        if c.status() == st.STOPPED:
            raise ContainerNotRunning()
        cgroup = _cgroup(c)
        version = cgroup.version
        linux = c.state.config.setdefault("linux", {})
        old = linux.get("resources") or {}
        change = {k: v for k, v in resources.items() if k != "devices"}
        mem = change.get("memory")
        if isinstance(mem, dict) and mem.get("limit") == -1 and mem.get("swap") in (None, 0):
            # runc: unlimited memory with swap not given means unlimited swap too
            change["memory"] = dict(mem, swap=-1)
        spec = res.parse(change, WHERE, version)
        merged = res.merge({k: v for k, v in old.items() if k != "devices"}, spec)
        effective = res.parse(merged, WHERE, version)
        res.check(effective, WHERE, version)
        cgroup.check_host(spec, WHERE)
        rules = None
        if resources.get("devices") is not None:
            rules = CgroupManager.container_device_rules(
                dict(c.state.config.get("linux") or {}, resources=resources), f"{WHERE}.devices")
        cgroup.apply_resources(spec, context=effective, rollback=True)
        if rules is not None:
            cgroup.apply_devices(rules)
            merged["devices"] = resources["devices"]
        elif "devices" in old:
            merged["devices"] = old["devices"]
        linux["resources"] = merged
        c._dir.save(c.state)


_SIZE = re.compile(r"^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")


def ram_in_bytes(value: str) -> int:
    """docker/go-units RAMInBytes, as runc's update flags parse memory: "100m",
    "1g", "512KiB", "1.5g" (binary multiples); runc passes "-1" through."""
    if value == "-1":
        return -1
    m = _SIZE.match(value)
    if not m:
        raise ValueError(f"invalid size: '{value}'")
    size = float(m.group(1))
    unit = (m.group(3) or "").lower()
    if unit:
        size *= 1024 ** ("kmgtp".index(unit) + 1)
    return int(size)


def resources_from_flags(*, memory=None, memory_reservation=None, memory_swap=None,
                         kernel_memory=None, kernel_memory_tcp=None, cpu_burst=None,
                         cpu_period=None,
                         cpu_quota=None, cpu_share=None, cpu_rt_period=None,
                         cpu_rt_runtime=None, cpuset_cpus=None, cpuset_mems=None,
                         blkio_weight=None, pids_limit=None) -> dict:
    """runc update's individual flags -> LinuxResources (only the given ones)."""
    r: dict = {}

    def put(section, key, value):
        r.setdefault(section, {})[key] = value

    for flag, key, value in (("memory", "limit", memory),
                             ("memory-reservation", "reservation", memory_reservation),
                             ("memory-swap", "swap", memory_swap),
                             ("kernel-memory", "kernel", kernel_memory),
                             ("kernel-memory-tcp", "kernelTCP", kernel_memory_tcp)):
        if value:
            try:
                put("memory", key, ram_in_bytes(value))
            except ValueError as e:
                raise PyruncError(f"invalid value for {flag}: {e}") from None
    for flag, key, value, signed in (("cpu-burst", "burst", cpu_burst, False),
                                     ("cpu-period", "period", cpu_period, False),
                                     ("cpu-rt-period", "realtimePeriod", cpu_rt_period, False),
                                     ("cpu-share", "shares", cpu_share, False),
                                     ("cpu-quota", "quota", cpu_quota, True),
                                     ("cpu-rt-runtime", "realtimeRuntime", cpu_rt_runtime, True)):
        if value:
            if not re.fullmatch(r"-?\d+" if signed else r"\d+", value):
                kind = "ParseInt" if signed else "ParseUint"
                raise PyruncError(f"invalid value for {flag}: strconv.{kind}: parsing "
                                  f"{json.dumps(value)}: invalid syntax")
            put("cpu", key, int(value))
    if cpuset_cpus:
        put("cpu", "cpus", cpuset_cpus)
    if cpuset_mems:
        put("cpu", "mems", cpuset_mems)
    if blkio_weight:
        put("blockIO", "weight", blkio_weight)
    if pids_limit is not None:
        put("pids", "limit", pids_limit)
    return r


def load_resources(source: str) -> dict:
    """-r FILE | - : a LinuxResources JSON object."""
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source) as f:
                text = f.read()
    except OSError as e:
        raise PyruncError(f"open {source}: {(e.strerror or str(e)).lower()}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        name = "standard input" if source == "-" else source
        raise PyruncError(f"invalid JSON in {name}: {e.msg} (line {e.lineno} column "
                          f"{e.colno})") from None
    if not isinstance(doc, dict):
        raise ConfigError("must be a JSON object (LinuxResources)", WHERE)
    return doc


# --- ps -------------------------------------------------------------------------------------

def processes(container) -> list[int]:
    """Every pid in the container's cgroup tree ([] once it is gone), runc's
    Container.Processes()."""
    cgroup = container._cgroup()
    return cgroup.all_processes() if cgroup is not None else []


def _ps_binary() -> str:
    found = shutil.which("ps")
    if found:
        return found
    for path in ("/bin/ps", "/usr/bin/ps"):     # callers may run us without PATH
        if os.access(path, os.X_OK):
            return path
    raise PyruncError('exec: "ps": executable file not found in $PATH')


def ps_table(pids: list[int], ps_args: list[str] | tuple = ()) -> str:
    """`ps <args>` (default -ef), keeping the header and the lines whose PID
    column is one of pids (runc's ps.go)."""
    proc = subprocess.run([_ps_binary(), *(ps_args or ["-ef"])], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    output = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise PyruncError(f"exit status {proc.returncode}: {output.strip()}")
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise PyruncError("couldn't find PID field in ps output")
    index = titles.index("PID")
    wanted = set(pids)
    out = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        try:
            pid = int(fields[index])
        except (IndexError, ValueError):
            raise PyruncError(f"unable to parse pid: {line!r}") from None
        if pid in wanted:
            out.append(line)
    return "\n".join(out) + "\n"


# --- events ---------------------------------------------------------------------------------

CHECK_EVERY = 1.0      # seconds between checks that the container still runs (events)
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                   "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """A Go time.Duration ("5s", "1m30s", "500ms", "1.5h") in seconds."""
    s = text.strip()
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            if re.fullmatch(r"[\d.]+", s[pos:]):
                raise ValueError(f'time: missing unit in duration "{text}"')
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def stats(container) -> dict:
    return _cgroup(container).stats()


def _line(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n"


def events(container, interval: float = 5.0, stats_only: bool = False, out=None) -> None:
    """JSON lines: {"type":"stats","id":ID,"data":{...}} every `interval`
    seconds (the first one after one interval, as runc's ticker) and
    {"type":"oom","id":ID} when the kernel reports an OOM in the container's
    memory cgroup. Ends when the container's cgroup is gone or empty (its
    processes all exited). stats_only: one stats line, then return."""
    out = out or sys.stdout
    if interval <= 0:
        raise PyruncError("duration interval must be greater than 0")
    if container.status() == st.STOPPED:
        raise PyruncError(f"container with id {container.id} is not running")
    cgroup = _cgroup(container)

    def emit(obj) -> None:
        out.write(_line(obj))
        out.flush()

    if stats_only:
        emit({"type": "stats", "id": container.id, "data": cgroup.stats()})
        return
    from pyrunc import log
    watcher = cgroup.oom_watcher()
    pidfd = -1
    try:
        poller = select.poll()
        poller.register(watcher.fileno(), watcher.poll_mask())
        try:
            pidfd = os.pidfd_open(container.pid)       # readable once init exits
            poller.register(pidfd, select.POLLIN)
        except OSError:
            pass
        next_tick = time.monotonic() + interval
        while True:
            # wake at least every CHECK_EVERY s to notice the cgroup emptying
            timeout = min(CHECK_EVERY, max(0.0, next_tick - time.monotonic()))
            ready = {fd for fd, _ in poller.poll(int(timeout * 1000) + 1)}
            if pidfd in ready:
                poller.unregister(pidfd)
            if watcher.fileno() in ready and watcher.read():
                emit({"type": "oom", "id": container.id})
            if watcher.gone or _finished(container, cgroup):
                if watcher.read():
                    emit({"type": "oom", "id": container.id})
                return
            now = time.monotonic()
            if now >= next_tick:
                try:
                    emit({"type": "stats", "id": container.id, "data": cgroup.stats()})
                except PyruncError as e:
                    log.error(str(e))
                next_tick += interval
                if next_tick < now:
                    next_tick = now + interval
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")   # the reader left: stop quietly
        except OSError:
            pass
    finally:
        watcher.close()
        if pidfd >= 0:
            os.close(pidfd)


def _finished(container, cgroup) -> bool:
    if not os.path.isdir(cgroup.path):
        return True
    return not container.state.init_alive() and not cgroup.all_processes()


def update_intel_rdt(container, l3_cache_schema: str, mem_bw_schema: str) -> None:
    """`update --l3-cache-schema/--mem-bw-schema` (runc's rules): the group's
    schemata file is rewritten; the saved config follows with the next save."""
    from pyrunc.cgroups import resctrl
    rdt = (container.state.config.get("linux") or {}).get("intelRdt")
    resctrl.update_schemata(container.state.intel_rdt, rdt, l3_cache_schema, mem_bw_schema)
    if l3_cache_schema:
        rdt["l3CacheSchema"] = l3_cache_schema
    if mem_bw_schema:
        rdt["memBwSchema"] = mem_bw_schema
