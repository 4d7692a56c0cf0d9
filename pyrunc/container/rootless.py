"""The global `--rootless auto|true|false` flag, as runc reads it.

It only decides how cgroups are handled (runc's rootless cgroup manager):
  auto  (default): rootless when the effective uid is not 0 or we are in a
         user namespace (as runc decides);
  true : as if unprivileged: no cgroup for a config without linux.resources,
         and a refused cgroup reported as a rootless limitation;
  false: always the normal cgroup manager (an unprivileged caller then fails
         where it may not write /sys/fs/cgroup, as runc does).
Everything that depends on real privileges (writing id maps, the XDG state
root, the dumpable toggle) keeps looking at the effective uid.
"""
import os

from pyrunc.errors import ConfigError, UsageError
from pyrunc.lean.procfs import in_user_namespace

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}     # Go's strconv.ParseBool
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_mode = "auto"


def set_mode(value: str | None) -> None:
    global _mode
    if value is None or value == "auto":
        _mode = "auto"
    elif value in _TRUE:
        _mode = "true"
    elif value in _FALSE:
        _mode = "false"
    else:
        raise UsageError(f"invalid value {value!r} for flag --rootless (want auto, true or false)")


def mode() -> str:
    return _mode


def is_rootless() -> bool:
    """Whether cgroups are handled the rootless way."""
    if _mode == "auto":
        # runc's auto-detection: unprivileged, or root of a user namespace
        # (podman runs the runtime in its own one) whose cgroups are not its own
        return os.geteuid() != 0 or in_user_namespace()
    return _mode == "true"


def explain_cgroup_error(error: Exception, resources: dict) -> None:
    """Raise a refused cgroup of a rootless container as one line naming
    linux.resources; return (the caller re-raises) for any other error."""
    cause = error.__cause__ if error.__cause__ is not None else error
    if is_rootless() and resources and isinstance(cause, PermissionError):
        raise ConfigError(f"a rootless container cannot apply resource limits, as it may not "
                          f"create cgroups ({error})", "linux.resources") from None
