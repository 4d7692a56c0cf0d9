"""Engines in their systemd configuration drive pyrunc end to end, inside a guest booted
with systemd as PID 1 (pure cgroup v2, D-Bus, Debian's kernel with AppArmor), one guest
for the suite (scripts/test.sh):

    CGROUP2_VM_INIT=systemd ../shared/tools/cgroup2-vm -- \\
        env PYRUNC=$VENV/bin/pyrunc $VENV/bin/python -m pytest tests/engines

* podman ``--cgroup-manager systemd`` (``--runtime`` pyrunc);
* containerd with ``SystemdCgroup = true`` in the runc options of the CRI runtime
  ``pyrunc`` (BinaryName), AppArmor on in the CRI; ``ctr run --runc-systemd-cgroup``;
* dockerd ``--exec-opt native.cgroupdriver=systemd`` with pyrunc as its default runtime.

The daemons and images are tests/clients' (clientlib.py, cri.py: the host suite drives
the same clients with the cgroupfs driver), on private sockets and roots under one temp
dir, started and stopped by pid; the guest's own containerd/docker services are never
touched. Besides clientlib's checks (no process, mount, cgroup or pyrunc state left), a
session fails if a systemd unit of one of its containers is left.
"""
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "clients"), str(TESTS / "systemd")]  # clientlib, cri, sdlib

import sdlib  # noqa: E402
from sdlib import systemd_up  # noqa: E402,F401 (the fixture)
from enginelib import apparmor_up  # noqa: E402
from clientlib import (Containerd, Dockerd, Podman, host_snapshot, make_images,  # noqa: E402
                       missing_binary, private_dir, remove_created_host_state)

# the units the engines' containers become (prefix-<id>.scope), and kubelet's slices
UNIT_PATTERNS = ("libpod-*", "docker-*", "cri-containerd-*", "ctr-*", "kubepods*")


def pytest_report_header(config):
    return [f"engines guest suite: {sdlib.layout()}, PID 1 "
            f"{'systemd' if sdlib.pid1_is_systemd() else 'not systemd'}, AppArmor "
            f"{'on' if apparmor_up() else 'off'}"]


def pytest_configure(config):
    config.addinivalue_line("markers", "engines: an engine in its systemd configuration "
                            "drives pyrunc (systemd guest)")


@pytest.fixture(scope="session")
def engine_tmp(systemd_up):
    with private_dir("pyrunc-engines-") as d:
        yield d


@pytest.fixture(scope="session")
def images(engine_tmp):
    return make_images(engine_tmp / "images")


@pytest.fixture(scope="session")
def host_state(systemd_up):
    snapshot = host_snapshot()
    snapshot["units"] = {u for p in UNIT_PATTERNS for u in sdlib.units(p)}
    return snapshot


def finish(problems: list[str], host_state: dict, ids) -> None:
    """Fail the session if the engine left units of its containers; stop kubelet-style
    slices we made (kubelet removes a pod's slice itself)."""
    ids = {i for i in ids if i}
    new = {u for p in UNIT_PATTERNS for u in sdlib.units(p)} - host_state["units"]
    for unit in sorted(new):
        if unit.endswith(".slice"):
            sdlib.systemctl("stop", unit)
        elif any(i in unit for i in ids):
            problems.append(f"unit left: {unit}: {sdlib.show(unit, 'ActiveState')}")
            sdlib.systemctl("stop", unit)
            sdlib.systemctl("reset-failed", unit)
    remove_created_host_state(host_state)
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def containerd(engine_tmp, images, pyrunc_bin, host_state):
    missing = missing_binary("containerd", "ctr", "containerd-shim-runc-v2")
    if missing:
        pytest.skip(f"{missing} is not installed (apt-get install containerd)")
    c = Containerd(engine_tmp, pyrunc_bin, systemd_cgroup=True, apparmor=apparmor_up())
    try:
        c.start(timeout=180)
    except RuntimeError as e:
        pytest.skip(f"containerd cannot start here: {e}")
    c.load_images(images)
    yield c
    finish(c.finish(), host_state, c.ids)


@pytest.fixture(scope="session")
def podman(engine_tmp, images, pyrunc_bin, host_state):
    missing = missing_binary("podman", "conmon")
    if missing:
        pytest.skip(f"{missing} is not installed (apt-get install podman conmon)")
    p = Podman(engine_tmp, pyrunc_bin, cgroup_manager="systemd")
    why = p.load_images(images)
    if why:
        pytest.skip(f"podman cannot work here: {why}")
    yield p
    ids = p.session_ids()
    finish(p.finish(), host_state, ids)


@pytest.fixture(scope="session")
def dockerd(engine_tmp, images, pyrunc_bin, containerd, host_state):
    missing = missing_binary("dockerd", "docker")
    if missing:
        pytest.skip(f"{missing} is not installed (apt-get install docker.io)")
    d = Dockerd(engine_tmp, pyrunc_bin, containerd, cgroup_driver="systemd")
    try:
        d.start(timeout=180)
    except RuntimeError as e:
        pytest.skip(f"dockerd cannot start here: {e}")
    d.load_images(images)
    yield d
    ids = d.session_ids()
    finish(d.finish(), host_state, ids)
