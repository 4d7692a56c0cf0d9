"""OCI hooks: the six kinds, their order, their stdin state, args/env/timeout,
and what a failing hook does to the lifecycle (runtime-spec runtime.md,
config.md#posix-platform-hooks).

Host-namespace hooks run the host's /bin/sh; createContainer runs in the
container's namespaces before pivot_root (host paths still resolve);
startContainer runs inside the container, so it uses the rootfs' /bin/sh and
writes into a bind-mounted directory.
"""
import json
import os
import subprocess
import tempfile
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

HOST_KINDS = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")


# --- helpers -------------------------------------------------------------------------------

def logging_hook(log: str, name: str, **extra) -> dict:
    """Appends `<name> <mount ns> <stdin JSON>` to `log`."""
    script = f'state=$(cat); echo "{name} $(readlink /proc/self/ns/mnt) $state" >> {log}'
    return {"path": "/bin/sh", "args": ["sh", "-c", script], **extra}


def failing_hook(name: str, code: int = 3) -> dict:
    return {"path": "/bin/sh", "args": ["sh", "-c", f"echo {name} says no >&2; exit {code}"]}


class HookLog:
    """tmp/out/log on the host, /out/log in the container."""

    def __init__(self, tmp_path, bundle):
        self.dir = tmp_path / "hooks"
        self.dir.mkdir()
        self.path = self.dir / "log"
        bundle.bind(self.dir, "/out")

    def host(self, name: str, **extra) -> dict:
        return logging_hook(str(self.path), name, **extra)

    def inside(self, name: str, **extra) -> dict:
        return logging_hook("/out/log", name, **extra)

    def entries(self) -> list[tuple[str, str, dict | None]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            parts = line.split(" ", 2)
            name, ns = parts[0], parts[1] if len(parts) > 1 else ""
            state = json.loads(parts[2]) if len(parts) > 2 and parts[2].startswith("{") else None
            out.append((name, ns, state))
        return out

    def names(self) -> list[str]:
        return [e[0] for e in self.entries()]

    def by_name(self) -> dict:
        return {name: (ns, state) for name, ns, state in self.entries()}


@pytest.fixture
def hooklog(tmp_path, bundle) -> HookLog:
    return HookLog(tmp_path, bundle)


def host_mnt() -> str:
    return os.readlink("/proc/self/ns/mnt")


def gone(pyrunc, cid) -> bool:
    res = pyrunc("state", cid)
    return res.returncode == 1 and "container does not exist" in res.stderr


# --- order and state ------------------------------------------------------------------------

def test_all_hooks_order_and_state(pyrunc, bundle, hooklog):
    bundle.config["hooks"] = {
        "prestart": [hooklog.host("prestart")],
        "createRuntime": [hooklog.host("createRuntime")],
        "createContainer": [hooklog.host("createContainer")],
        "startContainer": [hooklog.inside("startContainer")],
        "poststart": [hooklog.host("poststart")],
        "poststop": [hooklog.host("poststop")],
    }
    bundle.config["annotations"] = {"org.example.key": "value"}
    bundle.sh('echo "program $(readlink /proc/self/ns/mnt)" >> /out/log; exec sleep 1000')

    cid, _ = pyrunc.create(bundle)
    st = pyrunc.state(cid)
    pid = st["pid"]
    init_mnt = os.readlink(f"/proc/{pid}/ns/mnt")
    assert init_mnt != host_mnt()
    assert hooklog.names() == ["createRuntime", "createContainer"]

    pyrunc.ok("start", cid)
    assert pyrunc.wait_until(lambda: "program" in hooklog.names())
    names = hooklog.names()
    assert names[:3] == ["createRuntime", "createContainer", "prestart"], names
    assert sorted(names[3:]) == ["poststart", "program", "startContainer"], names
    assert names.index("startContainer") < names.index("program"), names
    assert "poststop" not in names

    pyrunc.ok("kill", cid, "KILL")
    pyrunc.wait_status(cid, "stopped")
    time.sleep(0.1)
    assert "poststop" not in hooklog.names(), "poststop ran before delete"
    res = pyrunc.ok("delete", cid)
    assert res.stderr == ""
    assert hooklog.names()[-1] == "poststop"
    assert hooklog.names().count("poststop") == 1

    entries = hooklog.by_name()
    expected_status = {"createRuntime": "creating", "createContainer": "created",
                       "prestart": "created", "startContainer": "created",
                       "poststart": "running", "poststop": "stopped"}
    for kind, status in expected_status.items():
        ns, state = entries[kind]
        assert state is not None, f"{kind}: no state on stdin"
        assert state["id"] == cid, (kind, state)
        assert state["status"] == status, (kind, state)
        assert state["bundle"] == bundle.path, (kind, state)
        assert state["ociVersion"], (kind, state)
        assert state.get("annotations") == {"org.example.key": "value"}, (kind, state)
        if kind == "poststop":
            assert state.get("pid", 0) in (0, pid), (kind, state)
        else:
            assert state["pid"] == pid, (kind, state)
    # where each ran: createContainer and startContainer in the container's mount namespace
    for kind in ("createRuntime", "prestart", "poststart", "poststop"):
        assert entries[kind][0] == host_mnt(), kind
    assert entries["createContainer"][0] == init_mnt
    assert entries["startContainer"][0] == init_mnt
    assert entries["program"][0] == init_mnt


def test_create_container_hook_runs_before_pivot(pyrunc, bundle, hooklog, tmp_path):
    # the host's path to a file that does not exist in the rootfs resolves for it
    marker = tmp_path / "host-only"
    marker.write_text("seen\n")
    bundle.config["hooks"] = {"createContainer": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", f"cat {marker} > {hooklog.dir}/cc; "
                             f"readlink /proc/self/ns/pid >> {hooklog.dir}/cc"]}]}
    cid, _ = pyrunc.create(bundle)
    pid = pyrunc.state(cid)["pid"]
    lines = (hooklog.dir / "cc").read_text().splitlines()
    assert lines == ["seen", os.readlink(f"/proc/{pid}/ns/pid")]
    pyrunc.ok("delete", cid)


def test_start_container_hook_runs_inside(pyrunc, bundle, hooklog):
    # /etc/hostname-like evidence: the container's hostname, its /proc, its root
    bundle.config["hooks"] = {"startContainer": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", "hostname > /out/sc; ls /out >> /out/sc; "
                             "test -x /bin/busybox && echo busybox >> /out/sc"]}]}
    bundle.args("true")
    cid, _ = pyrunc.create(bundle)
    assert not (hooklog.dir / "sc").exists(), "startContainer ran at create"
    pyrunc.ok("start", cid)
    assert pyrunc.wait_until(lambda: (hooklog.dir / "sc").exists()
                             and "busybox" in (hooklog.dir / "sc").read_text())
    lines = (hooklog.dir / "sc").read_text().splitlines()
    assert lines[0] == bundle.config["hostname"]
    assert lines[-1] == "busybox"


# --- args, env, timeout ---------------------------------------------------------------------

def test_hook_args_and_env(pyrunc, bundle, hooklog):
    d = hooklog.dir
    with_env = {"path": "/bin/sh",
                "args": ["custom-argv0", "-c", f"/bin/cat /proc/$$/cmdline > {d}/argv; "
                                               f"/bin/cat /proc/$$/environ > {d}/env; "
                                               "echo hook-noise; echo hook-noise >&2", "extra"],
                "env": ["A=1", "B=two words", "PATH=/nowhere"]}
    # (without `env` runc 1.1.5 passes its own environment on: not asserted here)
    bundle.config["hooks"] = {"createRuntime": [with_env]}
    cid, res = pyrunc.create(bundle)
    assert (res.stdout, res.stderr) == ("", ""), "a hook's output leaked to the runtime's stdio"
    assert (d / "argv").read_bytes() == b"\0".join(a.encode() for a in with_env["args"]) + b"\0"
    assert (d / "env").read_bytes().split(b"\0")[:-1] == [b"A=1", b"B=two words", b"PATH=/nowhere"]
    pyrunc.ok("delete", cid)


def test_hook_timeout(pyrunc, bundle, hooklog):
    bundle.config["hooks"] = {
        "createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "10.4321"], "timeout": 1}],
        "createContainer": [hooklog.host("createContainer")],
    }
    t0 = time.monotonic()
    cid, res = pyrunc.create(bundle, check=False)
    elapsed = time.monotonic() - t0
    assert res.returncode == 1
    pyrunc.one_line_error(res, "error running createRuntime hook #0: "
                               "hook ran past specified timeout of 1.0s")
    assert elapsed < 3, f"timeout 1 took {elapsed:.1f}s"
    assert gone(pyrunc, cid)
    assert hooklog.names() == []
    # the hook was killed, not left running
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    assert b"10.4321" not in f.read(), f"timed-out hook {name} still runs"
            except OSError:
                pass


def test_hook_without_timeout_waits(pyrunc, bundle, hooklog):
    bundle.config["hooks"] = {"createRuntime": [{
        "path": "/bin/sh", "args": ["sh", "-c", f"sleep 1.2; echo done > {hooklog.dir}/slow"]}]}
    cid, _ = pyrunc.create(bundle)
    assert (hooklog.dir / "slow").read_text() == "done\n"
    pyrunc.ok("delete", cid)


# --- failures -------------------------------------------------------------------------------

def test_failing_create_runtime_hook(pyrunc, bundle, hooklog):
    bundle.config["hooks"] = {
        "createRuntime": [failing_hook("createRuntime")],
        "createContainer": [hooklog.host("createContainer")],
        "prestart": [hooklog.host("prestart")],
    }
    cid, res = pyrunc.create(bundle, check=False)
    assert res.returncode == 1
    line = pyrunc.one_line_error(res, "createRuntime says no")
    # runc's words, the hook's output on the same line
    assert line == ("pyrunc create failed: unable to start container process: error during "
                    "container init: error running createRuntime hook #0: exit status 3, "
                    "stdout: , stderr: createRuntime says no"), line
    assert gone(pyrunc, cid)
    assert not os.path.exists(os.path.join(pyrunc.root, cid))
    assert [n for n in hooklog.names() if n in ("createContainer", "prestart")] == []


def test_failing_create_container_hook(pyrunc, bundle, hooklog):
    bundle.config["hooks"] = {
        "createContainer": [failing_hook("createContainer")],
        "startContainer": [hooklog.inside("startContainer")],
    }
    cid, res = pyrunc.create(bundle, check=False)
    assert res.returncode == 1
    pyrunc.one_line_error(res, "pyrunc create failed: unable to start container process: "
                               "error during container init: error running createContainer hook #0: "
                               "exit status 3")
    assert gone(pyrunc, cid)
    assert hooklog.names() == []


def test_failing_prestart_hook(pyrunc, bundle, hooklog):
    bundle.config["hooks"] = {
        "prestart": [failing_hook("prestart"), hooklog.host("prestart-after")],
        "startContainer": [hooklog.inside("startContainer")],
        "poststart": [hooklog.host("poststart")],
        "poststop": [hooklog.host("poststop")],
    }
    bundle.sh('echo "program x" >> /out/log; exec sleep 1000')
    cid, _ = pyrunc.create(bundle)
    pid = pyrunc.state(cid)["pid"]
    res = pyrunc("start", cid)
    assert res.returncode == 1
    pyrunc.one_line_error(res, "error running prestart hook #0: exit status 3")
    assert gone(pyrunc, cid)
    assert pyrunc.wait_until(lambda: not pyrunc.pid_alive(pid))
    names = hooklog.names()
    for never in ("prestart-after", "startContainer", "poststart", "program"):
        assert never not in names, names
    # the container was stopped and destroyed: lifecycle continues at delete (poststop)
    assert names == ["poststop"], names


def test_failing_poststart_hook_fails_start(pyrunc, bundle, hooklog):
    """runtime-spec 1.3 (#1262) and runc 1.5: a failing poststart hook is an
    error; the container is stopped and destroyed (poststop hooks run)."""
    bundle.config["hooks"] = {
        "poststart": [failing_hook("poststart"), hooklog.host("poststart-second")],
        "poststop": [hooklog.host("poststop")],
    }
    cid, _ = pyrunc.create(bundle)
    init = pyrunc.state(cid)["pid"]
    res = pyrunc("start", cid)
    # runc 1.5's words: "error running poststart hook #0: exit status 3, stdout: , stderr: …"
    pyrunc.one_line_error(res, "error running poststart hook #0: exit status 3")
    assert hooklog.names() == ["poststop"]
    assert not pyrunc.pid_alive(init)
    assert pyrunc("state", cid).returncode != 0


def test_failing_poststop_hook_warns(pyrunc, bundle, hooklog):
    bundle.config["hooks"] = {
        "poststop": [failing_hook("poststop"), hooklog.host("poststop-second")],
    }
    bundle.args("true")
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    pyrunc.wait_status(cid, "stopped")
    res = pyrunc("delete", cid)
    assert res.returncode == 0, res.stderr
    assert "error running poststop hook #0" in res.stderr and "warn" in res.stderr.lower(), \
        res.stderr
    assert gone(pyrunc, cid)
    assert hooklog.names() == ["poststop-second"]


def test_poststop_after_kill_and_delete_of_created_container(pyrunc, bundle, hooklog):
    bundle.config["hooks"] = {"poststop": [hooklog.host("poststop")]}
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("delete", cid)  # a created container: delete kills init, then destroys
    assert hooklog.names() == ["poststop"]
    assert hooklog.by_name()["poststop"][1]["status"] == "stopped"


def test_poststop_runs_on_force_delete_of_running_container(pyrunc, bundle, hooklog):
    bundle.config["hooks"] = {"poststop": [hooklog.host("poststop")]}
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    assert pyrunc("delete", cid).returncode == 1  # running: refused, no hook
    assert hooklog.names() == []
    pyrunc.ok("delete", "--force", cid)
    assert hooklog.names() == ["poststop"]


SLOW_MIDDLE_CREATE = """
import os, sys, time
real_fork, host = os.fork, os.getpid()
def fork():
    pid = real_fork()
    if pid > 0 and os.getpid() != host:   # in the middle process, after forking init
        time.sleep(0.5)
    return pid
os.fork = fork
from pyrunc.container import Container
Container.create(sys.argv[1], sys.argv[2], root=sys.argv[3])
"""


def test_create_hooks_when_middle_reports_pid_late(pyrunc, bundle, hooklog):
    """init may ask for the host's hooks (or be ready) before its parent, the
    middle process, has reported init's pid: message order must not matter.
    White-box: forced by delaying the middle after its fork."""
    bundle.config["hooks"] = {"createRuntime": [hooklog.host("createRuntime")],
                              "createContainer": [hooklog.host("createContainer")]}
    bundle.write()
    cid = pyrunc.new_id()
    # not pipes: the created container's init keeps create's stdio open
    with tempfile.TemporaryFile("w+") as err:
        # -P: a clean clone has no compiled _native in the source tree; use the installed pyrunc
        res = subprocess.run([sys.executable, "-P", "-c", SLOW_MIDDLE_CREATE, cid, bundle.path,
                              pyrunc.root], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=err, timeout=30)
        err.seek(0)
        assert (res.returncode, err.read()) == (0, ""), res
    pid = pyrunc.state(cid)["pid"]
    assert hooklog.names() == ["createRuntime", "createContainer"]
    assert hooklog.by_name()["createRuntime"][1]["pid"] == pid


# --- runc 1.2+ behaviours: messages, the second of several, cwd, env, seccomp ----------------

RUNC_PREFIX = "unable to start container process: error during container init: "


def test_second_create_runtime_hook_fails_create(pyrunc, bundle):
    """runc's hooks.bats: the failing hook is named by its index among its kind."""
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/true"}, {"path": "/bin/false"}]}
    cid, res = pyrunc.create(bundle, check=False)
    assert res.returncode == 1
    line = pyrunc.one_line_error(res)
    assert line == ("pyrunc create failed: " + RUNC_PREFIX + "error running createRuntime "
                    "hook #1: exit status 1, stdout: , stderr: "), line
    assert gone(pyrunc, cid)


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer", "prestart", "startContainer"])
def test_run_fails_on_failing_hook(pyrunc, bundle, hooklog, kind):
    """runc's "run [hook fails]": the program never runs, run fails with runc's
    message (startContainer: the init's own, exit status 255), nothing is left."""
    bundle.config["hooks"] = {kind: [{"path": "/bin/true"},
                                     {"path": "/bin/sh", "args": ["sh", "-c", "echo o; echo e >&2; exit 4"]}]}
    bundle.sh('echo program >> /out/log')
    res = pyrunc.run(bundle)
    why = "error running " + kind + " hook #1: exit status 4, stdout: o, stderr: e"
    if kind == "startContainer":
        assert res.returncode == 255
        assert pyrunc.one_line_error(res) == why
    else:
        assert res.returncode == 1
        assert pyrunc.one_line_error(res) == "pyrunc run failed: " + RUNC_PREFIX + why
    assert "program" not in hooklog.names()
    assert pyrunc.ok("list", "-q").stdout == ""


def test_hook_that_cannot_be_executed(pyrunc, bundle):
    bundle.config["hooks"] = {"createRuntime": [{"path": "/nonexistent/hook"}]}
    res = pyrunc.run(bundle)
    assert res.returncode == 1
    pyrunc.one_line_error(res, "error running createRuntime hook #0: "
                               "fork/exec /nonexistent/hook: no such file or directory")


def test_hook_killed_by_a_signal(pyrunc, bundle):
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "kill -9 $$"]}]}
    res = pyrunc.run(bundle)
    pyrunc.one_line_error(res, "error running createRuntime hook #0: signal: killed, stdout: , stderr: ")


def test_hooks_working_directories(pyrunc, bundle, hooklog, tmp_path):
    """createContainer runs in the container's rootfs (runc: relative paths
    resolve inside it), startContainer in the process's cwd, the runtime's
    own hooks in the bundle (runc chdirs there)."""
    rootfs = bundle.private_rootfs()
    (rootfs / "marker-in-rootfs").write_text("rootfs\n")
    (rootfs / "tmp" / "marker-in-cwd").write_text("cwd\n")
    (bundle.dir / "marker-in-bundle").write_text("bundle\n")
    d = hooklog.dir

    def hook(name, marker, out):
        return {"path": "/bin/sh", "args": ["sh", "-c", f"echo {name} $(cat {marker}) $(pwd) >> {out}"]}
    bundle.config["hooks"] = {
        "createRuntime": [hook("createRuntime", "marker-in-bundle", d / "log")],
        "createContainer": [hook("createContainer", "marker-in-rootfs", d / "log")],
        "prestart": [hook("prestart", "marker-in-bundle", d / "log")],
        "startContainer": [hook("startContainer", "marker-in-cwd", "/out/log")],
        "poststart": [hook("poststart", "marker-in-bundle", d / "log")],
        "poststop": [hook("poststop", "marker-in-bundle", d / "log")],
    }
    bundle.process["cwd"] = "/tmp"
    bundle.args("true")
    pyrunc.run_ok(bundle)
    seen = {line.split()[0]: line.split()[1:] for line in (d / "log").read_text().splitlines()}
    assert seen == {
        "createRuntime": ["bundle", bundle.path],
        "createContainer": ["rootfs", str(rootfs)],
        "prestart": ["bundle", bundle.path],
        "startContainer": ["cwd", "/tmp"],
        "poststart": ["bundle", bundle.path],
        "poststop": ["bundle", bundle.path],
    }, seen


def test_start_container_hook_inherits_process_environment(pyrunc, bundle, hooklog):
    """runc's hooks.bats (runc 1.2+): without `env` of its own a startContainer
    hook gets the process's environment, HOME included; with one, only that."""
    bundle.process["env"] = ["ONE=two", "FOO=bar", "PATH=/bin"]
    bundle.config["hooks"] = {"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "env | sort > /out/inherited"]},
        {"path": "/bin/sh", "args": ["sh", "-c", "env | sort > /out/own"], "env": ["MINE=1"]}]}
    bundle.args("true")
    pyrunc.run_ok(bundle)
    inherited = (hooklog.dir / "inherited").read_text().split()
    assert {"ONE=two", "FOO=bar", "PATH=/bin", "HOME=/root"} <= set(inherited), inherited
    assert "MINE=1" in (hooklog.dir / "own").read_text().split()
    assert "ONE=two" not in (hooklog.dir / "own").read_text().split()


def test_runtime_hooks_inherit_the_runtime_environment(pyrunc, bundle, hooklog):
    """Hooks the runtime runs itself get its environment when they have none (Go's exec)."""
    bundle.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"echo $PYRUNC_HOOK_TEST > {hooklog.dir}/rt"]}]}
    env = dict(os.environ, PYRUNC_HOOK_TEST="from-the-caller")
    cid, _ = pyrunc.create(bundle, env=env)
    assert (hooklog.dir / "rt").read_text() == "from-the-caller\n"
    pyrunc.ok("delete", cid)


def test_start_container_hook_runs_under_seccomp(pyrunc, bundle):
    """runc's seccomp.bats: the startContainer hooks run under the container's
    filter (here with noNewPrivileges, where the filter is otherwise loaded last)."""
    assert bundle.process.get("noNewPrivileges") is True
    bundle.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]}
    bundle.process["rlimits"] = [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    bundle.config["hooks"] = {"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "mkdir /dev/shm/foo"]}]}
    bundle.args("true")
    res = pyrunc.run(bundle)
    assert res.returncode == 255
    pyrunc.one_line_error(res, "error running startContainer hook #0: ", "bad system call")
    bundle.process["noNewPrivileges"] = False
    res = pyrunc.run(bundle)
    assert res.returncode == 255
    pyrunc.one_line_error(res, "error running startContainer hook #0: ", "bad system call")


def test_hooks_in_the_host_mount_namespace(pyrunc, bundle):
    """runc's host-mntns.bats: with no mount namespace the createRuntime hook
    runs exactly once (in the bundle), and the container runs."""
    rootfs = bundle.private_rootfs()
    bundle.remove_namespace("mount")
    bundle.linux["maskedPaths"] = []
    bundle.linux["readonlyPaths"] = []
    bundle.config["root"]["readonly"] = False
    bundle.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sh", "args": ["/bin/sh", "-c", "touch createRuntimeHook.$$"]}],
        "createContainer": [{"path": "/bin/sh", "args": ["/bin/sh", "-c", "touch createContainerHook.$$"]}]}
    bundle.args("/bin/echo", "Hello World")
    assert pyrunc.run_ok(bundle) == "Hello World\n"
    assert len(list(bundle.dir.glob("createRuntimeHook.*"))) == 1
    assert len(list(rootfs.glob("createContainerHook.*"))) == 1
