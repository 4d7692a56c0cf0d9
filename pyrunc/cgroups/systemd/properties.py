"""What the systemd driver asks systemd for, computed without a bus (pure):
the unit and slice from linux.cgroupsPath ("slice:prefix:name", runc's rules),
linux.resources as unit properties converted the way runc converts them
(opencontainers/cgroups systemd/common.go, v1.go, v2.go, devices/systemd.go),
and `org.systemd.property.<Name>` annotations.

A property is (Name, (D-Bus signature, value)), the a(sv) element that
StartTransientUnit and SetUnitProperties take.
"""
from __future__ import annotations

from pyrunc.errors import ConfigError

from ..devices import WILDCARD, Emulator
from ..resources import (UINT64_MAX, V2_DEFAULT_PERIOD, blkio_weight_to_io_weight,
                         cpu_shares_to_weight, is_cpu_list)

WHERE = "linux.cgroupsPath"
DEFAULT_PREFIX = "runc"               # runc's ScopePrefix when cgroupsPath is empty
USEC_INFINITY = UINT64_MAX
ANNOTATION_PREFIX = "org.systemd.property."
# systemd versions that first understood a property (older ones: files only, as runc)
SD_QUOTA_PERIOD, SD_ALLOWED_CPUS, SD_DEVICE_MAJOR, SD_CPU_IDLE = 242, 244, 240, 252

_UNIT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\@")


# --- names ---------------------------------------------------------------------------------

def expand_slice(slice_name: str) -> str:
    """"a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice" (where systemd puts a
    slice in the cgroup tree); "-.slice" -> "/". ValueError if it is not a
    valid slice name (runc's ExpandSlice)."""
    suffix = ".slice"
    if len(slice_name) < len(suffix) or not slice_name.endswith(suffix) or "/" in slice_name:
        raise ValueError(f"invalid slice name: {slice_name}")
    stem = slice_name[:-len(suffix)]
    if stem == "-":
        return "/"
    path, prefix = "", ""
    for component in stem.split("-"):
        if not component:
            raise ValueError(f"invalid slice name: {slice_name}")
        path += "/" + prefix + component + suffix
        prefix += component + "-"
    return path


def is_valid_unit_name(name: str) -> bool:
    """systemd's unit_name_is_valid, roughly: 1..255 of [A-Za-z0-9:-_.\\@]."""
    return 0 < len(name) <= 255 and set(name) <= _UNIT_CHARS and not name.startswith(".")


def parse_cgroups_path(cgroups_path: str | None, container_id: str, rootless: bool = False
                       ) -> tuple[str, str, str]:
    """linux.cgroupsPath in the systemd form -> (parent slice, unit, name).
    "" -> (system.slice, or user.slice rootless; "runc-<id>.scope"), as runc;
    "slice:prefix:name" -> (slice or the default, "<prefix>-<name>.scope"), or
    the slice `name` itself when it ends in ".slice". ConfigError naming
    linux.cgroupsPath otherwise."""
    default_slice = "user.slice" if rootless else "system.slice"
    if not cgroups_path:
        parent, prefix, name = "", DEFAULT_PREFIX, container_id
    else:
        parts = cgroups_path.split(":")
        if len(parts) != 3:
            raise ConfigError('expected cgroupsPath to be of format "slice:prefix:name" for '
                              f"systemd cgroups, got {cgroups_path!r} instead", WHERE)
        parent, prefix, name = parts
    if not name:
        raise ConfigError(f"systemd cgroups path {cgroups_path!r} has an empty name", WHERE)
    unit = name if name.endswith(".slice") else f"{prefix}-{name}.scope"
    parent = parent or default_slice
    try:
        expand_slice(parent)
        if unit.endswith(".slice"):
            expand_slice(unit)
    except ValueError as e:
        raise ConfigError(str(e), WHERE) from None
    if not is_valid_unit_name(unit):
        raise ConfigError(f"invalid systemd unit name {unit!r}", WHERE)
    return parent, unit, name


def unit_cgroup(parent: str, unit: str) -> str:
    """The unit's cgroup below the manager's root: a scope lives in its parent
    slice; a slice unit is placed by its own name ("a-b.slice" in a.slice)."""
    if unit.endswith(".slice"):
        return expand_slice(unit)
    return expand_slice(parent).rstrip("/") + "/" + unit


# --- the unit ------------------------------------------------------------------------------

def unit_properties(container_name: str, parent: str, unit: str, cgroup_version: str
                    ) -> list:
    """The properties runc starts every unit with (before resources and
    annotations): description, placement, delegation, accounting."""
    props = [("Description", ("s", f"libcontainer container {container_name}"))]
    if unit.endswith(".slice"):
        props.append(("Wants", ("as", [parent])))      # a slice's parent comes from its name
    else:
        props += [("Slice", ("s", parent)), ("Delegate", ("b", True))]
    io = "IOAccounting" if cgroup_version == "v2" else "BlockIOAccounting"
    props += [("MemoryAccounting", ("b", True)), ("CPUAccounting", ("b", True)),
              (io, ("b", True)), ("TasksAccounting", ("b", True)),
              ("DefaultDependencies", ("b", False))]
    return props


# --- resources -----------------------------------------------------------------------------

def range_to_bits(cpus: str) -> bytes:
    """A cpuset list ("0-3,7") -> the byte mask systemd takes for AllowedCPUs /
    AllowedMemoryNodes: bit n of the little-endian bytes is CPU n (runc's
    RangeToBits)."""
    mask = 0
    for item in cpus.split(","):
        item = item.strip()
        if not item:
            continue
        lo, _, hi = item.partition("-")
        start, end = int(lo), int(hi or lo)
        if start > end:
            raise ValueError(f"invalid range: {item}")
        for n in range(start, end + 1):
            mask |= 1 << n
    if not mask:
        raise ValueError("empty value")
    return mask.to_bytes((mask.bit_length() + 7) // 8, "little")


def cpu_quota(quota: int, period: int, sd_version: int) -> tuple[list, int]:
    """CPUQuotaPerSecUSec (+ CPUQuotaPeriodUSec on systemd >= 242) for a CFS
    quota/period, and the quota to write to the files: systemd keeps the quota
    as a per-second percentage, so runc rounds it up to a whole 10 ms per
    second and writes that same value to cgroupfs (what daemon-reload
    restores then equals what we wrote). quota <= 0: unlimited."""
    props = []
    if period and sd_version >= SD_QUOTA_PERIOD:
        props.append(("CPUQuotaPeriodUSec", ("t", period)))
    if not quota and not period:
        return props, quota
    per_sec = USEC_INFINITY
    if quota > 0:
        period = period or V2_DEFAULT_PERIOD
        per_sec = quota * 1000000 // period
        if per_sec % 10000:
            per_sec = (per_sec // 10000 + 1) * 10000
            quota = per_sec * period // 1000000
    props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
    return props, quota


def _tasks_max(limit: int) -> int:
    if limit < 0:
        return USEC_INFINITY            # "infinity"
    return limit or 1                   # systemd does not accept TasksMax=0


def _bytes_or_infinity(value: int) -> int:
    return USEC_INFINITY if value < 0 else value


def _cpuset(c: dict, sd_version: int) -> list:
    if sd_version < SD_ALLOWED_CPUS:
        return []                       # too old: the files only (runc)
    return [(name, ("ay", range_to_bits(c[key])))
            for key, name in (("cpus", "AllowedCPUs"), ("mems", "AllowedMemoryNodes"))
            if key in c]


def _block_device(d: dict) -> str:
    return f"/dev/block/{d['major']}:{d['minor']}"


def resource_properties(spec: dict, cgroup_version: str, sd_version: int
                        ) -> tuple[list, dict]:
    """A checked resources spec (pyrunc.cgroups.resources) -> (unit properties,
    the spec for the files): everything systemd can express, converted like
    runc (v1: MemoryLimit, CPUShares, BlockIOWeight; v2: MemoryMax/Low/
    SwapMax, CPUWeight, unified keys it knows), plus the block IO device limits
    systemd has properties for. The files spec differs from `spec` only where
    a value was rounded for systemd (the CPU quota)."""
    props: list = []
    files = spec
    m, c, p, b = (spec.get(k, {}) for k in ("memory", "cpu", "pids", "blockIO"))
    v2 = cgroup_version == "v2"
    if "limit" in m:
        props.append(("MemoryMax" if v2 else "MemoryLimit",
                      ("t", _bytes_or_infinity(m["limit"]))))
    if v2:
        if "reservation" in m:
            props.append(("MemoryLow", ("t", _bytes_or_infinity(m["reservation"]))))
        from ..resources import swap_to_v2
        swap = swap_to_v2(m.get("swap", 0), m.get("limit", 0))
        if swap is not None:
            props.append(("MemorySwapMax", ("t", USEC_INFINITY if swap == "max" else int(swap))))
    idle = v2 and c.get("idle") == 1 and sd_version >= SD_CPU_IDLE
    if idle:
        props.append(("CPUWeight", ("t", 0)))          # systemd's way to say cpu.idle=1
    if "shares" in c:
        if not v2:
            props.append(("CPUShares", ("t", c["shares"])))
        elif not idle:
            props.append(("CPUWeight", ("t", cpu_shares_to_weight(c["shares"]))))
    if "quota" in c or "period" in c:
        quota_props, quota = cpu_quota(c.get("quota", 0), c.get("period", 0), sd_version)
        props += quota_props
        if quota != c.get("quota", 0):
            files = dict(spec, cpu=dict(c, quota=quota))
    if "limit" in p:
        props.append(("TasksMax", ("t", _tasks_max(p["limit"]))))
    props += _cpuset(c, sd_version)
    if "weight" in b:
        props.append(("IOWeight", ("t", blkio_weight_to_io_weight(b["weight"])))
                     if v2 else ("BlockIOWeight", ("t", b["weight"])))
    weights = [d for d in b.get("weightDevice", []) if "weight" in d]
    if weights:
        props.append(("IODeviceWeight" if v2 else "BlockIODeviceWeight",
                      ("a(st)", [(_block_device(d), blkio_weight_to_io_weight(d["weight"])
                                  if v2 else d["weight"]) for d in weights])))
    throttles = (("throttleReadBpsDevice", "IOReadBandwidthMax", "BlockIOReadBandwidth"),
                 ("throttleWriteBpsDevice", "IOWriteBandwidthMax", "BlockIOWriteBandwidth"),
                 ("throttleReadIOPSDevice", "IOReadIOPSMax", None),
                 ("throttleWriteIOPSDevice", "IOWriteIOPSMax", None))
    for key, v2_name, v1_name in throttles:
        name = v2_name if v2 else v1_name
        limits = [d for d in b.get(key, []) if d["rate"]]   # rate 0: no limit
        if name and limits:
            props.append((name, ("a(st)", [(_block_device(d), d["rate"]) for d in limits])))
    if v2 and spec.get("unified"):
        props += unified_properties(spec["unified"], sd_version, spec.get("cpu", {}))
    return props, files


_UNIFIED_MEMORY = {"memory.high": "MemoryHigh", "memory.low": "MemoryLow",
                   "memory.min": "MemoryMin", "memory.max": "MemoryMax",
                   "memory.swap.max": "MemorySwapMax"}


def unified_properties(unified: dict, sd_version: int, cpu: dict | None = None) -> list:
    """linux.resources.unified keys systemd has a property for (runc's
    unifiedResToSystemdProps); the others go to the files only. ConfigError
    for values systemd could not take."""
    props: list = []
    where = "linux.resources.unified"
    idle = unified.get("cpu.idle", "").strip() == "1" and sd_version >= SD_CPU_IDLE
    for key, raw in unified.items():
        v, at = raw.strip(), f"{where}.{key}"
        try:
            if key == "cpu.idle" and idle:
                props.append(("CPUWeight", ("t", 0)))
            elif key == "cpu.weight" and not idle:
                props.append(("CPUWeight", ("t", _uint(v))))
            elif key == "cpu.max":
                fields = v.split()
                if not 1 <= len(fields) <= 2:
                    raise ValueError(v)
                quota = 0 if fields[0] == "max" else int(fields[0])
                period = _uint(fields[1]) if len(fields) == 2 else V2_DEFAULT_PERIOD
                props += cpu_quota(quota, period, sd_version)[0]
            elif key in ("cpuset.cpus", "cpuset.mems"):
                if not is_cpu_list(v):
                    raise ValueError(v)
                if sd_version >= SD_ALLOWED_CPUS:
                    name = "AllowedCPUs" if key == "cpuset.cpus" else "AllowedMemoryNodes"
                    props.append((name, ("ay", range_to_bits(v))))
            elif key in _UNIFIED_MEMORY:
                props.append((_UNIFIED_MEMORY[key],
                              ("t", USEC_INFINITY if v == "max" else _uint(v))))
            elif key == "pids.max":
                props.append(("TasksMax", ("t", USEC_INFINITY if v == "max"
                                           else _tasks_max(_uint(v)))))
        except ValueError:
            raise ConfigError(f"{raw!r} is not a value systemd can take for {key}", at) from None
    return props


def _uint(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValueError(text)
    return int(text)


# --- devices -------------------------------------------------------------------------------

def device_properties(rules: list, sd_version: int) -> list:
    """Device rules (the combined list create applies) -> DevicePolicy=strict
    and a DeviceAllow list, as runc's devices/systemd.go: an allow-all set
    becomes DevicePolicy=auto; a deny-list systemd cannot express becomes
    deny-all (the files/eBPF program we apply after then carry the truth);
    "*:n" rules systemd cannot express are left to the files."""
    emu = Emulator.from_rules(list(rules))
    props = [("DeviceAllow", ("a(ss)", [])), ("DevicePolicy", ("s", "strict"))]
    if emu.default_allow:
        if not emu.rules:                               # allow-all
            return [("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
        return props                                    # a deny-list: deny-all here
    allow = []
    for rule in emu.clean_rules():
        prefix = "block-" if rule.type == "b" else "char-"
        if rule.major == WILDCARD:
            if rule.minor != WILDCARD:
                continue                                 # "*:n": files only
            path = prefix + "*"
        elif rule.minor == WILDCARD:
            if sd_version < SD_DEVICE_MAJOR:
                continue                                 # needs /proc/devices names: files only
            path = prefix + str(rule.major)
        else:
            path = f"/dev/{'block' if rule.type == 'b' else 'char'}/{rule.major}:{rule.minor}"
        allow.append((path, rule.access))
    props.append(("DeviceAllow", ("a(ss)", allow)))
    return props


# --- annotations ---------------------------------------------------------------------------

def annotation_properties(annotations: dict) -> list:
    """`org.systemd.property.<Name>: <value in GVariant text>` annotations ->
    properties, as runc: the name is letters only (3 or more); a name ending in
    a lowercase letter + "Sec" is systemd's "USec" property, in microseconds."""
    props = []
    for key in sorted(annotations or {}):
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        name, text = key[len(ANNOTATION_PREFIX):], annotations[key]
        at = f"annotations.{key}"
        if len(name) < 3 or not (name.isascii() and name.isalpha()):
            raise ConfigError(f"systemd property name {name!r} must be 3 or more letters", at)
        try:
            sig, value = parse_variant(text)
            if name.endswith("Sec") and len(name) > 3 and name[-4].islower():
                name, (sig, value) = name[:-3] + "USec", _sec_to_usec(sig, value)
        except ValueError as e:
            raise ConfigError(f"value {text!r}: {e}", at) from None
        props.append((name, (sig, value)))
    return props


def _sec_to_usec(sig: str, value) -> tuple[str, int]:
    if sig not in _INT_TYPES.values() and sig != "d":
        raise ValueError("not a number")
    return "t", int(value * 1000000)


_INT_TYPES = {"byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u",
              "int64": "x", "uint64": "t", "handle": "h"}
_INT_RANGES = {"y": (0, 255), "n": (-(1 << 15), (1 << 15) - 1), "q": (0, (1 << 16) - 1),
               "i": (-(1 << 31), (1 << 31) - 1), "u": (0, (1 << 32) - 1),
               "x": (-(1 << 63), (1 << 63) - 1), "t": (0, UINT64_MAX), "h": (0, (1 << 32) - 1)}
_KEYWORD_TYPES = dict(_INT_TYPES, boolean="b", double="d", string="s", objectpath="o",
                      signature="g")


def parse_variant(text: str) -> tuple[str, object]:
    """A value in GVariant text format (what runc's annotations take through
    godbus ParseVariant), the forms systemd properties use: `uint64 123`,
    `@t 123`, `123` (int32), `1.5`, `true`, `'text'`/`"text"`, `[...]` of
    one type (`@as []` for an empty one). -> (signature, value)."""
    parser = _VariantParser(text)
    sig, value = parser.value()
    parser.skip()
    if parser.pos != len(text):
        raise ValueError(f"unexpected {text[parser.pos:]!r}")
    return sig, value


class _VariantParser:
    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def word(self) -> str:
        self.skip()
        start = self.pos
        while self.pos < len(self.text) and not self.text[self.pos].isspace() \
                and self.text[self.pos] not in ",]":
            self.pos += 1
        return self.text[start:self.pos]

    def value(self, want: str | None = None) -> tuple[str, object]:
        self.skip()
        if self.text.startswith("@", self.pos):
            self.pos += 1
            return self.value(self.word())
        start = self.pos
        word = self.word()
        if word in _KEYWORD_TYPES:
            return self.value(_KEYWORD_TYPES[word])
        self.pos = start
        if self.pos >= len(self.text):
            raise ValueError("missing value")
        ch = self.text[self.pos]
        if ch in "'\"":
            return self._check(want, "s", self._string(ch))
        if ch == "[":
            return self._array(want)
        word = self.word()
        if word in ("true", "false"):
            return self._check(want, "b", word == "true")
        return self._number(word, want)

    def _check(self, want, sig, value):
        if want is not None and want != sig and not (want in "og" and sig == "s"):
            raise ValueError(f"a {sig!r} value where {want!r} is wanted")
        return (want or sig), value

    def _string(self, quote: str) -> str:
        self.pos += 1
        out = []
        while self.pos < len(self.text) and self.text[self.pos] != quote:
            if self.text[self.pos] == "\\" and self.pos + 1 < len(self.text):
                self.pos += 1
            out.append(self.text[self.pos])
            self.pos += 1
        if self.pos >= len(self.text):
            raise ValueError("unterminated string")
        self.pos += 1
        return "".join(out)

    def _number(self, word: str, want: str | None) -> tuple[str, object]:
        if want == "d" or (want is None and any(ch in word for ch in ".eE")
                           and not word.startswith("0x")):
            return "d", float(word)
        sig = want or "i"
        if sig not in _INT_RANGES:
            raise ValueError(f"{word!r} is not a {sig!r} value")
        n = int(word, 0)
        lo, hi = _INT_RANGES[sig]
        if not lo <= n <= hi:
            raise ValueError(f"{n} is out of range for {sig!r}")
        return sig, n

    def _array(self, want: str | None) -> tuple[str, object]:
        if want is not None and not want.startswith("a"):
            raise ValueError(f"an array where {want!r} is wanted")
        element = want[1:] if want else None
        self.pos += 1
        items = []
        while True:
            self.skip()
            if self.text.startswith("]", self.pos):
                self.pos += 1
                break
            if items:
                if not self.text.startswith(",", self.pos):
                    raise ValueError("expected ',' or ']'")
                self.pos += 1
            sig, value = self.value(element)
            element = element or sig
            items.append(value)
        if element is None:
            raise ValueError("an empty array needs a type, e.g. @as []")
        return "a" + element, items
