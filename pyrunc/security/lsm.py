"""AppArmor profiles and SELinux labels for the container process.

Neither LSM is enabled on every host; asking for a label on a host without
that LSM is an error (as runc does), not a silent no-op.
"""
import os

from pyrunc.errors import ConfigError


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def check_apparmor(profile: str | None, where: str = "process.apparmorProfile") -> str:
    if profile and not apparmor_enabled():
        raise ConfigError(f"apparmor profile {profile!r} is specified but apparmor is not "
                          "enabled on this host", where)
    return profile or ""


def check_selinux(label: str | None, where: str = "process.selinuxLabel") -> str:
    if label and not selinux_enabled():
        raise ConfigError("selinux label is specified in config, but selinux is disabled or not "
                          f"supported: {label!r}", where)
    return label or ""


def apply_on_exec(apparmor_profile: str, selinux_label: str) -> None:
    """Labels take effect at the next execve."""
    if apparmor_profile:
        path = "/proc/self/attr/apparmor/exec"
        if not os.path.exists(path):
            path = "/proc/self/attr/exec"
        with open(path, "w") as f:
            f.write(f"exec {apparmor_profile}")
    if selinux_label:
        with open("/proc/self/attr/exec", "w") as f:
            f.write(selinux_label)
