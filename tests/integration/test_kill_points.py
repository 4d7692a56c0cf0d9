"""Fault injection: `create`, `run` and `exec` SIGKILLed at every named point
of the fork chain, the init and the hooks (pyrunc.fault_point, driven by the
test-only entry point tests/tools/pyrunc_faults.py), then `delete --force`:
right after it returns no state dir, cgroup, mount, moved device or process
may be left, and the same id can be created again.

A point in a process of the container's pid namespace cannot signal the
command: it says so on stderr and waits; the test then kills the command and
lets the process go on, as it would once its host is gone."""
import json
import os
import secrets
import subprocess

import pytest

from faults import check_killed_then_clean, faulty, kill_at, nothing_left, pids_of  # noqa: F401

pytestmark = pytest.mark.integration

# the points a plain create passes, in order (test_points_are_current keeps this true)
CREATE_POINTS = [
    "create:journal", "spawn:forked", "middle:go", "middle:forked", "spawn:pid", "init:start",
    "create:init", "create:cgroup", "create:resources", "spawn:placed", "init:placed",
    "init:rootfs", "hooks.createRuntime[0]", "hooks.createContainer[0]", "init:pivoted",
    "init:ready", "create:ready", "create:saved",
]
# (the init then becomes the waiting init, a C program: waiter.py)
KILL_POINTS = CREATE_POINTS


def hooks_true(bundle) -> None:
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/true"}],
                              "createContainer": [{"path": "/bin/true"}]}


# --- create ---------------------------------------------------------------------------------

def test_points_are_current(faulty, bundle):
    """A plain create passes exactly CREATE_POINTS, in order per process."""
    hooks_true(bundle)
    cid = faulty.new_id()
    bundle.write()
    env = dict(os.environ, PYRUNC_FAULT_TRACE="1")
    res = faulty("create", "--bundle", bundle.path, cid, env=env)
    assert res.returncode == 0, res.stderr
    seen = [line.split()[2] for line in res.stderr.splitlines() if line.startswith("fault-point ")]
    assert sorted(seen) == sorted(CREATE_POINTS)
    by_process = {}
    for line in res.stderr.splitlines():
        _, pid, name = line.split()
        by_process.setdefault(pid, []).append(name)
    for names in by_process.values():
        assert names == [p for p in CREATE_POINTS if p in names]
    faulty.ok("delete", "--force", cid)


@pytest.mark.parametrize("point", KILL_POINTS)
def test_create_killed(faulty, bundle, point):
    hooks_true(bundle)
    cid = faulty.new_id()
    bundle.write()
    check_killed_then_clean(faulty, bundle, point, cid, "create", "--bundle", bundle.path, cid)


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_create_killed_while_a_hook_runs(faulty, bundle, kind):
    """The issue's case: SIGKILL while a hook runs. The hook goes too (it
    dies with the process that ran it)."""
    token = f"{secrets.randbelow(10**6) + 10**6}"
    hook = {"path": "/bin/sleep", "args": ["sleep", f"60.{token}"]}
    bundle.config["hooks"] = {kind: [hook]}
    cid = faulty.new_id()
    bundle.write()
    check_killed_then_clean(faulty, bundle, f"hooks.{kind}[0]", cid, "create", "--bundle",
                            bundle.path, cid, tokens=[f"60.{token}"],
                            before_again=lambda: hooks_true(bundle))


USERNS_POINTS = ["middle:userns", "middle:forked", "init:start", "create:init", "init:placed",
                 "init:ready", "create:ready"]


@pytest.mark.parametrize("point", USERNS_POINTS)
def test_create_killed_user_namespace(faulty, bundle, userns_rootfs, point):
    faulty.use_userns(bundle, userns_rootfs)
    cid = faulty.new_id()
    bundle.write()
    check_killed_then_clean(faulty, bundle, point, cid, "create", "--bundle", bundle.path, cid)


NO_MOUNTNS_POINTS = ["spawn:forked", "init:start", "init:rootfs", "init:placed",
                     "hooks.createRuntime[0]", "init:ready", "create:ready"]


@pytest.mark.parametrize("point", NO_MOUNTNS_POINTS)
def test_create_killed_without_mount_namespace(faulty, bundle, point):
    """Its mounts are in the host's namespace: delete --force unmounts them."""
    bundle.private_rootfs()
    bundle.remove_namespace("mount")
    bundle.linux["maskedPaths"] = []
    bundle.linux["readonlyPaths"] = []
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if m["destination"] in ("/proc", "/dev")]
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/true"}]}
    cid = faulty.new_id()
    bundle.write()
    check_killed_then_clean(faulty, bundle, point, cid, "create", "--bundle", bundle.path, cid)


def _veth():
    tag = secrets.token_hex(3)
    a, b = f"rlba{tag}", f"rlbb{tag}"
    subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
    subprocess.run(["ip", "addr", "add", "10.214.7.1/24", "dev", a], check=True)
    subprocess.run(["ip", "link", "set", a, "up"], check=True)
    return a, b


def _link(name: str) -> dict | None:
    res = subprocess.run(["ip", "-j", "addr", "show", "dev", name], capture_output=True, text=True)
    return json.loads(res.stdout)[0] if res.returncode == 0 else None


# killed before its READY, the init ends by itself (its host is gone) and so
# does its network namespace: a veth goes with it (the kernel's rule for
# virtual devices, as on `delete`). Killed after it, the init is still there
# (journalled) when delete --force runs: the device comes back as it was.
NETDEV_POINTS = {"create:net-devices": "gone", "hooks.createRuntime[0]": "gone",
                 "init:ready": "gone", "create:ready": "back"}


@pytest.mark.parametrize("point", NETDEV_POINTS)
def test_create_killed_with_network_devices(faulty, bundle, point):
    a, b = _veth()
    try:
        bundle.linux["netDevices"] = {a: {"name": "eth1"}}
        hooks_true(bundle)
        cid = faulty.new_id()
        bundle.write()
        kill_at(faulty, point, "create", "--bundle", bundle.path, cid, cid=cid)
        res = faulty("delete", "--force", cid)
        assert res.returncode == 0 and res.stderr == "", res.stderr
        assert nothing_left(faulty, cid) == []
        if NETDEV_POINTS[point] == "back":
            link = _link(a)
            assert link is not None, f"{a} is not back on the host"
            assert "UP" in link["flags"]
            assert any(x.get("local") == "10.214.7.1" for x in link["addr_info"])
        else:
            assert faulty.wait_until(lambda: _link(a) is None and _link(b) is None, 30), \
                "the veth outlived the container's network namespace"
            a, b = _veth()
            bundle.linux["netDevices"] = {a: {"name": "eth1"}}
        faulty.create(bundle, cid=cid)
        faulty.ok("delete", "--force", cid)
    finally:
        for name in (a, b):
            subprocess.run(["ip", "link", "del", name], stderr=subprocess.DEVNULL)


# --- run and exec ---------------------------------------------------------------------------

RUN_POINTS = ["create:cgroup", "middle:forked", "init:placed", "create:ready", "run:created",
              "run:started"]


@pytest.mark.parametrize("point", RUN_POINTS)
def test_run_killed(faulty, bundle, point):
    bundle.args("sleep", "1000")
    cid = faulty.new_id()
    bundle.write()
    check_killed_then_clean(faulty, bundle, point, cid, "run", "--bundle", bundle.path, cid)


EXEC_POINTS = ["spawn:forked", "middle:go", "middle:forked", "exec:start", "spawn:pid",
               "exec:ready"]


@pytest.mark.parametrize("point", EXEC_POINTS)
@pytest.mark.parametrize("detach", [True, False], ids=["detached", "foreground"])
def test_exec_killed(faulty, bundle, point, detach):
    """A killed exec leaves the container as it was, with no process of the
    exec outside it; delete --force then removes everything."""
    bundle.args("sleep", "1000")
    cid = faulty.new_id()
    faulty.ok("run", "-d", "--bundle", bundle.path, cid, bundle=bundle)
    token = f"{secrets.randbelow(10**6) + 10**6}"
    argv = ["exec", *(["--detach"] if detach else []), cid, "sleep", f"60.{token}"]
    kill_at(faulty, point, *argv, cid=cid)
    assert faulty.state(cid)["status"] == "running"
    for pid in pids_of(f"60.{token}"):  # an exec'd program is inside the container
        with open(f"/proc/{pid}/cgroup") as f:
            assert cid in f.read()
    res = faulty("delete", "--force", cid)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert nothing_left(faulty, cid, f"60.{token}") == []


def test_a_device_the_kernel_gave_back_gets_its_name_back(pyrunc):
    """When the container's namespace is gone before delete --force runs, the
    kernel has given a physical device back to the host under its container
    name, without addresses (a veth would be gone: this one plays the part).
    restore_recorded gives it its name, addresses and state back."""
    from pyrunc.process import netdevices
    a, b = _veth()
    try:
        link = _link(a)
        record = {"host_name": a, "name": "eth1", "index": link["ifindex"],
                  "mac": link["address"], "addresses": [["10.214.7.1", 24]], "was_up": True}
        subprocess.run(["ip", "link", "set", a, "down"], check=True)
        subprocess.run(["ip", "addr", "flush", "dev", a], check=True)
        subprocess.run(["ip", "link", "set", a, "name", "rlbeth1"], check=True)
        netdevices.restore_recorded([record], None)
        link = _link(a)
        assert link is not None and "UP" in link["flags"]
        assert any(x.get("local") == "10.214.7.1" for x in link["addr_info"])
        assert _link("rlbeth1") is None
    finally:
        for name in (a, b, "rlbeth1"):
            subprocess.run(["ip", "link", "del", name], stderr=subprocess.DEVNULL)


def test_concurrent_creates_of_one_id(pyrunc, bundle):
    """Exactly one wins; the others fail with runc's words, leave nothing and
    do not touch the winner, which then works as usual."""
    import time
    bundle.args("sleep", "1000")
    bundle.write()
    cid = pyrunc.new_id()
    procs = [subprocess.Popen([pyrunc.binary, "--root", pyrunc.root, "create", "--bundle",
                               bundle.path, cid], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(6)]
    results = []
    for p in procs:
        # (a loser's stderr is a pipe: only the winner's init keeps it open)
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        results.append(p.returncode)
    assert sorted(results) == [0, 1, 1, 1, 1, 1], results
    for p, code in zip(procs, results):
        if code != 0:
            assert p.stderr.read().decode().strip() == \
                "pyrunc create failed: container with given ID already exists"
        p.stderr.close()
    state = pyrunc.state(cid)
    assert state["status"] == "created" and pyrunc.pid_alive(state["pid"])
    pyrunc.ok("start", cid)
    assert pyrunc.state(cid)["status"] == "running"
    pyrunc.ok("delete", "--force", cid)
    assert nothing_left(pyrunc, cid) == []
