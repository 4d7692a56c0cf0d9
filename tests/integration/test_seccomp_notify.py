"""Seccomp user notification (SCMP_ACT_NOTIFY, listenerPath, listenerMetadata)
with a real agent (tests/tools/seccomp_agent.py) answering a real container's
syscalls; the cases of runc 1.5's seccomp-notify.bats and the failure paths."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

AGENT = Path(__file__).resolve().parents[1] / "tools" / "seccomp_agent.py"
ARCHS = ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_X86_64"]
MKDIRS = ["mkdir", "mkdirat"]
CHMODS = ["chmod", "fchmod", "fchmodat", "fchmodat2"]


class Agent:
    def __init__(self, tmp: Path):
        self.path = str(tmp / "agent.sock")
        self.log = Path(self.path + ".log")
        self.proc = subprocess.Popen([sys.executable, str(AGENT), self.path])
        deadline = time.monotonic() + 10
        while not os.path.exists(self.path + ".ready"):
            assert self.proc.poll() is None and time.monotonic() < deadline, "agent did not start"
            time.sleep(0.02)

    def states(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=10)


@pytest.fixture
def agent(tmp_path):
    a = Agent(tmp_path)
    yield a
    a.stop()


def notify_profile(bundle, agent_path: str, names, script: str, nnp: bool = False,
                   **extra) -> None:
    """runc's scmp_act_notify_template."""
    bundle.sh(script)
    bundle.process["noNewPrivileges"] = nnp
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": agent_path,
                               "listenerMetadata": "bar", "architectures": ARCHS,
                               "syscalls": [{"names": list(names), "action": "SCMP_ACT_NOTIFY"}],
                               **extra}


@pytest.mark.parametrize("nnp", [False, True], ids=["privileged-load", "no-new-privs"])
def test_run_mkdir_answered_by_agent(pyrunc, bundle, agent, nnp):
    notify_profile(bundle, agent.path, MKDIRS,
                   "mkdir /dev/shm/foo && stat -c %n /dev/shm/foo-bar && ! test -e /dev/shm/foo",
                   nnp=nnp)
    cid = pyrunc.new_id()
    res = pyrunc.run(bundle, cid=cid)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "/dev/shm/foo-bar"
    (state,) = agent.states()  # answered the mkdir: logged before
    assert state["fds"] == ["seccompFd"] and state["_received_fds"] == 1
    assert state["metadata"] == "bar" and state["ociVersion"].startswith("1.")
    assert state["state"]["id"] == cid and state["state"]["status"] == "creating"
    assert state["state"]["bundle"] == bundle.path
    assert state["pid"] == state["state"]["pid"] > 0


def test_agent_returns_an_errno(pyrunc, bundle, agent):
    notify_profile(bundle, agent.path, CHMODS, "touch /dev/shm/f && chmod 777 /dev/shm/f")
    res = pyrunc.run(bundle)
    assert res.returncode != 0
    assert "No medium found" in res.stderr


def test_wait_killable_recv(pyrunc, bundle, agent):
    """runc 1.5.1 with libseccomp 2.5 cannot set it; pyrunc passes it to the kernel."""
    notify_profile(bundle, agent.path, MKDIRS, "mkdir /dev/shm/foo && test -d /dev/shm/foo-bar",
                   flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    res = pyrunc.run(bundle)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("nnp", [False, True], ids=["privileged-load", "no-new-privs"])
def test_syscalls_the_runtime_uses_can_be_notified(pyrunc, bundle, agent, nnp):
    """runc's "important syscalls": what init and exec need, answered CONTINUE."""
    notify_profile(bundle, agent.path, ["execve", "openat", "open", "read", "close", "fcntl"],
                   "true", nnp=nnp)
    bundle.args("/bin/true")
    res = pyrunc.run(bundle)
    assert res.returncode == 0, res.stderr


def test_create_start_and_exec(pyrunc, bundle, agent):
    """Each process with the filter sends its own listener: init at create
    (status creating), an exec'd process at exec (status running)."""
    notify_profile(bundle, agent.path, MKDIRS, "sleep 1000")
    cid, _ = pyrunc.create(bundle)
    assert pyrunc.wait_until(lambda: agent.states())  # the agent logs what it received
    (init_state,) = agent.states()
    assert init_state["state"]["status"] == "creating"
    pyrunc.ok("start", cid)
    init = pyrunc.state(cid)["pid"]
    assert init_state["pid"] == init
    out = pyrunc.ok("exec", cid, "sh", "-c", "mkdir /dev/shm/e && ls /dev/shm").stdout
    assert out.split() == ["e-bar"]
    assert pyrunc.wait_until(lambda: len(agent.states()) == 2)
    states = agent.states()
    assert len(states) == 2
    ex = states[1]
    assert ex["state"]["status"] == "running" and ex["state"]["pid"] == init
    assert ex["pid"] != init and ex["state"]["id"] == cid


def test_listener_path_ignored_without_notify(pyrunc, bundle, tmp_path):
    bundle.sh("mkdir /dev/shm/foo && test -d /dev/shm/foo")
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                               "listenerPath": str(tmp_path / "nothing-here.sock"),
                               "listenerMetadata": "bar"}
    assert pyrunc.run(bundle).returncode == 0


def test_exec_after_the_agent_is_gone(pyrunc, bundle, agent):
    """An exec'd process sends its own listener: with the agent gone, exec
    fails with one line and its process is not left behind."""
    notify_profile(bundle, agent.path, MKDIRS, "sleep 1000")
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    agent.stop()
    res = pyrunc("exec", cid, "mkdir", "/dev/shm/foo", timeout=20)
    pyrunc.one_line_error(res, "failed to connect with seccomp agent")
    assert res.returncode == 255
    ps = subprocess.run(["ps", "-e", "-o", "args="], capture_output=True, text=True).stdout
    assert "mkdir /dev/shm/foo" not in ps


def test_agent_killed_while_container_runs(pyrunc, bundle, agent):
    """runc's "kill seccompagent": nobody holds the listener but the agent, so
    its death turns notified syscalls into ENOSYS, never a hang."""
    notify_profile(bundle, agent.path, MKDIRS, "sleep 2 && mkdir /dev/shm/foo")
    cid = pyrunc.new_id()
    bundle.write()
    proc = subprocess.Popen([pyrunc.binary, "--root", pyrunc.root, "run", "--bundle",
                             bundle.path, cid], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)
    assert pyrunc.wait_until(lambda: agent.states(), timeout=10)
    agent.stop()
    out, err = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert "Function not implemented" in err


@pytest.mark.parametrize("path,needle", [
    ("", "needs a listenerPath"),
    ("/some-non-existing-listener-path.sock", "no such file"),
    ("relative/agent.sock", "must be absolute"),
    ("FILE", "not a socket"),
])
def test_bad_listener_path(pyrunc, bundle, tmp_path, path, needle):
    if path == "FILE":
        path = str(tmp_path / "file")
        Path(path).touch()
    notify_profile(bundle, path, MKDIRS, "true")
    if not path:
        del bundle.linux["seccomp"]["listenerMetadata"]
    res = pyrunc.run(bundle)
    pyrunc.one_line_error(res, "linux.seccomp.listenerPath", needle)


def test_abstract_listener_nobody_listens(pyrunc, bundle):
    """runc dials "@name" as an abstract socket; nobody there: a clear error."""
    notify_profile(bundle, f"@pyrunc-test-{os.getpid()}-nobody", MKDIRS, "true")
    pyrunc.one_line_error(pyrunc.run(bundle), "linux.seccomp.listenerPath",
                          "failed to connect with seccomp agent")


def test_agent_not_running(pyrunc, bundle, agent):
    """runc's "no seccompagent": the socket exists, nobody accepts."""
    agent.stop()
    notify_profile(bundle, agent.path, MKDIRS, "true")
    pyrunc.one_line_error(pyrunc.run(bundle), "failed to connect with seccomp agent")


def test_notify_on_write_refused(pyrunc, bundle, agent):
    notify_profile(bundle, agent.path, ["write"], "true")
    pyrunc.one_line_error(pyrunc.run(bundle),
                          "SCMP_ACT_NOTIFY cannot be used for the write syscall")


def test_metadata_without_listener_refused(pyrunc, bundle):
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "bar"}
    pyrunc.one_line_error(pyrunc.run(bundle), "linux.seccomp.listenerMetadata")


def test_start_container_hook_gets_no_listener(pyrunc, bundle, agent):
    """runc's check: a startContainer hook sees only its stdio (+ the fd ls opens)."""
    notify_profile(bundle, agent.path, MKDIRS, "true")
    bundle.args("/bin/true")
    bundle.config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": [
        "sh", "-c", "n=$(ls /proc/self/fd | wc -l); [ $n -eq 4 ] || { ls -l /proc/self/fd; "
                    "exit 1; }"]}]}
    res = pyrunc.run(bundle)
    assert res.returncode == 0, res.stderr


def test_features_advertise_notify(pyrunc):
    doc = json.loads(pyrunc.ok("features").stdout)["linux"]["seccomp"]
    assert "SCMP_ACT_NOTIFY" in doc["actions"]
    assert "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" in doc["supportedFlags"]
