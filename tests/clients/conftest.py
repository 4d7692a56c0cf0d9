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
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from clientlib import (CLIENT_HOST_DIRS, DOCKER_IMAGE, IMAGE, MAKE_ROOTFS, PAUSE_IMAGE,
                       Containerd, Dockerd, Podman, check_nothing_left, mounts_under, ok,
                       parent_cgroups, write_docker_archive)


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
    """The session's private dir for every client (short: socket paths stay < 108)."""
    d = Path(tempfile.mkdtemp(prefix="pyrunc-clients-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    leftover = mounts_under(str(d))
    for mp in reversed(leftover):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    if not os.environ.get("PYRUNC_KEEP_CLIENT_TMP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def images(client_tmp):
    """rootfs.tar (plain busybox rootfs) and docker-archives of it: busybox (Cmd sh) and
    pause (Entrypoint sleep: the CRI sandbox image)."""
    d = client_tmp / "images"
    d.mkdir()
    rootfs = d / "rootfs"
    subprocess.run(["sh", str(MAKE_ROOTFS), str(rootfs)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    layer = d / "rootfs.tar"
    subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(layer), "."],
                   check=True)
    shutil.rmtree(rootfs)
    return {
        "rootfs_tar": layer,
        "busybox": write_docker_archive(d / "busybox.tar", layer, IMAGE),
        "pause": write_docker_archive(d / "pause.tar", layer, PAUSE_IMAGE,
                                      entrypoint=["/bin/sleep"], cmd=["2000000"]),
    }


@pytest.fixture(scope="session")
def host_snapshot():
    """Host state outside the temp dir before any client ran (what we may clean up)."""
    return {"dirs": {p for p in CLIENT_HOST_DIRS if os.path.isdir(p)},
            "cgroups": parent_cgroups()}


def remove_created_host_state(snapshot) -> None:
    """rmdir (only if empty) the parent cgroups and /run dirs this session created."""
    for cg in sorted(parent_cgroups() - snapshot["cgroups"], key=len, reverse=True):
        try:
            os.rmdir(cg)
        except OSError:
            pass
    for d in CLIENT_HOST_DIRS:  # children listed before parents
        if d not in snapshot["dirs"]:
            try:
                os.rmdir(d)
            except OSError:
                pass


@pytest.fixture(scope="session")
def containerd(client_tmp, images, pyrunc_bin, host_snapshot):
    for b in ("containerd", "ctr", "containerd-shim-runc-v2"):
        if not shutil.which(b):
            pytest.skip(f"containerd client tests: {b} is not installed (apt-get install containerd)")
    c = Containerd(client_tmp, pyrunc_bin)
    try:
        c.start()
    except RuntimeError as e:
        pytest.skip(f"containerd cannot start on this machine: {e}")
    try:
        for ns, img in (("default", "busybox"), ("k8s.io", "busybox"), ("k8s.io", "pause")):
            ok(c.ctr("images", "import", images[img], ns=ns, timeout=120))
    except AssertionError:
        c.stop()
        raise
    yield c
    for ns in ("default", "k8s.io"):
        c.ids.update(c.ctr("containers", "ls", "-q", ns=ns).stdout.split())
    c.cleanup_all()
    c.stop()
    problems = check_nothing_left(c.dir, "containerd", ids=c.ids, pyrunc=pyrunc_bin,
                                  roots=[p for r in (c.runc_root, c.cri_root)
                                         if r.is_dir() for p in r.iterdir()])
    for ns_dir in (c.dir / "state" / "io.containerd.runtime.v2.task").glob("*/*"):
        problems.append(f"containerd: task bundle left: {ns_dir}")
    remove_created_host_state(host_snapshot)
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def podman(client_tmp, images, pyrunc_bin, host_snapshot):
    for b in ("podman", "conmon"):
        if not shutil.which(b):
            pytest.skip(f"podman client tests: {b} is not installed (apt-get install podman conmon)")
    p = Podman(client_tmp, pyrunc_bin)
    res = p("load", "-i", images["busybox"], timeout=120)
    if res.returncode != 0:
        pytest.skip(f"podman cannot work on this machine: podman load: {res.stderr.strip()[-500:]}")
    yield p
    p("rm", "-a", "-f", "-t", "0", timeout=120)
    ids = p.session_ids()
    pyrunc_root = "/run/pyrunc"  # pyrunc's default root for root: the one podman uses
    problems = check_nothing_left(p.dir, "podman", ids=ids, pyrunc=pyrunc_bin,
                                  shared_roots=[pyrunc_root])
    p("system", "prune", "-a", "-f")  # drops images: unmounts their layers, if any
    problems += check_nothing_left(p.dir, "podman")
    remove_created_host_state(host_snapshot)
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def dockerd(client_tmp, images, pyrunc_bin, containerd, host_snapshot):
    for b in ("dockerd", "docker"):
        if not shutil.which(b):
            pytest.skip(f"docker client tests: {b} is not installed (apt-get install docker.io)")
    d = Dockerd(client_tmp, pyrunc_bin, containerd)
    try:
        d.start()
    except RuntimeError as e:
        pytest.skip(f"dockerd cannot start on this machine: {e}")
    try:
        ok(d("import", images["rootfs_tar"], DOCKER_IMAGE, timeout=120))
    except AssertionError:
        d.stop()
        raise
    yield d
    left = d("ps", "-a", "-q", "--no-trunc").stdout.split()
    if left:
        d("rm", "-f", *left, timeout=120)
    ids = d.session_ids()
    d.stop()
    problems = check_nothing_left(d.dir, "dockerd", ids=ids, pyrunc=pyrunc_bin,
                                  roots=[d.exec_root / "runtime-runc" / "moby"])
    for t in containerd.ctr("tasks", "ls", "-q", ns="moby").stdout.split():
        problems.append(f"dockerd: containerd task left in namespace moby: {t}")
    remove_created_host_state(host_snapshot)
    assert not problems, "\n".join(problems)

