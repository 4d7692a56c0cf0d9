"""create / start / state / kill / delete / run, as runc 1.1.5 behaves."""
import os
import time

import pytest

pytestmark = pytest.mark.integration


def test_create_start_kill_delete(pyrunc, bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    bundle.bind(out, "/out")
    bundle.sh("echo started > /out/log; exec sleep 1000")
    cid, _ = pyrunc.create(bundle)

    st = pyrunc.state(cid)
    assert st["status"] == "created"
    assert st["pid"] > 0 and os.path.isdir(f"/proc/{st['pid']}")
    assert not (out / "log").exists(), "the process ran before start"
    pid = st["pid"]

    pyrunc.ok("start", cid)
    st = pyrunc.state(cid)
    assert st["status"] == "running" and st["pid"] == pid
    assert pyrunc.wait_until(lambda: (out / "log").exists() and (out / "log").read_text() == "started\n")

    pyrunc.ok("kill", cid, "SIGKILL")
    st = pyrunc.wait_status(cid, "stopped")
    assert st["pid"] == 0
    assert pyrunc.wait_until(lambda: not pyrunc.pid_alive(pid))

    pyrunc.ok("delete", cid)
    res = pyrunc("state", cid)
    assert res.returncode == 1
    pyrunc.one_line_error(res, "container does not exist")


def test_run_output_on_stdout(pyrunc, bundle):
    bundle.sh("echo hello from $(hostname)")
    assert pyrunc.run_ok(bundle) == "hello from pyrunc\n"


def test_run_exit_code(pyrunc, bundle):
    bundle.sh("exit 3")
    res = pyrunc.run(bundle)
    assert res.returncode == 3, res.stderr


def test_run_killed_by_signal(pyrunc, bundle):
    # without a pid namespace sh is no namespace init, so SIGKILL to itself works
    bundle.remove_namespace("pid")
    bundle.sh("kill -9 $$")
    res = pyrunc.run(bundle)
    assert res.returncode == 128 + 9, res.stderr


def test_run_killed_from_outside(pyrunc, bundle):
    bundle.args("sleep", "1000")
    cid = pyrunc.new_id()
    proc_res = {}

    import threading

    def runner():
        proc_res["res"] = pyrunc.run(bundle, cid=cid)

    t = threading.Thread(target=runner)
    t.start()
    try:
        assert pyrunc.wait_until(lambda: os.path.exists(os.path.join(pyrunc.root, cid, "state.json"))
                                 and pyrunc("state", cid).stdout.find('"running"') >= 0, timeout=10)
        pyrunc.ok("kill", cid, "KILL")
    finally:
        t.join(20)
    assert proc_res["res"].returncode == 137, proc_res["res"].stderr


def test_run_detach(pyrunc, bundle):
    cid = pyrunc.new_id()
    t0 = time.monotonic()
    res = pyrunc.run(bundle, "-d", cid=cid, timeout=15)
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - t0 < 10
    st = pyrunc.state(cid)
    assert st["status"] == "running"
    assert pyrunc.pid_alive(st["pid"])


def test_run_removes_container(pyrunc, bundle):
    cid = pyrunc.new_id()
    bundle.args("true")
    assert pyrunc.run(bundle, cid=cid).returncode == 0
    assert not os.path.exists(os.path.join(pyrunc.root, cid))
    assert pyrunc("state", cid).returncode == 1


def test_delete_running_needs_force(pyrunc, bundle):
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    pid = pyrunc.state(cid)["pid"]

    res = pyrunc("delete", cid)
    pyrunc.one_line_error(res, f"cannot delete container {cid} that is not stopped: running")
    assert pyrunc.state(cid)["status"] == "running"
    assert pyrunc.pid_alive(pid)

    res = pyrunc("delete", "--force", cid)
    assert res.returncode == 0, res.stderr
    assert not pyrunc.pid_alive(pid)
    assert pyrunc("state", cid).returncode == 1


def test_delete_created_without_force(pyrunc, bundle):
    cid, _ = pyrunc.create(bundle)
    pid = pyrunc.state(cid)["pid"]
    res = pyrunc("delete", cid)
    assert res.returncode == 0, res.stderr
    assert res.stdout == res.stderr == ""
    assert not pyrunc.pid_alive(pid)
    assert pyrunc("state", cid).returncode == 1


def test_delete_unknown(pyrunc):
    cid = pyrunc.new_id()
    res = pyrunc("delete", "--force", cid)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    res = pyrunc("delete", cid)
    assert res.returncode == 1
    pyrunc.one_line_error(res, "container does not exist")


def test_delete_force_removes_half_created_state_dir(pyrunc):
    cid = pyrunc.new_id()
    os.makedirs(os.path.join(pyrunc.root, cid))
    res = pyrunc("delete", "--force", cid)
    assert res.returncode == 0, res.stderr
    assert not os.path.exists(os.path.join(pyrunc.root, cid))


def test_start_twice(pyrunc, bundle):
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    res = pyrunc("start", cid)
    pyrunc.one_line_error(res, "cannot start an already running container")
    assert pyrunc.state(cid)["status"] == "running"


def test_start_stopped(pyrunc, bundle):
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("kill", cid, "KILL")
    pyrunc.wait_status(cid, "stopped")
    res = pyrunc("start", cid)
    pyrunc.one_line_error(res, "cannot start a container that has stopped")


def test_kill_stopped(pyrunc, bundle):
    bundle.args("true")
    cid = pyrunc.new_id()
    res = pyrunc.run(bundle, "--detach", cid=cid)
    assert res.returncode == 0, res.stderr
    pyrunc.wait_status(cid, "stopped")
    res = pyrunc("kill", cid, "KILL")
    assert res.returncode == 1
    pyrunc.one_line_error(res, "container not running")
    pyrunc.ok("delete", cid)


def test_kill_created_with_term_stops_it(pyrunc, bundle):
    cid, _ = pyrunc.create(bundle)
    pid = pyrunc.state(cid)["pid"]
    res = pyrunc("kill", cid)  # default signal: SIGTERM
    assert res.returncode == 0, res.stderr
    assert res.stdout == res.stderr == ""
    st = pyrunc.wait_status(cid, "stopped")
    assert st["pid"] == 0
    assert pyrunc.wait_until(lambda: not pyrunc.pid_alive(pid))


@pytest.mark.parametrize("name", ["9", "KILL", "SIGKILL"])
def test_kill_signal_names_kill(pyrunc, bundle, name):
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    pyrunc.ok("kill", cid, name)
    pyrunc.wait_status(cid, "stopped")


@pytest.mark.parametrize("name", ["sigusr1", "USR1"])
def test_kill_signal_names_usr1(pyrunc, bundle, tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    bundle.bind(out, "/out")
    # the namespace init only gets signals it handles: this one handles USR1
    bundle.sh("trap 'echo got-usr1 > /out/sig; exit 0' USR1; echo ready > /out/ready; "
              "while :; do sleep 0.05; done")
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    assert pyrunc.wait_until(lambda: (out / "ready").exists())
    pyrunc.ok("kill", cid, name)
    assert pyrunc.wait_until(lambda: (out / "sig").exists())
    assert (out / "sig").read_text() == "got-usr1\n"
    pyrunc.wait_status(cid, "stopped")


def test_kill_unknown_signal(pyrunc, bundle):
    cid, _ = pyrunc.create(bundle)
    res = pyrunc("kill", cid, "SIGNOPE")
    assert res.returncode != 0
    assert "SIGNOPE" in res.stderr
    assert pyrunc.state(cid)["status"] == "created"


def test_status_stopped_when_init_exits(pyrunc, bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    bundle.bind(out, "/out")
    bundle.sh("while [ ! -e /out/go ]; do sleep 0.02; done; exit 0")
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    assert pyrunc.state(cid)["status"] == "running"
    (out / "go").touch()
    st = pyrunc.wait_status(cid, "stopped")
    assert st["pid"] == 0
    pyrunc.ok("delete", cid)


# --- runc 1.2+ kill ---------------------------------------------------------------------------

def test_kill_signal_zero(pyrunc, bundle):
    """runc's kill.bats "kill detached busybox": signal 0 checks the init is
    there; a stopped container is "not running", unless --all (obsolete in
    runc 1.2+, where it only turns that error off)."""
    cid = pyrunc.new_id()
    pyrunc.run_ok(bundle, "--detach", cid=cid)
    pyrunc.ok("kill", cid, "0")
    pyrunc.ok("kill", "--all", cid, "0")
    assert pyrunc.state(cid)["status"] == "running"
    pyrunc.ok("kill", cid, "KILL")
    pyrunc.wait_status(cid, "stopped")
    res = pyrunc("kill", cid, "0")
    assert res.returncode == 1
    assert pyrunc.one_line_error(res) == "container not running"
    pyrunc.ok("kill", "-a", cid, "0")
    pyrunc.ok("delete", cid)


def _host_pidns_with_execs(pyrunc, bundle, count=3):
    """A container without its own pid namespace, its init and `count` exec'd
    sleeps; returns (id, init pid, every pid of its cgroup)."""
    bundle.remove_namespace("pid")
    cid = pyrunc.new_id()
    pyrunc.run_ok(bundle, "--detach", cid=cid)
    for _ in range(count):
        pyrunc.ok("exec", "--detach", cid, "sleep", "1001")
    init = pyrunc.state(cid)["pid"]
    pids = []

    def all_there() -> bool:
        pids[:] = pyrunc_pids(pyrunc, cid)
        return len(pids) == count + 1
    assert pyrunc.wait_until(all_there)
    return cid, init, pids


def pyrunc_pids(pyrunc, cid) -> list[int]:
    import json
    return json.loads(pyrunc.ok("ps", "--format", "json", cid).stdout) or []


@pytest.mark.parametrize("init_gone", [False, True])
def test_kill_of_host_pidns_container_kills_its_cgroup(pyrunc, bundle, init_gone):
    """runc's kill.bats "kill KILL [host pidns]" and "[host pidns + init gone]":
    SIGKILL (no --all) reaches every process of the cgroup, even after the
    init has died; the container is stopped, its cgroup empty."""
    cid, init, pids = _host_pidns_with_execs(pyrunc, bundle)
    if init_gone:
        os.kill(init, 9)
        assert pyrunc.wait_until(lambda: not pyrunc.pid_alive(init))
        assert pyrunc.state(cid)["status"] == "stopped"
    pyrunc.ok("kill", cid, "KILL")
    assert pyrunc.wait_until(lambda: not any(pyrunc.pid_alive(p) for p in pids))
    assert pyrunc.state(cid)["status"] == "stopped"
    assert pyrunc_pids(pyrunc, cid) == []
    pyrunc.ok("delete", cid)


def test_kill_term_of_host_pidns_container_signals_only_init(pyrunc, bundle):
    """Only SIGKILL goes to the whole cgroup; other signals to the init (runc)."""
    cid, init, pids = _host_pidns_with_execs(pyrunc, bundle, count=1)
    pyrunc.ok("kill", cid, "TERM")
    assert pyrunc.wait_until(lambda: not pyrunc.pid_alive(init))
    others = [p for p in pids if p != init]
    assert others and all(pyrunc.pid_alive(p) for p in others)
    pyrunc.ok("delete", "--force", cid)
    assert pyrunc.wait_until(lambda: not any(pyrunc.pid_alive(p) for p in others))
