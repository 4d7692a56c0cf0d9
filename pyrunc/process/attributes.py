"""Per-process kernel attributes: process.scheduler, process.ioPriority,
process.execCPUAffinity, linux.personality and linux.memoryPolicy.

Parsed and checked in the host before fork (runc's specconv + validator
rules), applied where runc applies them: the scheduler, I/O priority,
personality and memory policy by the container process itself after
no_new_privs and before seccomp (standard_init_linux.go, setns_init_linux.go);
the CPU affinity by the host around the move into the container's cgroup
(process_linux.go). execCPUAffinity is for exec'd processes only (the spec:
"not applicable to the container's init process"); every process the runtime
starts otherwise gets all CPUs its cpuset allows, not the runtime's own pin.
"""
import os

from pyrunc import log, native
from pyrunc.errors import ConfigError, ContainerStartError
from pyrunc.lean.record import record

SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
              "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_STATIC_NODES": 1 << 15}
_NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
_SOME_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE")
_MAX_CPU = 1024  # runc's unix.CPUSet


@record
class Scheduler:
    policy: int
    flags: int
    nice: int
    priority: int
    runtime: int
    deadline: int
    period: int


@record
class Attributes:
    scheduler: Scheduler | None = None
    io_priority: int | None = None        # ioprio value: class << 13 | level
    personality: int | None = None
    memory_policy: tuple | None = None    # (mode | flags, [nodes])
    affinity_initial: list | None = None  # exec only (execCPUAffinity)
    affinity_final: list | None = None


# --- parsing (host, before fork) ------------------------------------------------------

def parse_cpu_list(text: str, where: str, what: str = "CPUs") -> list[int] | None:
    """runc's ToCPUSet: "0-3,7"; spaces and empty items allowed; "" is no set."""
    if not text:
        return None
    members = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        lo, dash, hi = item.partition("-")
        first, last = _cpu_number(lo, where, what), _cpu_number(hi if dash else lo, where, what)
        if first > last:
            raise ConfigError(f"invalid range {item!r}", where)
        members.update(range(first, last + 1))
    if not members:
        raise ConfigError(f"no {what} in {text!r}", where)
    return sorted(members)


def _cpu_number(s: str, where: str, what: str) -> int:
    s = s.strip()
    if not (s.isascii() and s.isdigit()):
        raise ConfigError(f"invalid {what} list item {s!r}", where)
    n = int(s)
    if n >= _MAX_CPU:
        raise ConfigError(f"{what} numbers above {_MAX_CPU - 1} are not supported", where)
    return n


def parse_scheduler(s: dict | None, where: str) -> Scheduler | None:
    """runc's validator: nice only for OTHER/BATCH, priority only for FIFO/RR,
    runtime/deadline/period only for DEADLINE."""
    if s is None:
        return None
    name = s.get("policy")
    if name not in SCHED_POLICIES:
        raise ConfigError(f"invalid scheduler policy {name!r}", f"{where}.policy")
    nice, priority = s.get("nice", 0), s.get("priority", 0)
    if name in ("SCHED_OTHER", "SCHED_BATCH") and not -20 <= nice <= 19:
        raise ConfigError(f"nice {nice} is out of range (-20..19) for {name}", f"{where}.nice")
    if priority and name not in ("SCHED_FIFO", "SCHED_RR"):
        raise ConfigError("priority can only be set for SCHED_FIFO or SCHED_RR", f"{where}.priority")
    dl = {k: s.get(k, 0) for k in ("runtime", "deadline", "period")}
    if name != "SCHED_DEADLINE" and any(dl.values()):
        raise ConfigError("runtime, deadline and period can only be set for SCHED_DEADLINE", where)
    flags = 0
    for i, flag in enumerate(s.get("flags") or []):
        if flag not in SCHED_FLAGS:
            raise ConfigError(f"invalid scheduler flag {flag!r}", f"{where}.flags[{i}]")
        flags |= SCHED_FLAGS[flag]
    return Scheduler(SCHED_POLICIES[name], flags, nice, priority, **dl)


def parse_io_priority(p: dict | None, where: str) -> int | None:
    if p is None:
        return None
    cls, level = p.get("class"), p.get("priority", 0)
    if cls not in IOPRIO_CLASSES:
        raise ConfigError(f"invalid I/O priority class {cls!r}", f"{where}.class")
    if not 0 <= level <= 7:
        raise ConfigError(f"I/O priority {level} is out of range (0..7)", f"{where}.priority")
    return IOPRIO_CLASSES[cls] << 13 | level


def parse_personality(p: dict | None, where: str = "linux.personality",
                      warn: bool = True) -> int | None:
    if p is None:
        return None
    domain = p.get("domain")
    if domain not in PERSONALITY_DOMAINS:
        raise ConfigError(f"invalid personality domain {domain!r}", f"{where}.domain")
    if p.get("flags") and warn:
        # the spec defines no flag values; runc warns (at create) and ignores them
        log.warning(f"{where}.flags: ignoring unsupported personality flags {p['flags']}")
    return PERSONALITY_DOMAINS[domain]


def parse_memory_policy(m: dict | None, where: str = "linux.memoryPolicy") -> tuple | None:
    if m is None:
        return None
    mode = m.get("mode")
    if mode not in MPOL_MODES:
        raise ConfigError(f"invalid memory policy mode {mode!r}", f"{where}.mode")
    nodes = parse_cpu_list(m.get("nodes") or "", f"{where}.nodes", "nodes") or []
    if mode in _NO_NODES and nodes:
        raise ConfigError(f"{mode} takes no nodes, got {len(nodes)}", f"{where}.nodes")
    if mode in _SOME_NODES and not nodes:
        raise ConfigError(f"{mode} needs at least one node", f"{where}.nodes")
    flags = 0
    for i, flag in enumerate(m.get("flags") or []):
        if flag not in MPOL_FLAGS:
            raise ConfigError(f"invalid memory policy flag {flag!r}", f"{where}.flags[{i}]")
        flags |= MPOL_FLAGS[flag]
    return MPOL_MODES[mode] | flags, nodes


def parse(process: dict, linux: dict, where: str = "process", *, exec_: bool = False,
          defaults: dict | None = None) -> Attributes:
    """The attributes of one container process. For an exec'd process,
    `defaults` is the config's own process: its scheduler, ioPriority and
    execCPUAffinity apply unless the exec'd process sets its own (runc's
    newInitConfig)."""
    def pick(key):
        value = process.get(key)
        if value is None and defaults is not None:
            return defaults.get(key), "process"
        return value, where

    sched, sched_where = pick("scheduler")
    prio, prio_where = pick("ioPriority")
    attrs = Attributes(
        scheduler=parse_scheduler(sched, f"{sched_where}.scheduler"),
        io_priority=parse_io_priority(prio, f"{prio_where}.ioPriority"),
        personality=parse_personality(linux.get("personality"), warn=not exec_),
        memory_policy=parse_memory_policy(linux.get("memoryPolicy")),
    )
    aff, aff_where = pick("execCPUAffinity")
    if aff is not None:  # checked for init too (runc does), applied to exec only
        initial = parse_cpu_list(aff.get("initial") or "", f"{aff_where}.execCPUAffinity.initial")
        final = parse_cpu_list(aff.get("final") or "", f"{aff_where}.execCPUAffinity.final")
        if exec_:
            attrs.affinity_initial, attrs.affinity_final = initial, final
    return attrs


# --- applying -------------------------------------------------------------------------

def apply(attrs: Attributes, where: str = "process") -> None:
    """In the container process, after no_new_privs, before seccomp (runc's order)."""
    s = attrs.scheduler
    if s is not None:
        try:
            native.sched_setattr(0, s.policy, s.flags, s.nice, s.priority, s.runtime,
                                 s.deadline, s.period)
        except OSError as e:
            hint = ""
            if e.errno == 1:
                hint = _SCHED_EPERM_HINTS.get(s.policy, "")
            raise ContainerStartError(f"error setting scheduler: {os.strerror(e.errno)}{hint}",
                                      f"{where}.scheduler") from None
    if attrs.io_priority is not None:
        try:
            native.ioprio_set(native.IOPRIO_WHO_PROCESS, 0, attrs.io_priority)
        except OSError as e:
            raise ContainerStartError(f"failed to set io priority: {os.strerror(e.errno)}",
                                      f"{where}.ioPriority") from None
    if attrs.personality is not None:
        try:
            native.personality(attrs.personality)
        except OSError as e:
            raise ContainerStartError(f"set_personality: {os.strerror(e.errno)}",
                                      "linux.personality") from None
    if attrs.memory_policy is not None:
        mode, nodes = attrs.memory_policy
        try:
            native.set_mempolicy(mode, nodes)
        except OSError as e:
            raise ContainerStartError(f"set_mempolicy: {os.strerror(e.errno)}"
                                      f"{_mempolicy_hint(e.errno, nodes)}",
                                      "linux.memoryPolicy") from None


_SCHED_EPERM_HINTS = {
    SCHED_POLICIES["SCHED_FIFO"]: " (a realtime policy needs CAP_SYS_NICE and, with RT group "
                                  "scheduling, linux.resources.cpu.realtimeRuntime)",
    SCHED_POLICIES["SCHED_DEADLINE"]: " (SCHED_DEADLINE needs CAP_SYS_NICE and cannot be used "
                                      "together with a cpuset narrower than its root domain)",
}
_SCHED_EPERM_HINTS[SCHED_POLICIES["SCHED_RR"]] = _SCHED_EPERM_HINTS[SCHED_POLICIES["SCHED_FIFO"]]


def _mempolicy_hint(err: int, nodes: list) -> str:
    if err == 38:
        return " (the kernel has no NUMA support)"
    if err == 22 and nodes:
        return f" (nodes {nodes} are not all online memory nodes, or the mode/flags are unknown " \
               f"to this kernel)"
    return ""


def reset_affinity(pid: int) -> None:
    """runc's tryResetCPUAffinity: failing is only a warning."""
    try:
        native.reset_cpu_affinity(pid)
    except OSError as e:
        log.warning(f"resetting the CPU affinity of pid {pid} failed: {e.strerror}: the "
                    f"container process may inherit the runtime's CPU affinity")


def set_affinity(pid: int, cpus: list[int], which: str) -> None:
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError as e:
        raise ContainerStartError(f"error setting {which} CPU affinity: {e.strerror}",
                                  f"process.execCPUAffinity.{which}") from None


def placing_exec(attrs: Attributes, place_in_cgroup):
    """The host's cgroup move of an exec'd process, with its CPU affinity
    (runc's setnsProcess): `initial` before the move, `final` after it; with
    neither, every CPU."""
    def place(pid: int) -> None:
        if attrs.affinity_initial:
            set_affinity(pid, attrs.affinity_initial, "initial")
        place_in_cgroup(pid)
        if attrs.affinity_final:
            set_affinity(pid, attrs.affinity_final, "final")
        elif not attrs.affinity_initial:
            reset_affinity(pid)
    return place


def placing_init(place_in_cgroup):
    """The init's cgroup move: then every CPU its cpuset allows (runc resets
    the affinity after applying the cgroup, so a pinned runtime's pin is not kept)."""
    def place(pid: int) -> None:
        place_in_cgroup(pid)
        reset_affinity(pid)
    return place


# --- features -------------------------------------------------------------------------

def memory_policy_features() -> dict:
    """The modes and flags set_mempolicy(2) of this kernel takes (probed on
    ourselves, then back to the default policy); none without NUMA."""
    modes, flags = [], []
    try:
        with open("/sys/devices/system/node/online") as f:
            node = parse_cpu_list(f.read().strip(), "", "nodes")[0]
    except (OSError, ConfigError, IndexError):
        return {"modes": [], "flags": []}
    for name, mode in MPOL_MODES.items():
        if _probe(mode, [] if name in _NO_NODES else [node]):
            modes.append(name)
    for name, flag in MPOL_FLAGS.items():
        if _probe(MPOL_MODES["MPOL_BIND"] | flag, [node]):
            flags.append(name)
    return {"modes": sorted(modes), "flags": sorted(flags)}


def _probe(mode: int, nodes: list) -> bool:
    try:
        native.set_mempolicy(mode, nodes)
        return True
    except OSError:
        return False
    finally:
        try:
            native.set_mempolicy(MPOL_MODES["MPOL_DEFAULT"], [])
        except OSError:
            pass
