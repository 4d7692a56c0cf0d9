"""`pyrunc exec`: a process joining a running container (runc 1.1.5 semantics).

Each test starts one `sleep 1000` container and execs short-lived processes
into it; detached execs are collected by the test process as subreaper.
"""
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from pyrunc import native

pytestmark = pytest.mark.integration

PR_SET_CHILD_SUBREAPER = 36
CAP_KILL, CAP_NET_RAW, CAP_AUDIT_WRITE, CAP_NET_BIND_SERVICE = 5, 13, 29, 10
NS_SCRIPT = "for n in pid net ipc uts mnt cgroup user; do echo $n $(readlink /proc/self/ns/$n); done"
# runc 1.1.5 says 'exec failed: unable to start container process: exec: "nope": …';
# callers (podman) match 'executable file not found in'
NOT_FOUND = 'exec: "nope": executable file not found in $PATH'


# --- helpers -------------------------------------------------------------------------------

def start(pyrunc, bundle, *argv) -> tuple[str, int]:
    """create + start a container running argv (default `sleep 1000`); (id, init pid)."""
    bundle.args(*(argv or ("sleep", "1000")))
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    return cid, pyrunc.state(cid)["pid"]


def exec_(pyrunc, cid, *argv, flags=(), **kw) -> subprocess.CompletedProcess:
    return pyrunc("exec", *flags, cid, *argv, **kw)


def exec_ok(pyrunc, cid, *argv, flags=(), **kw) -> str:
    res = exec_(pyrunc, cid, *argv, flags=flags, **kw)
    assert res.returncode == 0, f"exec {argv} -> {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    assert res.stderr == "", res.stderr
    return res.stdout


def ns_lines(text: str) -> dict:
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)


def environ_of(text: str) -> list[str]:
    return [e for e in text.split("\0") if e]


def status_mask(fields: dict, key: str) -> int:
    return int(fields[key], 16)


@contextlib.contextmanager
def subreaper():
    """Make the test process the child subreaper for the block; reaps leftovers."""
    native.prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield
    finally:
        native.prctl(PR_SET_CHILD_SUBREAPER, 0)


def reap(pid: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        assert time.monotonic() < deadline, f"{pid} did not exit"
        time.sleep(0.01)


def freezer_state_file(init_pid: int) -> str:
    with open(f"/proc/{init_pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "freezer" in controllers.split(","):
                return f"/sys/fs/cgroup/freezer{path}/freezer.state"
    pytest.skip("no cgroup v1 freezer for this container")


def dup_to(mapping: dict):
    """preexec_fn: dup2 each fd onto its wanted number (numbers must be in pass_fds)."""
    def fn():
        for want, have in mapping.items():
            os.dup2(have, want)
    return fn


# --- output, status ------------------------------------------------------------------------

def test_exec_output_and_exit_code(pyrunc, bundle):
    cid, _ = start(pyrunc, bundle)
    res = exec_(pyrunc, cid, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (res.returncode, res.stdout, res.stderr) == (7, "out\n", "err\n")
    assert exec_ok(pyrunc, cid, "true") == ""
    # still running afterwards; an exec'd process does not end the container
    assert pyrunc.state(cid)["status"] == "running"


def test_exec_killed_by_signal(pyrunc, bundle):
    cid, _ = start(pyrunc, bundle)
    res = exec_(pyrunc, cid, "sh", "-c", "kill -9 $$")
    assert res.returncode == 128 + 9, res.stderr
    assert pyrunc.state(cid)["status"] == "running"


# --- namespaces and cgroup ----------------------------------------------------------------

@pytest.fixture
def traversable_rootfs(pyrunc, base_rootfs):
    """A rootfs copy a mapped (non-host-root) uid can reach: pytest's tmp dirs are 0700."""
    top = tempfile.mkdtemp(prefix="pyrunc-exec-")
    os.chmod(top, 0o755)
    dest = os.path.join(top, "rootfs")
    subprocess.run(["cp", "-a", base_rootfs, dest], check=True)
    pyrunc.extra_paths.append(top)
    yield dest
    shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("variant", ["default", "cgroupns", "userns"])
def test_exec_joins_every_namespace(pyrunc, bundle, variant, request):
    expected = ["pid", "net", "ipc", "uts", "mnt"]
    if variant in ("cgroupns", "userns"):
        bundle.add_namespace("cgroup")
        expected.append("cgroup")
    if variant == "userns":
        bundle.config["root"]["path"] = request.getfixturevalue("traversable_rootfs")
        bundle.add_namespace("user")
        bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        expected.append("user")
    cid, pid = start(pyrunc, bundle)
    inner = ns_lines(exec_ok(pyrunc, cid, "sh", "-c", NS_SCRIPT))
    for n in ("pid", "net", "ipc", "uts", "mnt", "cgroup", "user"):
        theirs = os.readlink(f"/proc/{pid}/ns/{n}")
        assert inner[n] == theirs, f"{n}: exec'd {inner[n]} != init {theirs}"
        if n in expected:
            assert theirs != os.readlink(f"/proc/self/ns/{n}"), f"{n} is not private"
        else:
            assert theirs == os.readlink(f"/proc/self/ns/{n}"), n
    if variant == "userns":
        out = exec_ok(pyrunc, cid, "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g")
        lines = [line.split() for line in out.splitlines()]
        assert lines[:2] == [["0", "100000", "65536"]] * 2
        assert lines[2:] == [["0"], ["0"]]
        # seen from the host the exec'd process runs as the mapped uid
        with subreaper():
            pid_file = pyrunc.tmp / "u.pid"
            exec_ok(pyrunc, cid, "sleep", "1000", flags=("--detach", "--pid-file", pid_file))
            epid = int(pid_file.read_text())
            try:
                fields = pyrunc.status_fields(open(f"/proc/{epid}/status").read())
                assert fields["Uid"].split()[0] == "100000"
                assert fields["Gid"].split()[0] == "100000"
            finally:
                os.kill(epid, signal.SIGKILL)
                reap(epid)


def test_exec_in_container_cgroup(pyrunc, bundle):
    cid, pid = start(pyrunc, bundle)
    with open(f"/proc/{pid}/cgroup") as f:
        init_cgroups = f.read()
    assert cid in init_cgroups
    assert exec_ok(pyrunc, cid, "cat", "/proc/self/cgroup") == init_cgroups


# --- process attributes from flags ---------------------------------------------------------

def test_exec_user_and_additional_gids(pyrunc, bundle):
    cid, _ = start(pyrunc, bundle)
    out = exec_ok(pyrunc, cid, "grep", "-E", "^(Uid|Gid|Groups):", "/proc/self/status",
                  flags=("--user", "65534:65534", "--additional-gids", "10",
                         "--additional-gids", "20"))
    fields = pyrunc.status_fields(out)
    assert fields["Uid"].split() == ["65534"] * 4
    assert fields["Gid"].split() == ["65534"] * 4
    assert fields["Groups"].split() == ["10", "20"]
    # uid alone: gid 0, no supplementary groups
    fields = pyrunc.status_fields(exec_ok(pyrunc, cid, "grep", "-E", "^(Uid|Gid|Groups):",
                                          "/proc/self/status", flags=("-u", "1000")))
    assert fields["Uid"].split()[0] == "1000" and fields["Gid"].split()[0] == "0"
    assert fields["Groups"] == ""


def test_exec_cwd(pyrunc, bundle):
    cid, _ = start(pyrunc, bundle)
    assert exec_ok(pyrunc, cid, "pwd", flags=("--cwd", "/tmp")) == "/tmp\n"
    assert exec_ok(pyrunc, cid, "pwd") == "/\n"  # the config's cwd


def test_exec_env_added_to_config_env(pyrunc, bundle):
    cid, _ = start(pyrunc, bundle)
    env = environ_of(exec_ok(pyrunc, cid, "cat", "/proc/self/environ",
                             flags=("--env", "FOO=bar", "--env", "EMPTY=")))
    for entry in bundle.process["env"]:
        assert entry in env
    assert "FOO=bar" in env and "EMPTY=" in env
    assert "HOME=/root" in env  # runc: from /etc/passwd of the exec'd user


def test_exec_env_overrides_config_env(pyrunc, bundle):
    # runc: a later entry replaces an earlier one with the same name (no duplicates)
    assert "TERM=xterm" in bundle.process["env"]
    cid, _ = start(pyrunc, bundle)
    env = environ_of(exec_ok(pyrunc, cid, "cat", "/proc/self/environ",
                             flags=("--env", "TERM=dumb")))
    assert [e for e in env if e.startswith("TERM=")] == ["TERM=dumb"], env


def test_exec_cap_adds_capability(pyrunc, bundle):
    cid, pid = start(pyrunc, bundle)
    base = pyrunc.status_fields(exec_ok(pyrunc, cid, "cat", "/proc/self/status"))
    assert not status_mask(base, "CapEff") & (1 << CAP_NET_RAW)
    fields = pyrunc.status_fields(exec_ok(pyrunc, cid, "cat", "/proc/self/status",
                                          flags=("--cap", "CAP_NET_RAW")))
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert status_mask(fields, key) == status_mask(base, key) | (1 << CAP_NET_RAW), key
    # the container's init is not affected
    init = pyrunc.status_fields(open(f"/proc/{pid}/status").read())
    assert not status_mask(init, "CapBnd") & (1 << CAP_NET_RAW)


def test_exec_no_new_privs_flag(pyrunc, bundle):
    bundle.process["noNewPrivileges"] = False
    cid, _ = start(pyrunc, bundle)
    grep = ("grep", "^NoNewPrivs:", "/proc/self/status")
    assert exec_ok(pyrunc, cid, *grep).split() == ["NoNewPrivs:", "0"]
    assert exec_ok(pyrunc, cid, *grep, flags=("--no-new-privs",)).split() == ["NoNewPrivs:", "1"]


# --- --process FILE -------------------------------------------------------------------------

def test_exec_process_file(pyrunc, bundle, tmp_path):
    cid, _ = start(pyrunc, bundle)
    script = ("cat /proc/$$/environ; echo; id -u; id -g; id -G; pwd; ulimit -n; ulimit -Hn; "
              "grep -E '^(CapBnd|CapEff|NoNewPrivs):' /proc/self/status")
    env = ["PATH=/bin:/usr/bin", "A=1", "HOME=/home/x"]
    process = {
        "args": ["sh", "-c", script],
        "env": env,
        "cwd": "/tmp",
        "user": {"uid": 1000, "gid": 1001, "additionalGids": [5, 7]},
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                         "permitted": ["CAP_KILL"]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}],
        "noNewPrivileges": True,
        "terminal": False,
    }
    pf = tmp_path / "process.json"
    pf.write_text(json.dumps(process))
    out = exec_ok(pyrunc, cid, flags=("--process", pf))
    lines = out.split("\n")
    assert environ_of(lines[0]) == env
    assert lines[1:7] == ["1000", "1001", "1001 5 7", "/tmp", "100", "200"]
    fields = pyrunc.status_fields("\n".join(lines[7:]))
    assert status_mask(fields, "CapBnd") == 1 << CAP_KILL
    assert status_mask(fields, "CapEff") == 0  # a non-root user keeps no effective caps
    assert fields["NoNewPrivs"] == "1"

    # root with a capability set, no_new_privs off
    process.update(user={"uid": 0, "gid": 0}, noNewPrivileges=False,
                   capabilities={k: ["CAP_KILL", "CAP_NET_RAW"]
                                 for k in ("bounding", "effective", "permitted")},
                   args=["grep", "-E", "^(CapEff|CapBnd|NoNewPrivs):", "/proc/self/status"])
    pf.write_text(json.dumps(process))
    fields = pyrunc.status_fields(exec_ok(pyrunc, cid, flags=("-p", pf)))
    assert status_mask(fields, "CapEff") == (1 << CAP_KILL) | (1 << CAP_NET_RAW)
    assert status_mask(fields, "CapBnd") == (1 << CAP_KILL) | (1 << CAP_NET_RAW)
    assert fields["NoNewPrivs"] == "0"


def test_exec_process_file_rlimits(pyrunc, bundle, tmp_path):
    cid, _ = start(pyrunc, bundle)
    process = {
        "args": ["grep", "-E", "^Max (open files|core file size|processes)", "/proc/self/limits"],
        "env": ["PATH=/bin"], "cwd": "/",
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 128},
                    {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096}],
    }
    pf = tmp_path / "p.json"
    pf.write_text(json.dumps(process))
    out = exec_ok(pyrunc, cid, flags=("--process", pf))
    limits = {re.split(r"\s{2,}", x)[0]: re.split(r"\s{2,}", x)[1:3] for x in out.splitlines()}
    assert limits["Max open files"] == ["64", "128"]
    assert limits["Max core file size"] == ["0", "4096"]


def test_exec_process_file_invalid(pyrunc, bundle, tmp_path):
    cid, _ = start(pyrunc, bundle)
    pf = tmp_path / "p.json"
    pf.write_text(json.dumps({"args": ["true"], "cwd": "relative", "env": []}))
    res = exec_(pyrunc, cid, flags=("--process", pf))
    assert res.returncode == 255
    assert "cwd" in pyrunc.one_line_error(res).lower()
    pf.write_text("{not json")
    res = exec_(pyrunc, cid, flags=("--process", pf))
    assert res.returncode == 255
    pyrunc.one_line_error(res)


# --- seccomp --------------------------------------------------------------------------------

@pytest.mark.parametrize("nnp", [True, False])
def test_exec_gets_container_seccomp_profile(pyrunc, bundle, tmp_path, nnp):
    bundle.process["noNewPrivileges"] = nnp
    bundle.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": errno.EPROTO}],
    }
    cid, _ = start(pyrunc, bundle)
    res = exec_(pyrunc, cid, "mkdir", "/dev/shm/x")
    assert res.returncode == 1, res
    assert "Protocol error" in res.stderr
    out = exec_ok(pyrunc, cid, "sh", "-c",
                  "touch /dev/shm/f && echo touched; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status")
    assert out.splitlines()[0] == "touched"
    fields = pyrunc.status_fields(out)
    assert fields["Seccomp"] == "2"
    assert fields["NoNewPrivs"] == ("1" if nnp else "0")
    # the same through --process
    pf = tmp_path / "p.json"
    pf.write_text(json.dumps({"args": ["mkdir", "/dev/shm/y"], "env": ["PATH=/bin"], "cwd": "/",
                              "noNewPrivileges": nnp}))
    res = exec_(pyrunc, cid, flags=("-p", pf))
    assert res.returncode == 1 and "Protocol error" in res.stderr, res


# --- detach, pid file, reparenting ------------------------------------------------------------

def test_exec_detach_pid_file(pyrunc, bundle, tmp_path):
    cid, init_pid = start(pyrunc, bundle)
    pid_file = tmp_path / "exec.pid"
    with subreaper():
        t0 = time.monotonic()
        # the detached process keeps pyrunc's stdio (pass-through): files, not pipes
        res = exec_(pyrunc, cid, "sleep", "1000", flags=("--detach", "--pid-file", pid_file),
                    timeout=15)
        elapsed = time.monotonic() - t0
        assert res.returncode == 0, res.stderr
        assert res.stderr == "" and res.stdout == ""
        assert elapsed < 5, f"exec --detach took {elapsed:.1f}s"
        text = pid_file.read_text()
        assert re.fullmatch(r"[0-9]+", text), repr(text)
        pid = int(text)
        try:
            assert pyrunc.pid_alive(pid)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert f.read() == b"sleep\x001000\x00"
            # reparented to us, the subreaper (pyrunc exec is gone)
            ppid = pyrunc.status_fields(open(f"/proc/{pid}/status").read())["PPid"]
            assert int(ppid) == os.getpid()
            # the container's binary, not the runtime's interpreter
            exe = os.stat(f"/proc/{pid}/exe")
            busybox = os.stat(os.path.join(bundle.rootfs, "bin", "busybox"))
            assert (exe.st_dev, exe.st_ino) == (busybox.st_dev, busybox.st_ino)
            assert "python" not in os.readlink(f"/proc/{pid}/exe")
            # in the container's namespaces and cgroup
            for n in ("pid", "mnt", "net"):
                assert os.readlink(f"/proc/{pid}/ns/{n}") == os.readlink(f"/proc/{init_pid}/ns/{n}")
            with open(f"/proc/{pid}/cgroup") as a, open(f"/proc/{init_pid}/cgroup") as b:
                assert a.read() == b.read()
            # nothing of pyrunc outlives the exec call
            assert not any(c != pid for c in _children(os.getpid()) if _in_cgroup_of(c, cid))
        finally:
            os.kill(pid, signal.SIGKILL)
            assert reap(pid) == -signal.SIGKILL


def test_exec_detach_status_collected_by_subreaper(pyrunc, bundle, tmp_path):
    cid, _ = start(pyrunc, bundle)
    with subreaper():
        # a relative --pid-file resolves against the caller's cwd
        exec_ok(pyrunc, cid, "sh", "-c", "sleep 0.2; exit 9",
                flags=("-d", "--pid-file", "rel.pid"), cwd=tmp_path)
        pid = int((tmp_path / "rel.pid").read_text())
        assert reap(pid) == 9


def test_exec_foreground_forwards_signals(pyrunc, bundle, tmp_path):
    cid, _ = start(pyrunc, bundle)
    out = tmp_path / "out"
    with open(out, "wb") as f:
        proc = subprocess.Popen(
            [pyrunc.binary, "--root", pyrunc.root, "exec", cid, "sh", "-c",
             'trap "echo got-term; exit 4" TERM; echo ready; while :; do sleep 0.05; done'],
            stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
    try:
        assert pyrunc.wait_until(lambda: b"ready" in out.read_bytes(), timeout=10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 4
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.read_bytes().split() == [b"ready", b"got-term"]


SLOW_MIDDLE = """
import os, sys, time
real_fork, host = os.fork, os.getpid()
def fork():
    pid = real_fork()
    if pid > 0 and os.getpid() != host:   # in the middle process, after forking the child
        time.sleep(0.3)
    return pid
os.fork = fork
from pyrunc.container import Container
from pyrunc.container.exec import exec_process
c = Container.load(sys.argv[1], sys.argv[2])
process = dict(c.state.config["process"], args=["sh", "-c", "echo hi; exit 6"], terminal=False)
sys.exit(exec_process(c, process))
"""


def test_exec_when_middle_reports_pid_late(pyrunc, bundle):
    """The exec'd child may be ready before its parent (the middle process)
    has reported the child's pid: the order of those two messages must not
    matter. White-box: forced by delaying the middle after its fork."""
    cid, _ = start(pyrunc, bundle)
    # -P: a clean clone has no compiled _native in the source tree; use the installed pyrunc
    res = subprocess.run([sys.executable, "-P", "-c", SLOW_MIDDLE, cid, pyrunc.root],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert (res.returncode, res.stdout, res.stderr) == (6, "hi\n", ""), res


@pytest.mark.parametrize("style", ["containerd", "conmon"])
def test_exec_process_file_detached_like_callers(pyrunc, bundle, tmp_path, style):
    """The exact invocations of the containerd shim and conmon (contract §1)."""
    cid, init_pid = start(pyrunc, bundle)
    pf = tmp_path / "process.json"
    pf.write_text(json.dumps({"args": ["sh", "-c", "sleep 0.3; exit 12"], "env": ["PATH=/bin"],
                              "cwd": "/", "terminal": False}))
    pid_file = tmp_path / "exec-1.pid"
    if style == "containerd":
        flags = ("--process", pf, "--detach", "--pid-file", pid_file)
    else:
        flags = (f"--pid-file={pid_file}", f"--process={pf}", "--detach")
    with subreaper():
        res = exec_(pyrunc, cid, flags=flags)
        assert res.returncode == 0, res.stderr
        assert (res.stdout, res.stderr) == ("", "")
        text = pid_file.read_text()
        assert re.fullmatch(r"[0-9]+", text), repr(text)
        pid = int(text)
        assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{init_pid}/ns/pid")
        assert reap(pid) == 12
    # a missing executable fails the call itself: 255, no pid file
    pf.write_text(json.dumps({"args": ["nope"], "env": ["PATH=/bin"], "cwd": "/"}))
    pid_file.unlink()
    res = exec_(pyrunc, cid, flags=flags)
    assert res.returncode == 255
    pyrunc.one_line_error(res, NOT_FOUND)
    assert not pid_file.exists()


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _in_cgroup_of(pid: int, cid: str) -> bool:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return cid in f.read()
    except OSError:
        return False


# --- failures -------------------------------------------------------------------------------

def test_exec_missing_executable(pyrunc, bundle, tmp_path):
    cid, _ = start(pyrunc, bundle)
    pid_file = tmp_path / "nope.pid"
    res = exec_(pyrunc, cid, "nope", flags=("--detach", "--pid-file", pid_file))
    assert res.returncode == 255
    line = pyrunc.one_line_error(res, NOT_FOUND)
    assert line.startswith("exec failed: ") and line.endswith(NOT_FOUND), line
    assert not pid_file.exists()
    assert not [p.name for p in tmp_path.iterdir() if "nope.pid" in p.name]  # no temp file either
    # foreground too
    res = exec_(pyrunc, cid, "nope")
    assert res.returncode == 255
    line = pyrunc.one_line_error(res, NOT_FOUND)
    assert line.startswith("exec failed: ") and line.endswith(NOT_FOUND), line
    assert pyrunc.state(cid)["status"] == "running"


def test_exec_stopped_container(pyrunc, bundle):
    cid, _ = start(pyrunc, bundle, "true")
    pyrunc.wait_status(cid, "stopped")
    res = exec_(pyrunc, cid, "true")
    assert res.returncode == 255
    pyrunc.one_line_error(res, "cannot exec in a stopped container")


def test_exec_unknown_container(pyrunc):
    res = exec_(pyrunc, "no-such-container", "true")
    assert res.returncode == 255
    pyrunc.one_line_error(res, "container does not exist")


def test_exec_paused_container(pyrunc, bundle):
    cid, pid = start(pyrunc, bundle)
    state_file = freezer_state_file(pid)
    with open(state_file, "w") as f:
        f.write("FROZEN")
    proc = None
    try:
        assert pyrunc.wait_until(lambda: open(state_file).read().strip() == "FROZEN")
        assert pyrunc.state(cid)["status"] == "paused"
        res = exec_(pyrunc, cid, "true")
        assert res.returncode == 255
        pyrunc.one_line_error(res, "cannot exec in a paused container")
        # --ignore-paused: accepted; the process can only run once thawed (runc blocks too)
        proc = subprocess.Popen([pyrunc.binary, "--root", pyrunc.root, "exec", "--ignore-paused",
                                 cid, "echo", "thawed"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1)
        assert proc.poll() is None, ("exec --ignore-paused failed while paused", proc.communicate())
    finally:
        with open(state_file, "w") as f:
            f.write("THAWED")
    out, err = proc.communicate(timeout=15)
    assert (proc.returncode, out, err) == (0, b"thawed\n", b"")
    assert pyrunc.state(cid)["status"] == "running"


# --- fds, signals ---------------------------------------------------------------------------

def test_exec_only_stdio_fds(pyrunc, bundle, tmp_path):
    cid, _ = start(pyrunc, bundle)
    # give pyrunc inheritable fds 3, 4, 5: none may reach the exec'd process
    f = open(tmp_path / "leak", "w")
    try:
        fd = f.fileno()
        res = exec_(pyrunc, cid, "ls", "-1", "/proc/self/fd", pass_fds=(3, 4, 5),
                    preexec_fn=dup_to({3: fd, 4: fd, 5: fd}))
    finally:
        f.close()
    assert res.returncode == 0, res.stderr
    # 0 1 2 and the directory ls itself opened (the lowest free fd: 3)
    assert res.stdout.split() == ["0", "1", "2", "3"], res.stdout


def test_exec_preserve_fds(pyrunc, bundle, tmp_path):
    cid, _ = start(pyrunc, bundle)
    src = tmp_path / "passed"
    src.write_text("through fd 3\n")
    extra = open(tmp_path / "extra", "w")
    f = open(src)
    try:
        res = exec_(pyrunc, cid, "sh", "-c", "read line <&3; echo \"$line\"; ls -1 /proc/self/fd",
                    flags=("--preserve-fds", "1"), pass_fds=(3, 4),
                    preexec_fn=dup_to({3: f.fileno(), 4: extra.fileno()}))
    finally:
        f.close()
        extra.close()
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split()
    assert res.stdout.splitlines()[0] == "through fd 3"
    # fd 3 passed, fd 4 not (ls's own directory fd is 4)
    assert lines[3:] == ["0", "1", "2", "3", "4"], res.stdout


def test_exec_signals_reset(pyrunc, bundle):
    cid, _ = start(pyrunc, bundle)

    def ignore_and_block():
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM})

    out = exec_ok(pyrunc, cid, "grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status",
                  preexec_fn=ignore_and_block)
    fields = pyrunc.status_fields(out)
    assert status_mask(fields, "SigIgn") == 0, out
    assert status_mask(fields, "SigBlk") == 0, out


# --- runc 1.2+: exec's flags on top of the config's process; its own failures ----------------

def test_exec_cap_raises_ambient_when_config_has_inheritable(pyrunc, bundle):
    """runc: --cap also goes into the ambient set when the config has an
    inheritable set, so a non-root process keeps it (it was dropped before)."""
    caps = bundle.process["capabilities"]
    for name in ("bounding", "effective", "permitted"):
        caps[name].append("CAP_NET_RAW")
    caps["inheritable"] = ["CAP_NET_RAW"]
    cid, _ = start(pyrunc, bundle)
    status = ("grep", "^Cap", "/proc/self/status")
    fields = pyrunc.status_fields(exec_ok(pyrunc, cid, *status, flags=("--user", "1000",
                                                                       "--cap", "CAP_NET_RAW")))
    for key in ("CapAmb", "CapEff", "CapPrm"):
        assert status_mask(fields, key) == 1 << CAP_NET_RAW, (key, fields)
    fields = pyrunc.status_fields(exec_ok(pyrunc, cid, *status, flags=("--user", "1000")))
    assert status_mask(fields, "CapAmb") == status_mask(fields, "CapEff") == 0
    # without an inheritable set: no ambient (it could not be raised), a warning (runc's)
    del caps["inheritable"]
    cid, _ = start(pyrunc, bundle)
    res = exec_(pyrunc, cid, *status, flags=("--user", "1000", "--cap", "CAP_NET_RAW"))
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert status_mask(pyrunc.status_fields(res.stdout), "CapAmb") == 0


def test_exec_user_keeps_the_config_gid_and_groups(pyrunc, bundle):
    """runc: --user uid[:gid] replaces only what it names; --additional-gids add."""
    bundle.process["user"] = {"uid": 0, "gid": 10, "additionalGids": [20]}
    cid, _ = start(pyrunc, bundle)
    ids = ("grep", "-E", "^(Uid|Gid|Groups):", "/proc/self/status")
    fields = pyrunc.status_fields(exec_ok(pyrunc, cid, *ids, flags=("--user", "1000")))
    assert (fields["Uid"].split()[0], fields["Gid"].split()[0], fields["Groups"]) == ("1000", "10", "20")
    fields = pyrunc.status_fields(exec_ok(pyrunc, cid, *ids, flags=("-u", "1000:30", "-g", "40")))
    # (runc 1.5.1 lists 40 twice: its flag parsing repeats a -g value)
    assert (fields["Gid"].split()[0], sorted(set(fields["Groups"].split()))) == ("30", ["20", "40"])
    res = exec_(pyrunc, cid, "true", flags=("--user", "abc"))
    assert res.returncode == 255
    assert pyrunc.one_line_error(res) == \
        'exec failed: bad uid: strconv.Atoi: parsing "abc": invalid syntax'


def test_exec_pid_file_in_missing_directory(pyrunc, bundle, tmp_path):
    """runc: the exec call itself fails (255, "exec failed: open …"), the
    process it started is killed, no pid file is left."""
    cid, _ = start(pyrunc, bundle)
    pid_file = tmp_path / "missing" / "exec.pid"
    for flags in (("--detach",), ()):
        res = exec_(pyrunc, cid, "sleep", "1077", flags=(*flags, "--pid-file", pid_file))
        assert res.returncode == 255
        line = pyrunc.one_line_error(res)
        assert line.startswith(f"exec failed: open {pid_file.parent}/.exec.pid"), line
        assert line.endswith(": no such file or directory"), line
        assert pyrunc.wait_until(lambda: not _cmdlines_in_cgroup(cid, b"1077"))
    assert pyrunc.state(cid)["status"] == "running"


def _cmdlines_in_cgroup(cid: str, needle: bytes) -> list[int]:
    """Pids in the container's cgroup whose command line holds `needle`."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and _in_cgroup_of(int(name), cid):
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if needle in f.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


def test_exec_failures_say_exec_failed(pyrunc, bundle, tmp_path):
    """Every failure of exec itself: "exec failed: …" and status 255 (runc)."""
    res = pyrunc("exec", "no-such-container", "true")
    assert (res.returncode, pyrunc.one_line_error(res)) == (255, "exec failed: container does not exist")
    cid, _ = start(pyrunc, bundle, "true")
    pyrunc.wait_status(cid, "stopped")
    res = pyrunc("exec", cid, "true")
    assert (res.returncode, pyrunc.one_line_error(res)) == \
        (255, "exec failed: cannot exec in a stopped container")
    missing = tmp_path / "missing.json"
    cid, _ = start(pyrunc, bundle)
    res = pyrunc("exec", "--process", missing, cid)
    assert (res.returncode, pyrunc.one_line_error(res)) == \
        (255, f"exec failed: open {missing}: no such file or directory")
