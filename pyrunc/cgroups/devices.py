"""Device cgroup rules: OCI validation, the default allow list, and a port of
runc's devices emulator (opencontainers/cgroups devices/devices_emulator.go).

Both cgroup versions go through the emulator, so v1 and v2 enforce the same
thing. Semantics, per access bit: the last rule matching a device decides,
default deny; an "a" rule resets everything to allow-all or deny-all. Like
runc, a rule that would carve an exception out of an earlier, wider rule of
the other kind ("allow c 1:* rwm" then "deny c 1:3 rwm") is refused as a
config error: v1 cannot express it and silently ignores it. Unlike runc, a
wide deny does override earlier narrower allows ("allow c 1:3" then "deny
c 1:*" denies 1:3; runc and the v1 kernel would keep 1:3 allowed), which only
ever grants less; a wide allow in an allow-all cgroup lifts only the deny of
exactly its device, as in runc and the kernel ("deny c 10:229" then "allow
c *:* m" keeps 10:229 denied), so no rule grants more than runc's would.
v1 gets the emulator's state as devices.allow/devices.deny writes; v2 gets it
compiled to eBPF (bpf.py). As in the kernel, one request needing several
access bits (open O_RDWR: "rw") must be granted by a single exception."""
from __future__ import annotations

import os

from pyrunc.errors import ConfigError

WILDCARD = -1
MAX_DEV_NUMBER = 0xFFFFFFFF

# runc's specconv.AllowedDevices, the allow rules it appends after the config's
# linux.resources.devices (runtime_allow_rules), less its first two ("c *:* m",
# "b *:* m": MKNOD_ANY). /dev/console (5:1) is absent, as in runc: a
# container's /dev/console is a bind-mounted pty (136:N), 5:1 is the host's.
DEFAULT_ALLOWED_DEVICES: tuple[dict, ...] = (
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},    # /dev/null
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},    # /dev/random
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},    # /dev/full
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},    # /dev/tty
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},    # /dev/zero
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},    # /dev/urandom
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},              # /dev/pts/*
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},    # /dev/ptmx
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # /dev/net/tun
)
# the node each of the first six rules comes with in runc
DEFAULT_DEVICE_PATHS = ("/dev/null", "/dev/random", "/dev/full", "/dev/tty", "/dev/zero",
                        "/dev/urandom")
MKNOD_ANY: tuple[dict, ...] = ({"allow": True, "type": "c", "access": "m"},
                               {"allow": True, "type": "b", "access": "m"})


def runtime_allow_rules(linux_devices=None) -> list[dict]:
    """The allow rules runc appends after linux.resources.devices: mknod of any
    device, then the default devices' rules, except those of a default node
    that a linux.devices entry of the same path replaces (runc's createDevices
    drops the rule with the node). linux.devices entries get no rule of their
    own: linux.resources.devices alone decides whether they may be used."""
    replaced = {os.path.normpath(d["path"]) for d in linux_devices or ()
                if isinstance(d, dict) and isinstance(d.get("path"), str)}
    return list(MKNOD_ANY) + [
        rule for i, rule in enumerate(DEFAULT_ALLOWED_DEVICES)
        if i >= len(DEFAULT_DEVICE_PATHS) or DEFAULT_DEVICE_PATHS[i] not in replaced]


_PERM_BITS = {"r": 1, "w": 2, "m": 4}


def perms_to_str(bits: int) -> str:
    return "".join(c for c, b in _PERM_BITS.items() if bits & b)


def perms_from_str(access: str) -> int:
    """The r/w/m bits of an access string; other characters count for nothing (runc)."""
    bits = 0
    for c in access:
        bits |= _PERM_BITS.get(c, 0)
    return bits


class Rule(tuple):
    """One device rule: allow (bool), type ("a", "b" or "c"), major/minor
    (WILDCARD = -1 for "*"), access (canonical "rwm"-ordered subset).

    A hand-written named tuple (equality, hashing, unpacking and repr as
    collections.namedtuple gives them): importing collections costs ~2-3 ms
    on every runtime command."""
    __slots__ = ()

    def __new__(cls, allow: bool, type: str, major: int, minor: int, access: str):
        return tuple.__new__(cls, (allow, type, major, minor, access))

    def __getnewargs__(self):      # copy/pickle rebuild through __new__
        return tuple(self)

    allow = property(lambda self: self[0])
    type = property(lambda self: self[1])
    major = property(lambda self: self[2])
    minor = property(lambda self: self[3])
    access = property(lambda self: self[4])

    def __repr__(self) -> str:
        return (f"Rule(allow={self[0]!r}, type={self[1]!r}, major={self[2]!r}, "
                f"minor={self[3]!r}, access={self[4]!r})")

    def cgroup_string(self) -> str:
        """The devices.allow/devices.deny line, e.g. "c 1:3 rwm", "a *:* rwm"."""
        major = "*" if self.major == WILDCARD else str(self.major)
        minor = "*" if self.minor == WILDCARD else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


def _number(value, where: str) -> int:
    if value is None:
        return WILDCARD
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"must be an integer, not {value!r}", where)
    if value == WILDCARD:
        return WILDCARD
    if not 0 <= value <= MAX_DEV_NUMBER:
        raise ConfigError(f"{value} is out of range (0..{MAX_DEV_NUMBER}, or absent for any)",
                          where)
    return value


def parse_rules(devices, where: str = "linux.resources.devices") -> list[Rule]:
    """Validate an OCI device rule list and return it as Rules (pure).

    Raises ConfigError naming the field, e.g. linux.resources.devices[2].type,
    including for a deny that would punch a hole in an earlier wildcard allow."""
    if devices is None:
        return []
    if not isinstance(devices, list):
        raise ConfigError("must be a list of device rules", where)
    rules: list[Rule] = []
    emu = Emulator()
    for i, d in enumerate(devices):
        at = f"{where}[{i}]"
        if not isinstance(d, dict):
            raise ConfigError("a device rule must be an object", at)
        allow = d.get("allow")
        if not isinstance(allow, bool):
            raise ConfigError("is required and must be true or false", f"{at}.allow")
        dtype = d.get("type") or "a"
        if dtype not in ("a", "b", "c"):  # runc's words
            raise ConfigError(f'invalid cgroup device type "{dtype}" (want a, b or c)',
                              f"{at}.type")
        major = _number(d.get("major"), f"{at}.major")
        minor = _number(d.get("minor"), f"{at}.minor")
        access = d.get("access")
        if not isinstance(access, str) or not access:
            raise ConfigError(f"device access at {i} field cannot be empty", f"{at}.access")
        # as runc: any string, its r, w and m count (in any order, repeated),
        # anything else is ignored
        bits = perms_from_str(access)
        if dtype == "a":
            rule = Rule(allow, "a", WILDCARD, WILDCARD, "rwm")
        elif not bits:
            continue  # grants or denies nothing
        else:
            rule = Rule(allow, dtype, major, minor, perms_to_str(bits))
        try:
            emu.apply(rule)
        except ValueError as e:
            raise ConfigError(str(e), at) from None
        rules.append(rule)
    return rules


def _covers(wide: int, narrow: int) -> bool:
    return wide == WILDCARD or wide == narrow


def _overlap(a: int, b: int) -> bool:
    return a == WILDCARD or b == WILDCARD or a == b


class Emulator:
    """What a device cgroup allows: a default plus exceptions {(type, major, minor): perms}."""

    def __init__(self, default_allow: bool = False):
        self.default_allow = default_allow
        self.rules: dict[tuple[str, int, int], int] = {}

    @classmethod
    def from_rules(cls, rules: list[Rule]) -> "Emulator":
        """The state after applying rules to a deny-all cgroup."""
        emu = cls()
        for rule in rules:
            emu.apply(rule)
        return emu

    @classmethod
    def from_list(cls, text: str) -> "Emulator":
        """The state a v1 devices.list describes (an "a *:* rwm" line = allow-all)."""
        emu = cls()
        for line in text.splitlines():
            if not line.strip():
                continue
            fields = line.replace(":", " ").split()
            if len(fields) != 4 or fields[0] not in ("a", "b", "c"):
                raise ValueError(f"malformed devices.list line {line!r}")
            if fields[0] == "a":
                emu.apply(Rule(True, "a", WILDCARD, WILDCARD, "rwm"))
                continue
            major = WILDCARD if fields[1] == "*" else int(fields[1])
            minor = WILDCARD if fields[2] == "*" else int(fields[2])
            emu.apply(Rule(True, fields[0], major, minor, fields[3]))
        return emu

    def __eq__(self, other) -> bool:
        return (isinstance(other, Emulator) and self.default_allow == other.default_allow
                and self.rules == other.rules)

    def apply(self, rule: Rule) -> None:
        if rule.type == "a":
            self.default_allow, self.rules = rule.allow, {}
            return
        key, bits = (rule.type, rule.major, rule.minor), perms_from_str(rule.access)
        if rule.allow != self.default_allow:
            # an exception to the default: merge
            self.rules[key] = self.rules.get(key, 0) | bits
            return
        # Same action as the default: remove from exceptions. An exception it
        # only partly overlaps (a wider one like "c 1:*" for "c 1:3", or an
        # incomparable one like "c 1:*" for "c *:3") would need a hole the
        # kernel's exception list cannot express: refuse it rather than not
        # enforce it (runc checks only the wider forms and the v1 kernel
        # silently ignores the rule).
        for other, other_bits in self.rules.items():
            if (other[0] == rule.type and other_bits & bits
                    and _overlap(rule.major, other[1]) and _overlap(rule.minor, other[2])
                    and not (_covers(rule.major, other[1]) and _covers(rule.minor, other[2]))):
                wide = Rule(not rule.allow, *other, perms_to_str(other_bits))
                raise ValueError(
                    f"cannot {'allow' if rule.allow else 'deny'} {rule.cgroup_string()}: it "
                    f"punches a hole in the earlier wider rule "
                    f"{'allow' if wide.allow else 'deny'} {wide.cgroup_string()}")
        # A deny removes the bits from the allow exception itself and from every
        # narrower one it covers (runc's emulator, like the v1 kernel, only
        # touches the exact entry, so "allow c 1:3; deny c 1:*" would leave 1:3
        # allowed); an allow lifts only the exact deny, as theirs does.
        for other in list(self.rules):
            if rule.allow and other != key:
                continue
            if (other[0] == rule.type and rule.major in (WILDCARD, other[1])
                    and rule.minor in (WILDCARD, other[2])):
                left = self.rules[other] & ~bits
                if left:
                    self.rules[other] = left
                else:
                    del self.rules[other]

    def _ordered(self) -> list[tuple[tuple[str, int, int], int]]:
        return sorted(self.rules.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0]))

    def transition(self, target: "Emulator", in_order: bool = False) -> list[Rule]:
        """The fewest rules that turn this state into target (runc's Transition).
        A blacklist source always gets the disruptive "a" rule first, because
        devices.list cannot show which deny exceptions it has. New exceptions
        come sorted by (major, minor, type) like runc, or with in_order in the
        order the rules made them (the v1 kernel lists them in write order)."""
        out: list[Rule] = []
        old = self.rules
        if self.default_allow or self.default_allow != target.default_allow:
            out.append(Rule(target.default_allow, "a", WILDCARD, WILDCARD, "rwm"))
            old = {}
        for (t, ma, mi), bits in sorted(old.items(), key=lambda kv: (kv[0][1], kv[0][2],
                                                                      kv[0][0])):
            dropped = bits & ~target.rules.get((t, ma, mi), 0)
            if dropped:
                out.append(Rule(target.default_allow, t, ma, mi, perms_to_str(dropped)))
        for (t, ma, mi), bits in (list(target.rules.items()) if in_order
                                  else target._ordered()):
            gained = bits & ~old.get((t, ma, mi), 0)
            if gained:
                out.append(Rule(not target.default_allow, t, ma, mi, perms_to_str(gained)))
        return out

    def clean_rules(self) -> list[Rule]:
        """Rules that turn a deny-all cgroup into this state: at most one leading
        "a" rule (allow-all), then exceptions sorted by (major, minor, type)."""
        return Emulator().transition(self)


def v1_writes(current_list: str, rules: list[Rule]) -> list[tuple[str, str]]:
    """[(file, line)] to write into a v1 devices cgroup whose devices.list reads
    `current_list` so that it enforces `rules`: devices.allow / devices.deny.
    New exceptions are written in rule order, so devices.list shows them in
    the order of linux.resources.devices (runtime-tools checks that; the
    kernel's matching does not depend on it)."""
    source = Emulator.from_list(current_list)
    target = Emulator.from_rules(rules)
    return [("devices.allow" if r.allow else "devices.deny", r.cgroup_string())
            for r in source.transition(target, in_order=True)]
