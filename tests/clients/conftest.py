"""Fixtures for the client suite: containerd 1.6 (ctr and CRI), podman 4 (conmon) and
dockerd 20.10 drive the installed pyrunc end to end.

Everything a client makes lives under one private temp dir (``/tmp/pyrunc-clients-*``):
daemon sockets, roots, state, image stores, pyrunc's ``--root`` for the shims. The
daemons are started once per session and stopped by pid in the fixture finalizers,
which then check that nothing is left: no process that mentions the temp dir (daemon,
shim, conmon, container), no mount under it, no container cgroup, no pyrunc state dir
of the session's containers. Whatever is found is removed by force and reported as a
teardown error. Host directories the daemons create outside the temp dir
(``/run/containerd/{s,fifo}``, ``/run/docker/plugins``, parent cgroups such as
``libpod_parent``) are removed when this session created them and they are empty.

Images never come from a registry: a busybox rootfs (examples/bundles/make-rootfs.sh)
is tarred into a docker-archive (manifest.json + config + layer.tar) for
``ctr images import`` and ``podman load``, and ``docker import`` takes the plain
rootfs tar.

A client whose package is missing, or whose daemon does not start on this machine,
is a visible skip with the reason (``-rs``), never a silent pass.
"""
import os

import pytest

from clientlib import (Containerd, Dockerd, Podman, host_snapshot, make_images, missing_binary,
                       private_dir, remove_created_host_state)


def pytest_configure(config):
    config.addinivalue_line("markers", "clients: drives pyrunc through containerd, podman "
                            "or dockerd (needs root and the client packages)")


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="client tests start containerd/podman/dockerd: run as root")
    for item in items:
        if "tests/clients/" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def client_tmp():
    """The session's private dir for every client."""
    with private_dir("pyrunc-clients-") as d:
        yield d


@pytest.fixture(scope="session")
def images(client_tmp):
    return make_images(client_tmp / "images")


@pytest.fixture(scope="session")
def host_state():
    return host_snapshot()


@pytest.fixture(scope="session")
def containerd(client_tmp, images, pyrunc_bin, host_state):
    missing = missing_binary("containerd", "ctr", "containerd-shim-runc-v2")
    if missing:
        pytest.skip(f"containerd client tests: {missing} is not installed (apt-get install containerd)")
    c = Containerd(client_tmp, pyrunc_bin)
    try:
        c.start()
    except RuntimeError as e:
        pytest.skip(f"containerd cannot start on this machine: {e}")
    c.load_images(images)
    yield c
    problems = c.finish()
    remove_created_host_state(host_state)
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def podman(client_tmp, images, pyrunc_bin, host_state):
    missing = missing_binary("podman", "conmon")
    if missing:
        pytest.skip(f"podman client tests: {missing} is not installed (apt-get install podman conmon)")
    p = Podman(client_tmp, pyrunc_bin)
    why = p.load_images(images)
    if why:
        pytest.skip(f"podman cannot work on this machine: {why}")
    yield p
    problems = p.finish()
    remove_created_host_state(host_state)
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def dockerd(client_tmp, images, pyrunc_bin, containerd, host_state):
    missing = missing_binary("dockerd", "docker")
    if missing:
        pytest.skip(f"docker client tests: {missing} is not installed (apt-get install docker.io)")
    d = Dockerd(client_tmp, pyrunc_bin, containerd)
    try:
        d.start()
    except RuntimeError as e:
        pytest.skip(f"dockerd cannot start on this machine: {e}")
    d.load_images(images)
    yield d
    problems = d.finish()
    remove_created_host_state(host_state)
    assert not problems, "\n".join(problems)
