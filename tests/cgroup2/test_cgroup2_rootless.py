"""A rootless container on a pure cgroup v2 host, as an unprivileged user
runs it (podman rootless, `runc spec --rootless`): the config binds the
host's /sys and asks for a cgroup namespace and a `cgroup` mount, and the
container has no cgroup of its own (no resources). When the kernel refuses
the cgroup2 mount there (EBUSY: the same cgroup2 root again on the mount
point /sys brought along; EPERM in a user namespace without a cgroup
namespace), pyrunc binds the tree instead, as runc does."""
import json
import os
import secrets
import shutil
import subprocess
import tempfile

import pytest

from guestlib import make_rootfs, pyrunc_path

pytestmark = pytest.mark.cgroup2

UID = 4321  # no passwd entry needed: the runtime runs with this uid only


def _as_user(argv, cwd, timeout=120):
    def drop():
        os.setgroups([])
        os.setresgid(UID, UID, UID)
        os.setresuid(UID, UID, UID)
    return subprocess.run([str(a) for a in argv], cwd=cwd, preexec_fn=drop, timeout=timeout,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/"})


@pytest.fixture
def user_bundle():
    top = tempfile.mkdtemp(prefix="pyrunc-rootless-", dir="/tmp")
    os.chmod(top, 0o755)
    try:
        bundle = os.path.join(top, "bundle")
        os.mkdir(bundle)
        make_rootfs(os.path.join(bundle, "rootfs"))
        for d, _, files in os.walk(top):
            os.chown(d, UID, UID)
            for f in files:
                os.lchown(os.path.join(d, f), UID, UID)
        yield top, bundle
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as the unprivileged user")
def test_rootless_cgroup_mount_without_a_cgroup_of_its_own(user_bundle):
    top, bundle = user_bundle
    res = _as_user([pyrunc_path(), "spec", "--rootless"], cwd=bundle)
    assert res.returncode == 0, res.stderr
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    assert any(ns["type"] == "cgroup" for ns in config["linux"]["namespaces"])
    assert any(m["type"] == "cgroup" for m in config["mounts"])
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", "cat /sys/fs/cgroup/cgroup.controllers; "
                                 "grep ' /sys/fs/cgroup ' /proc/self/mountinfo"]
    with open(path, "w") as f:
        json.dump(config, f)
    cid = f"rl-{secrets.token_hex(3)}"
    res = _as_user([pyrunc_path(), "--root", os.path.join(top, "state"), "run", cid], cwd=bundle)
    assert res.returncode == 0, res.stderr
    controllers, *mounts = res.stdout.splitlines()
    assert "pids" in controllers.split()
    shown = mounts[-1].split()                    # what the path shows: the last mount on it
    assert shown[5].split(",")[0] == "ro", mounts  # read-only, as the config asks
    assert not os.path.exists(os.path.join(top, "state", cid))
