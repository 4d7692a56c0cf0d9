"""Process hygiene: signals, fds, dumpability, stdio pass-through, reparenting."""
import errno
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.integration

CAP_SYS_PTRACE = 19


def _fds(pid: int) -> dict[int, str]:
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            pass
    return out


def _fd_flags(pid: int, fd: int) -> int:
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("flags:"):
                return int(line.split()[1], 8)
    raise AssertionError("no flags in fdinfo")


@pytest.mark.parametrize("mode", ["run", "create-start"])
def test_signal_masks_clean(pyrunc, bundle, tmp_path, mode):
    bundle.args("grep", "^Sig", "/proc/self/status")
    if mode == "run":
        out = pyrunc.run_ok(bundle)
    else:
        out_file = tmp_path / "stdout"
        with open(out_file, "w") as f:
            cid, _ = pyrunc.create(bundle, stdout=f)
        pyrunc.ok("start", cid)
        pyrunc.wait_status(cid, "stopped")
        out = out_file.read_text()
    fields = pyrunc.status_fields(out)
    assert int(fields["SigIgn"], 16) == 0, f"ignored signals leak into the container: {fields['SigIgn']}"
    assert int(fields["SigBlk"], 16) == 0, f"blocked signals leak into the container: {fields['SigBlk']}"


def test_sigpipe_not_ignored(pyrunc, bundle):
    bundle.sh('(yes; echo "yes-exit=$?" >&2) | head -n 1')
    res = pyrunc.run(bundle, timeout=20)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "y\n"
    assert "yes-exit=141" in res.stderr, "yes was not killed by SIGPIPE: " + res.stderr


def test_no_leaked_fds(pyrunc, bundle, tmp_path):
    # an fd of the runtime's caller that is not to be preserved
    leak_path = str(tmp_path / "callers-private-file")
    leak = os.open(leak_path, os.O_CREAT | os.O_RDWR)
    os.set_inheritable(leak, True)
    try:
        cid, _ = pyrunc.create(bundle, pass_fds=(leak,))
    finally:
        os.close(leak)
    pid = pyrunc.state(cid)["pid"]
    fds = _fds(pid)
    assert {0, 1, 2} <= set(fds)
    for fd in set(fds) - {0, 1, 2}:
        # the exec fifo may be held while created, but must not survive execve
        assert _fd_flags(pid, fd) & os.O_CLOEXEC, f"fd {fd} -> {fds[fd]} is inheritable"
        assert fds[fd] != leak_path, f"caller's fd {fd} reached the container"
    pyrunc.ok("start", cid)
    assert pyrunc.wait_until(lambda: os.readlink(f"/proc/{pid}/exe").endswith("busybox"))
    fds = _fds(pid)
    assert sorted(fds) == [0, 1, 2], fds


def test_preserve_fds(pyrunc, bundle, tmp_path):
    files = [tmp_path / f"fd{n}" for n in (3, 4, 5)]
    opened = [os.open(p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC) for p in files]

    def place():
        for n, fd in zip((3, 4, 5), opened):
            os.dup2(fd, n)

    bundle.sh("echo three >&3; echo four >&4; { echo five >&5; } 2>/dev/null || echo no-five")
    try:
        res = pyrunc.run(bundle, "--preserve-fds", "2", preexec_fn=place, pass_fds=(3, 4, 5))
    finally:
        for fd in opened:
            os.close(fd)
    assert res.returncode == 0, res.stderr
    assert files[0].read_text() == "three\n"
    assert files[1].read_text() == "four\n"
    assert files[2].read_text() == ""
    assert res.stdout == "no-five\n"


def _ptrace_readable(pid: int) -> bool:
    """Open /proc/<pid>/mem from a forked child that is still uid 0 but lacks
    CAP_SYS_PTRACE: the kernel's ptrace access check then lets a same-uid
    caller in only if the target is dumpable. (Verified by probe_is_sound:
    /proc/<pid>/environ is *not* a usable probe, the kernel allows it.)"""
    from pyrunc import native
    child = os.fork()
    if child == 0:
        code = 3
        try:
            eff, prm, inh = native.capget()
            bit = 1 << CAP_SYS_PTRACE
            native.capset(eff & ~bit, prm & ~bit, inh & ~bit)
            try:
                os.close(os.open(f"/proc/{pid}/mem", os.O_RDONLY))
                code = 0
            except OSError as e:
                code = 1 if e.errno in (errno.EACCES, errno.EPERM) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 1), f"probe failed ({code})"
    return code == 0


@pytest.fixture(scope="module")
def probe_is_sound():
    """Controls: two uid-0 processes with few capabilities, one made non-dumpable."""
    base = ["setpriv", "--inh-caps=-all", "--bounding-set=-all,+kill", "--", sys.executable, "-c"]
    body = "import ctypes, sys, time; ctypes.CDLL(None).prctl(4, {}, 0, 0, 0); print(1, flush=True); time.sleep(60)"
    procs = [subprocess.Popen(base + [body.format(d)], stdout=subprocess.PIPE) for d in (1, 0)]
    try:
        for p in procs:
            p.stdout.readline()
        assert _ptrace_readable(procs[0].pid), "probe: a dumpable process looks non-dumpable"
        assert not _ptrace_readable(procs[1].pid), "probe: a non-dumpable process looks dumpable"
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_created_init_is_not_dumpable(pyrunc, bundle, probe_is_sound):
    cid, _ = pyrunc.create(bundle)
    pid = pyrunc.state(cid)["pid"]
    assert not _ptrace_readable(pid), "the created init (still the runtime's code) is dumpable"
    pyrunc.ok("start", cid)
    assert pyrunc.wait_until(lambda: os.readlink(f"/proc/{pid}/exe").endswith("busybox"))
    # control: the user's program, once exec'd, is an ordinary dumpable process
    assert _ptrace_readable(pid)


def _read_until_eof(fd: int, timeout: float = 10.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                return data
            data += chunk
    raise AssertionError(f"no EOF within {timeout}s, got {data!r}")


def test_stdio_is_the_runtimes(pyrunc, bundle):
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    bundle.sh("read line; echo out:$line; echo err >&2")
    try:
        cid, res = pyrunc.create(bundle, stdin=in_r, stdout=out_w, stderr=err_w)
        pid = pyrunc.state(cid)["pid"]
        fds = _fds(pid)
        assert fds[0] == f"pipe:[{os.fstat(in_r).st_ino}]"
        assert fds[1] == f"pipe:[{os.fstat(out_w).st_ino}]"
        assert fds[2] == f"pipe:[{os.fstat(err_w).st_ino}]"
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        in_r = out_w = err_w = -1
        # nothing written by create itself
        assert select.select([out_r, err_r], [], [], 0)[0] == []
        pyrunc.ok("start", cid)
        os.write(in_w, b"hello\n")
        os.close(in_w)
        in_w = -1
        assert _read_until_eof(out_r) == b"out:hello\n"
        assert _read_until_eof(err_r) == b"err\n"
    finally:
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
            if fd >= 0:
                os.close(fd)


SUBREAPER_SCRIPT = textwrap.dedent("""
    import json, os, subprocess, sys
    from pyrunc import native
    binary, root, bundle, cid = sys.argv[1:5]
    native.prctl(native.PR_SET_CHILD_SUBREAPER, 1)
    pid_file = os.path.join(os.path.dirname(root), "sub.pid")
    subprocess.run([binary, "--root", root, "create", "--bundle", bundle, "--pid-file", pid_file,
                    cid], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    pid = int(open(pid_file).read())
    with open(f"/proc/{pid}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    subprocess.run([binary, "--root", root, "kill", cid, "KILL"], check=True)
    waited, status = os.waitpid(pid, 0)
    print(json.dumps({"me": os.getpid(), "pid": pid, "ppid": ppid, "waited": waited,
                      "signaled": os.WIFSIGNALED(status),
                      "sig": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}))
""")


def test_init_is_reparented_to_subreaper(pyrunc, bundle):
    bundle.write()
    cid = pyrunc.new_id()
    # -P: a clean clone has no compiled _native in the source tree; use the installed pyrunc
    res = subprocess.run([sys.executable, "-P", "-c", SUBREAPER_SCRIPT, pyrunc.binary, pyrunc.root,
                          bundle.path, cid], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["ppid"] == info["me"], "init is not a child of the subreaper after create"
    assert info["waited"] == info["pid"]
    assert info["signaled"] and info["sig"] == signal.SIGKILL
    st = pyrunc.state(cid)
    assert (st["status"], st["pid"]) == ("stopped", 0)
    pyrunc.ok("delete", cid)
