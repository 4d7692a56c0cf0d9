"""process.rlimits: parse/validate (pre-fork) and apply (in the container init).

Only the rlimits named in the config are set, to exactly the soft/hard values
asked for; every other rlimit keeps what the runtime inherited. (CPython does
not touch any rlimit at startup, unlike Go which raises the soft NOFILE.)
"""
from __future__ import annotations

import os
import resource

from pyrunc.errors import ConfigError, ContainerStartError
from pyrunc.lean.record import record

# linux/include/uapi/asm-generic/resource.h
RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}
RLIMIT_NAMES: dict[int, str] = {v: k for k, v in RLIMITS.items()}
RLIM_INFINITY = 0xFFFFFFFFFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF


@record(frozen=True)
class Rlimit:
    """soft/hard are uint64 as in the config; RLIM_INFINITY is 2**64-1."""
    resource: int
    soft: int
    hard: int

    @property
    def name(self) -> str:
        return RLIMIT_NAMES.get(self.resource, str(self.resource))


def _u64(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"must be an unsigned integer, got {value!r}", where)
    if not 0 <= value <= _U64_MAX:
        raise ConfigError(f"{value} is out of range (0..2^64-1)", where)
    return value


def parse_rlimits(rlimits: list | None, where: str = "process.rlimits") -> list[Rlimit]:
    if rlimits is None:
        return []
    if not isinstance(rlimits, list):
        raise ConfigError(f"must be a list, got {type(rlimits).__name__}", where)
    out: list[Rlimit] = []
    seen: dict[int, int] = {}
    for i, rl in enumerate(rlimits):
        w = f"{where}[{i}]"
        if not isinstance(rl, dict):
            raise ConfigError(f"must be an object, got {type(rl).__name__}", w)
        rtype = rl.get("type")
        if not isinstance(rtype, str):
            raise ConfigError(f"type must be a string like 'RLIMIT_NOFILE', got {rtype!r}", f"{w}.type")
        res = RLIMITS.get(rtype)
        if res is None:
            raise ConfigError(f"wrong rlimit value: {rtype}", f"{w}.type")
        if res in seen:
            raise ConfigError(f"duplicate rlimit {rtype} (already set by {where}[{seen[res]}])",
                              f"{w}.type")
        seen[res] = i
        if "soft" not in rl:
            raise ConfigError("soft is required", f"{w}.soft")
        if "hard" not in rl:
            raise ConfigError("hard is required", f"{w}.hard")
        soft = _u64(rl["soft"], f"{w}.soft")
        hard = _u64(rl["hard"], f"{w}.hard")
        if soft > hard:
            raise ConfigError(f"{rtype}: soft limit {soft} is greater than hard limit {hard}", w)
        out.append(Rlimit(res, soft, hard))
    return out


def _to_rlim(v: int) -> int:
    # CPython's setrlimit converts through a signed long long and casts to rlim_t,
    # so values >= 2**63 (RLIM_INFINITY included) go in as their two's complement.
    return v - (1 << 64) if v >= 1 << 63 else v


def _from_rlim(v: int) -> int:
    return v + (1 << 64) if v < 0 else v


def apply_rlimits(limits: list[Rlimit]) -> None:
    """setrlimit each one; call before capabilities are dropped (raising a hard
    limit needs CAP_SYS_RESOURCE)."""
    for rl in limits:
        try:
            resource.setrlimit(rl.resource, (_to_rlim(rl.soft), _to_rlim(rl.hard)))
        except (OSError, ValueError) as e:
            # CPython reports EINVAL/EPERM from setrlimit as ValueError with its own text
            reason = os.strerror(e.errno) if isinstance(e, OSError) and e.errno else str(e)
            hint = ""
            try:
                cur_hard = _from_rlim(resource.getrlimit(rl.resource)[1])
                if rl.hard > cur_hard:
                    hint = (f" (raising the hard limit above the current {cur_hard} "
                            "needs CAP_SYS_RESOURCE)")
            except (OSError, ValueError):
                pass
            raise ContainerStartError(
                f"error setting rlimit {rl.name} (soft={rl.soft}, hard={rl.hard}): {reason}{hint}",
                "process.rlimits") from e


def current_rlimits() -> list[Rlimit]:
    """The calling process's rlimits (uint64 form), for tests and diagnostics."""
    return [Rlimit(res, *(_from_rlim(v) for v in resource.getrlimit(res)))
            for res in sorted(RLIMIT_NAMES)]
