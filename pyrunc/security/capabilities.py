"""process.capabilities: parse/validate (pre-fork) and apply (in the container init).

The apply half mirrors runc's libcontainer/init_linux.go `finalizeNamespace`:

    drop bounding set -> PR_SET_KEEPCAPS 1 -> setgroups/setgid/setuid
    -> PR_SET_KEEPCAPS 0 -> capset(effective, permitted, inheritable) -> ambient

which `finalize_identity_and_caps` performs in one call.
"""
from __future__ import annotations

import errno
import os
from pyrunc.lean.record import record

from pyrunc import log, native
from pyrunc.errors import ConfigError, ContainerStartError, errno_text


# linux/capability.h
CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
CAP_NAMES: dict[int, str] = {v: k for k, v in CAPABILITIES.items()}
CAP_LAST_KNOWN = max(CAP_NAMES)

SET_NAMES = ("bounding", "effective", "inheritable", "permitted", "ambient")

_cap_last_cap: int | None = None


def cap_last_cap() -> int:
    """The highest capability number the running kernel knows (cached)."""
    global _cap_last_cap
    if _cap_last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _cap_last_cap = int(f.read().strip())
        except (OSError, ValueError):
            # probe: PR_CAPBSET_READ fails with EINVAL for caps the kernel lacks
            last = -1
            for cap in range(64):
                try:
                    native.prctl(native.PR_CAPBSET_READ, cap)
                except OSError:
                    break
                last = cap
            _cap_last_cap = last if last >= 0 else CAP_LAST_KNOWN
    return _cap_last_cap


def known_capabilities() -> list[str]:
    """All capability names pyrunc knows (for `features`)."""
    return [CAP_NAMES[i] for i in sorted(CAP_NAMES)]


def cap_names(mask: int) -> list[str]:
    """Names of the bits set in a mask (unknown bits as 'CAP_<n>')."""
    return [CAP_NAMES.get(i, f"CAP_{i}") for i in range(mask.bit_length()) if mask >> i & 1]


@record(frozen=True)
class CapabilitySets:
    bounding: int = 0
    effective: int = 0
    inheritable: int = 0
    permitted: int = 0
    ambient: int = 0


def _parse_set(names, where: str, last: int) -> int:
    if names is None:
        return 0
    if not isinstance(names, list):
        raise ConfigError(f"must be a list of capability names, got {type(names).__name__}", where)
    mask = 0
    for i, name in enumerate(names):
        w = f"{where}[{i}]"
        if not isinstance(name, str):
            raise ConfigError(f"capability name must be a string, got {name!r}", w)
        cap = CAPABILITIES.get(name)
        if cap is None:
            raise ConfigError(f"unknown capability {name!r}", w)
        if cap > last:
            raise ConfigError(f"capability {name} is not supported by the running kernel "
                              f"(cap_last_cap is {last})", w)
        mask |= 1 << cap
    return mask


def parse_capabilities(caps: dict | None, where: str = "process.capabilities") -> CapabilitySets | None:
    """Turn process.capabilities into bitmasks. None (no section) means "leave the
    capabilities alone", as runc does; a missing set inside the section is empty."""
    if caps is None:
        return None
    if not isinstance(caps, dict):
        raise ConfigError(f"must be an object, got {type(caps).__name__}", where)
    last = cap_last_cap()
    sets = {name: _parse_set(caps.get(name), f"{where}.{name}", last) for name in SET_NAMES}
    extra = sorted(set(caps) - set(SET_NAMES))
    if extra:
        raise ConfigError(f"unknown capability set {extra[0]!r}", f"{where}.{extra[0]}")
    # the kernel refuses capset() when effective is not a subset of permitted;
    # say so now instead of failing inside the container.
    stray = sets["effective"] & ~sets["permitted"]
    if stray:
        name = cap_names(stray)[0]
        idx = caps["effective"].index(name)
        raise ConfigError(f"{name} is in the effective set but not in the permitted set",
                          f"{where}.effective[{idx}]")
    return CapabilitySets(**sets)


# --- apply (inside the container init) ----------------------------------------------------

def apply_bounding(sets: CapabilitySets | None) -> None:
    """Drop every capability not in the bounding set (needs CAP_SETPCAP: call before
    switching user)."""
    if sets is None:
        return
    for cap in range(cap_last_cap() + 1):
        if sets.bounding >> cap & 1:
            continue
        try:
            if native.prctl(native.PR_CAPBSET_READ, cap) == 0:
                continue
            native.prctl(native.PR_CAPBSET_DROP, cap)
        except OSError as e:
            raise ContainerStartError(
                f"unable to drop {CAP_NAMES.get(cap, cap)} from the bounding set: "
                f"{os.strerror(e.errno)}", "process.capabilities.bounding") from e


def apply_final(sets: CapabilitySets | None) -> None:
    """After the uid switch: capset(effective, permitted, inheritable), then reset the
    ambient set and raise each requested ambient cap that is permitted and inheritable."""
    if sets is None:
        return
    try:
        native.capset(sets.effective, sets.permitted, sets.inheritable)
    except OSError as e:
        detail = ""
        if e.errno == errno.EPERM:
            try:
                _, cur_prm, _ = native.capget()
                bnd = sum(1 << c for c in range(cap_last_cap() + 1)
                          if native.prctl(native.PR_CAPBSET_READ, c) == 1)
            except OSError:
                cur_prm, bnd = ~0, ~0
            missing = sets.permitted & ~cur_prm
            bad_inh = sets.inheritable & ~bnd & ~cur_prm
            if missing:
                detail = f" (the runtime does not hold {', '.join(cap_names(missing))})"
            elif bad_inh:
                detail = (f" (inheritable {', '.join(cap_names(bad_inh))} "
                          "not in the bounding set)")
        raise ContainerStartError(f"unable to apply capabilities: {os.strerror(e.errno)}{detail}",
                                  "process.capabilities") from e
    try:
        native.prctl(native.PR_CAP_AMBIENT, native.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as e:
        if e.errno != errno.EINVAL:  # EINVAL: kernel without ambient capabilities
            raise ContainerStartError(f"unable to clear ambient capabilities: "
                                      f"{os.strerror(e.errno)}", "process.capabilities.ambient") from e
        return
    allowed = sets.permitted & sets.inheritable
    for cap in range(sets.ambient.bit_length()):
        if not sets.ambient >> cap & 1:
            continue
        name = CAP_NAMES.get(cap, str(cap))
        if not allowed >> cap & 1:  # the kernel would say EPERM: runc's words for it
            log.warning(f"can't raise ambient capability {name}: {errno_text(errno.EPERM)}")
            continue
        try:
            native.prctl(native.PR_CAP_AMBIENT, native.PR_CAP_AMBIENT_RAISE, cap)
        except OSError as e:  # runc only warns here
            log.warning(f"can't raise ambient capability {name}: {errno_text(e.errno)}")


def finalize_identity_and_caps(identity, sets: CapabilitySets | None,
                               after_user=None) -> None:
    """runc's finalizeNamespace order: bounding drop -> PR_SET_KEEPCAPS 1 -> setgroups/
    setgid/setuid (+umask) -> [after_user(), e.g. the retried chdir] -> PR_SET_KEEPCAPS 0
    -> capset + ambient. `identity` is a pyrunc.security.identity.Identity."""
    from pyrunc.security.identity import apply_identity

    apply_bounding(sets)
    try:
        native.prctl(native.PR_SET_KEEPCAPS, 1)
    except OSError as e:
        raise ContainerStartError(f"unable to set keep caps: {os.strerror(e.errno)}") from e
    apply_identity(identity)
    if after_user is not None:
        after_user()
    try:
        native.prctl(native.PR_SET_KEEPCAPS, 0)
    except OSError as e:
        raise ContainerStartError(f"unable to clear keep caps: {os.strerror(e.errno)}") from e
    apply_final(sets)
