"""AppArmor profiles and SELinux labels for the container process.

Neither LSM is enabled on every host; asking for a label on a host without
that LSM is an error (as runc does), not a silent no-op.
"""
import os

from pyrunc.errors import ConfigError, ContainerStartError, errno_text


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


def apply_on_exec(apparmor_profile: str, selinux_label: str, apparmor_prefix: str = "") -> None:
    """Labels take effect at the next execve. A profile the kernel has not loaded
    fails here, in runc's words (`apparmor_prefix` says where, as runc's callers do)."""
    if apparmor_profile:
        _apparmor_change_onexec(apparmor_profile, apparmor_prefix)
    if selinux_label:
        with open("/proc/self/attr/exec", "w") as f:
            f.write(selinux_label)


def _apparmor_change_onexec(profile: str, prefix: str, proc: str = "/proc/thread-self") -> None:
    """libapparmor's aa_change_onexec, as runc does it: "exec NAME" into this thread's
    attr/apparmor/exec (attr/exec on kernels before 5.8). One write(2), so the
    kernel's answer (ENOENT: no such profile loaded) is the error."""
    path = f"{proc}/attr/apparmor/exec"
    if not os.path.exists(path):
        path = f"{proc}/attr/exec"
    step = "open"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            step = "write"
            os.write(fd, f"exec {profile}".encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise ContainerStartError(f"{prefix}apparmor failed to apply profile: {step} {path}: "
                                  f"{errno_text(e.errno)}") from None
