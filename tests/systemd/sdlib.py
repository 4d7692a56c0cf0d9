"""Helpers for tests that run inside a systemd guest (`CGROUP2_VM_INIT=systemd
../shared/tools/cgroup2-vm`), where the test job is a oneshot unit started
while boot goes on. Reusable by any suite there (the runtime's own tests, the
engines' end-to-end tests):

    wait_for_systemd(timeout)   bounded wait until PID 1 is systemd and its
                                manager answers on the system bus (never
                                `is-system-running --wait`: boot waits for us)
    unavailable()               why a suite needing root + systemd must skip, or None
    systemctl(*args)            run systemctl (bounded), CompletedProcess
    show(unit, *props) -> dict  `systemctl show -p ...` as {Name: value} (entries of a
                                list property joined by newlines)
    units(pattern) -> [name]    loaded units matching a glob (--all)
    unit_cgroup(unit) -> path   its /sys/fs/cgroup directory ("" if none)
    layout() -> str             "cgroup v2 (unified)" or "... v1 (hybrid)"...
"""
from __future__ import annotations

import os
import subprocess
import time

import pytest

CGROUP_ROOT = "/sys/fs/cgroup"
SYSTEMCTL_TIMEOUT = 30.0


def pid1_is_systemd() -> bool:
    try:
        with open("/proc/1/comm") as f:
            return f.read().strip() == "systemd"
    except OSError:
        return False


def systemctl(*args: str, timeout: float = SYSTEMCTL_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(["systemctl", "--no-pager", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def wait_for_systemd(timeout: float = 120.0) -> str | None:
    """None once the manager answers on the system bus (its Version), else
    why not, after at most `timeout` seconds."""
    if not pid1_is_systemd():
        return "PID 1 is not systemd"
    deadline = time.monotonic() + timeout
    why = "no answer"
    while time.monotonic() < deadline:
        if os.path.exists("/run/dbus/system_bus_socket"):
            try:
                res = systemctl("show", "--property=Version", "--value", timeout=10)
                if res.returncode == 0 and res.stdout.strip():
                    # the bus answers too (systemctl may use the private socket)
                    bus = subprocess.run(
                        ["busctl", "--system", "get-property", "org.freedesktop.systemd1",
                         "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                         "Version"], capture_output=True, text=True, timeout=10,
                        stdin=subprocess.DEVNULL)
                    if bus.returncode == 0:
                        return None
                    why = bus.stderr.strip()
                else:
                    why = res.stderr.strip()
            except subprocess.TimeoutExpired:
                why = "systemctl timed out"
        else:
            why = "no system bus socket yet"
        time.sleep(0.5)
    return f"systemd not ready after {timeout:g} s: {why}"


def unavailable(timeout: float = 120.0) -> str | None:
    """Why tests that need root and systemd cannot run here (None: they can): what a
    suite's fixture skips with."""
    if os.geteuid() != 0:
        return "needs root"
    why = wait_for_systemd(timeout)
    return why and (f"needs systemd as PID 1 with D-Bus (run in CGROUP2_VM_INIT=systemd "
                    f"cgroup2-vm): {why}")


def show(unit: str, *props: str) -> dict[str, str]:
    res = systemctl("show", unit, *(f"--property={p}" for p in props))
    assert res.returncode == 0, res.stderr
    out: dict[str, str] = {}
    for line in res.stdout.splitlines():      # a list property comes one line per entry
        key, _, value = line.partition("=")
        out[key] = f"{out[key]}\n{value}" if key in out else value
    return out


def units(pattern: str) -> list[str]:
    """Loaded units matching a glob, any state (what must be empty after delete)."""
    res = systemctl("list-units", "--all", "--plain", "--no-legend", pattern)
    assert res.returncode == 0, res.stderr
    return [line.split()[0] for line in res.stdout.splitlines() if line.strip()]


def unit_cgroup(unit: str) -> str:
    group = show(unit, "ControlGroup")["ControlGroup"]
    return CGROUP_ROOT + group if group else ""


def layout() -> str:
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        return "cgroup v2 (unified)"
    if os.path.isdir(os.path.join(CGROUP_ROOT, "unified")):
        return "cgroup v1 (hybrid)"
    return "cgroup v1 (legacy)"


@pytest.fixture(scope="session")
def systemd_up():
    """Every test that uses it skips, with the reason, without root + systemd."""
    why = unavailable()
    if why:
        pytest.skip(why)
