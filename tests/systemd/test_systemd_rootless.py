"""Rootless pyrunc --systemd-cgroup through the user's systemd instance (its
session bus, as rootless podman uses it), inside the systemd guest: the test
user gets a lingering user manager (loginctl enable-linger), and its container
is a scope in that manager's user.slice with the limits it delegates."""
import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import sdlib
from guestlib import make_rootfs, pyrunc_path

pytestmark = pytest.mark.usefixtures("systemd_up")

USER, UID = "pyrunctest", 4321


def as_user(argv, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = ["runuser", "-u", USER, "--", "env", "-i",
           "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           *(f"{k}={v}" for k, v in env.items()), *map(str, argv)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        code = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                              timeout=timeout, cwd="/").returncode
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, code, out.read().decode(), err.read().decode())


@pytest.fixture(scope="module")
def user_manager():
    """The test user's systemd instance and its bus: (env for pyrunc, manager cgroup)."""
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-u", str(UID), USER], check=True, timeout=60)
    uid = pwd.getpwnam(USER).pw_uid
    res = subprocess.run(["loginctl", "enable-linger", USER], capture_output=True, text=True,
                         timeout=60)
    if res.returncode != 0:
        pytest.skip(f"no user manager: loginctl enable-linger failed: {res.stderr.strip()}")
    service = f"user@{uid}.service"
    bus = f"/run/user/{uid}/bus"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if os.path.exists(bus) and \
                sdlib.show(service, "ActiveState")["ActiveState"] == "active":
            break
        time.sleep(0.5)
    else:
        pytest.skip(f"{service} or its bus {bus} did not come up in 90 s")
    env = {"XDG_RUNTIME_DIR": f"/run/user/{uid}", "DBUS_SESSION_BUS_ADDRESS": f"unix:path={bus}"}
    yield env, sdlib.unit_cgroup(service)
    subprocess.run(["loginctl", "disable-linger", USER], timeout=60)


@pytest.fixture
def user_dir():
    d = Path(tempfile.mkdtemp(prefix="sd-rootless-", dir="/tmp"))
    os.chmod(d, 0o755)
    make_rootfs(d / "rootfs")
    (d / "state").mkdir()
    shutil.chown(d / "state", USER)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_rootless_scope_in_the_user_manager(user_manager, user_dir):
    env, manager_cgroup = user_manager
    pyrunc = pyrunc_path()
    bundle = user_dir / "bundle"
    bundle.mkdir()
    os.chmod(bundle, 0o755)
    shutil.chown(bundle, USER)
    res = as_user([pyrunc, "spec", "--rootless", "--bundle", bundle], env)   # maps the user's id
    assert res.returncode == 0, res.stderr
    config = json.loads((bundle / "config.json").read_text())
    cid, prefix = f"r{secrets.token_hex(4)}", f"pytu{secrets.token_hex(2)}"
    config["root"]["path"] = str(user_dir / "rootfs")
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sleep", "1000"]
    config["linux"]["cgroupsPath"] = f":{prefix}:{cid}"
    config["linux"]["resources"] = {"pids": {"limit": 20}, "memory": {"limit": 64 << 20}}
    # without the /sys/fs/cgroup mount: rootless on a pure v2 host fails to mount
    # it (EBUSY) with either driver, a rootfs matter apart from the driver tested here
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]
    (bundle / "config.json").write_text(json.dumps(config))
    root = user_dir / "state"
    run = as_user([pyrunc, "--systemd-cgroup", "--root", root, "run", "-d", "--bundle", bundle,
                   cid], env)
    assert run.returncode == 0, run.stderr
    unit = f"{prefix}-{cid}.scope"
    d = f"{manager_cgroup}/user.slice/{unit}"
    try:
        assert os.path.isdir(d), os.listdir(f"{manager_cgroup}/user.slice")
        with open(f"{d}/pids.max") as f:
            assert f.read().strip() == "20"
        with open(f"{d}/memory.max") as f:
            assert f.read().strip() == str(64 << 20)
        state = json.loads(as_user([pyrunc, "--root", root, "state", cid], env).stdout)
        with open(f"{d}/cgroup.procs") as f:
            assert str(state["pid"]) in f.read().split()
        shown = sdlib.systemctl("--user", "-M", f"{USER}@", "show", unit,
                                "--property=TasksMax", "--property=Delegate")
        if shown.returncode == 0:              # needs systemd-machined's user transport
            assert "TasksMax=20" in shown.stdout and "Delegate=yes" in shown.stdout
    finally:
        rm = as_user([pyrunc, "--systemd-cgroup", "--root", root, "delete", "--force", cid], env)
    assert rm.returncode == 0, rm.stderr
    assert not os.path.exists(d)
    assert not os.listdir(root)
