"""Checks shared by the engine tests: the transient scope `<prefix>-<id>.scope` that
pyrunc makes over D-Bus for an engine's container (systemd driver), and AppArmor."""
import os
from pathlib import Path

import sdlib
from clientlib import wait_for

MB = 1 << 20


def active_scope(unit: str, pid: int, slice_: str) -> str:
    """Assert `unit` is an active, delegated scope in `slice_` holding `pid` (in its
    cgroup or a sub-cgroup of it); return the cgroup dir."""
    shown = sdlib.show(unit, "ActiveState", "Slice", "ControlGroup", "Delegate")
    assert shown["ActiveState"] == "active", shown
    assert shown["Slice"] == slice_, shown
    assert shown["Delegate"] == "yes", shown
    cgroup = sdlib.CGROUP_ROOT + shown["ControlGroup"]
    with open(f"/proc/{pid}/cgroup") as f:
        own = sdlib.CGROUP_ROOT + f.read().strip().split(":", 2)[2]
    assert own == cgroup or own.startswith(cgroup + "/"), (own, cgroup)
    return cgroup


def cat(cgroup: str, name: str) -> str:
    with open(os.path.join(cgroup, name)) as f:
        return f.read().strip()


def wait_gone(unit: str, cgroup: str, timeout: float = 60.0) -> None:
    """The unit is no longer loaded and its cgroup is gone (bounded)."""
    wait_for(lambda: not sdlib.units(unit) and not os.path.exists(cgroup), timeout=timeout,
             interval=0.5, what=f"{unit} and {cgroup} to go")


def profile_of(text: str) -> str:
    """The AppArmor label a process printed from /proc/self/attr/current."""
    return text.strip().splitlines()[-1] if text.strip() else ""


def apparmor_up() -> bool:
    """The kernel enforces AppArmor and its securityfs is mounted (engines load profiles)."""
    try:
        enabled = Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False
    return enabled and os.path.isdir("/sys/kernel/security/apparmor")
