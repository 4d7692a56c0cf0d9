"""process.user: parse/validate (pre-fork) and apply (in the container init).

Mirrors runc's setupUser: setgroups(additionalGids) (skipped when
/proc/self/setgroups says "deny" or for a rootless euid), setgid, setuid.
The umask defaults to 0o022 like runc. Only numeric ids (OCI on Linux).
"""
from __future__ import annotations

import errno
import os
import stat
from pyrunc.lean.record import field, record

from pyrunc.errors import ConfigError, ContainerStartError

DEFAULT_UMASK = 0o022
_ID_MAX = 0xFFFFFFFE  # (uid_t)-1 means "unchanged" to the kernel, never a valid id
_NGROUPS_MAX = 65536


@record(frozen=True)
class Identity:
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = field(default_factory=tuple)
    umask: int = DEFAULT_UMASK


def _parse_id(value, where: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be an integer, got {value!r}", where)
    if not 0 <= value <= _ID_MAX:
        raise ConfigError(f"{what} {value} is out of range (0..{_ID_MAX})", where)
    return value


def parse_user(user: dict | None, where: str = "process.user") -> Identity:
    """process.user -> Identity. Missing uid/gid are 0 (Go zero values, as in runc)."""
    if user is None:
        return Identity()
    if not isinstance(user, dict):
        raise ConfigError(f"must be an object, got {type(user).__name__}", where)
    uid = _parse_id(user.get("uid", 0), f"{where}.uid", "uid")
    gid = _parse_id(user.get("gid", 0), f"{where}.gid", "gid")
    gids = user.get("additionalGids")
    if gids is None:
        gids = []
    if not isinstance(gids, list):
        raise ConfigError(f"must be a list of gids, got {type(gids).__name__}", f"{where}.additionalGids")
    if len(gids) > _NGROUPS_MAX:
        raise ConfigError(f"too many additional gids ({len(gids)} > {_NGROUPS_MAX})",
                          f"{where}.additionalGids")
    additional = tuple(_parse_id(g, f"{where}.additionalGids[{i}]", "gid") for i, g in enumerate(gids))
    umask = user.get("umask")
    if umask is None:
        umask = DEFAULT_UMASK
    else:
        if isinstance(umask, bool) or not isinstance(umask, int):
            raise ConfigError(f"umask must be an integer, got {umask!r}", f"{where}.umask")
        if not 0 <= umask <= 0o777:
            raise ConfigError(f"umask {umask:#o} is out of range (0..0o777)", f"{where}.umask")
    return Identity(uid, gid, additional, umask)


def setgroups_allowed(rootless_euid: bool = False) -> bool:
    """runc's allowSupGroups: not rootless and /proc/self/setgroups is not "deny"."""
    if rootless_euid:
        return False
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() != "deny"
    except FileNotFoundError:
        return True


_DEV_NULL = os.makedev(1, 3)


def own_stdio(uid: int) -> None:
    """runc's fixStdioPermissions: fds 0-2 (the console included) become the
    user's, group unchanged, so a non-root process can use its terminal;
    /dev/null and what the kernel will not let us chown are left alone."""
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if st.st_uid == uid or (stat.S_ISCHR(st.st_mode) and st.st_rdev == _DEV_NULL):
            continue
        try:
            os.fchown(fd, uid, -1)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EROFS):
                raise ContainerStartError(f"unable to setup user: fchown fd {fd}: "
                                          f"{os.strerror(e.errno)}") from None


def apply_identity(identity: Identity, rootless_euid: bool = False) -> None:
    """stdio ownership, setgroups(additionalGids), setresgid, setresuid, umask
    (in that order). Call with PR_SET_KEEPCAPS set (see
    capabilities.finalize_identity_and_caps)."""
    own_stdio(identity.uid)
    if setgroups_allowed(rootless_euid):
        try:
            os.setgroups(list(identity.additional_gids))
        except OSError as e:
            raise ContainerStartError(f"unable to setup user: setgroups: {os.strerror(e.errno)}",
                                      "process.user.additionalGids") from e
    try:
        os.setresgid(identity.gid, identity.gid, identity.gid)
    except OSError as e:
        if e.errno == errno.EINVAL:
            msg = f"cannot setgid to unmapped gid {identity.gid} in user namespace"
        else:
            msg = f"setgid({identity.gid}): {os.strerror(e.errno)}"
        raise ContainerStartError(f"unable to setup user: {msg}", "process.user.gid") from e
    try:
        os.setresuid(identity.uid, identity.uid, identity.uid)
    except OSError as e:
        if e.errno == errno.EINVAL:
            msg = f"cannot setuid to unmapped uid {identity.uid} in user namespace"
        else:
            msg = f"setuid({identity.uid}): {os.strerror(e.errno)}"
        raise ContainerStartError(f"unable to setup user: {msg}", "process.user.uid") from e
    os.umask(identity.umask)
