"""Terminals: --console-socket (one SCM_RIGHTS pty master), /dev/console,
consoleSize, stream hygiene, the usage errors, and the foreground pty proxy
of `run` / `exec -t` (runc's docs/terminals.md semantics)."""
import errno
import fcntl
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RECVTTY = REPO / "tests" / "tools" / "recvtty.py"
TIOCGPTN = 0x80045430          # only a pty master answers it
PTS_MAJOR = 136
SIZE = {"height": 31, "width": 97}
NO_SOCKET = "cannot allocate tty if pyrunc will detach without setting console socket"
SOCKET_NO_TTY = "cannot use console socket if pyrunc will not detach or allocate tty"


# --- helpers -------------------------------------------------------------------------------

@pytest.fixture
def listener(fd_listener):
    """The console socket (conftest.FdListener)."""
    return fd_listener


def read_until_eof(fd: int, timeout: float = 10.0, until: bytes | None = None) -> bytes:
    """Read a pty master until EIO/EOF (every slave closed), `until` seen, or the timeout."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError as e:
            if e.errno == errno.EIO:
                break
            raise
        if not chunk:
            break
        out += chunk
        if until is not None and until in out:
            break
    return out


def winsize(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


def pty_number(master: int) -> int:
    return struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]


def terminal_bundle(bundle, script: str, size=SIZE):
    bundle.process["terminal"] = True
    if size is not None:
        bundle.process["consoleSize"] = dict(size)
    bundle.sh(script)
    return bundle


def lines(raw: bytes) -> list[str]:
    return raw.decode(errors="replace").replace("\r\n", "\n").splitlines()


def cli(pyrunc, *args) -> list[str]:
    return [pyrunc.binary, "--root", pyrunc.root, *[str(a) for a in args]]


def run_under_pty(argv, *, size=(40, 120), stdin_data: bytes | None = None,
                  timeout: float = 20.0, on_ready=None) -> tuple[int, bytes, list, list]:
    """Run argv with a fresh pty slave as its stdio; once b"ready" is seen,
    call on_ready(proc, slave) and type stdin_data. Returns (status, output,
    termios before, termios after)."""
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
        before = termios.tcgetattr(slave)
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                start_new_session=True)
        out = b""
        sent = stdin_data is None
        deadline = time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                out += os.read(master, 65536)
                if not sent and b"ready" in out:
                    if on_ready is not None:
                        on_ready(proc, slave)
                    os.write(master, stdin_data)
                    sent = True
            elif proc.poll() is not None:
                break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise AssertionError(f"{argv} did not finish; output so far {out!r}")
        after = termios.tcgetattr(slave)
        return proc.returncode, out, before, after
    finally:
        os.close(master)
        os.close(slave)


# --- create --console-socket ---------------------------------------------------------------

def test_console_socket_sends_pty_master(pyrunc, bundle, listener):
    terminal_bundle(bundle, "tty; stty size; stat -c %t:%T /dev/console $(tty); "
                            "echo to-stderr >&2; ls -1 /proc/self/fd")
    bundle.write()
    cid = pyrunc.new_id()
    # create with pipes: a terminal container must not hold them (go-runc waits for EOF)
    proc = subprocess.Popen(cli(pyrunc, "create", "--bundle", bundle.path, "--console-socket",
                                listener.path, cid),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert (out, err) == (b"", b"")
    master = listener.master()
    try:
        assert os.isatty(master)
        termios.tcgetattr(master)
        n = pty_number(master)
        assert winsize(master) == (SIZE["height"], SIZE["width"])
        assert pyrunc.state(cid)["status"] == "created"
        pyrunc.ok("start", cid)
        got = lines(read_until_eof(master))
    finally:
        os.close(master)
    assert got[0] == f"/dev/pts/{n}"
    assert got[1] == f"{SIZE['height']} {SIZE['width']}"
    # /dev/console is the pts (char 136:N), the same device as the stdio
    assert got[2] == got[3] == f"{PTS_MAJOR:x}:{n:x}", got
    assert got[4] == "to-stderr"
    assert got[5:] == ["0", "1", "2", "3"], got
    pyrunc.wait_status(cid, "stopped")


def test_console_socket_master_is_only_fd_and_stdio_are_slave(pyrunc, bundle, listener):
    terminal_bundle(bundle, "for i in 0 1 2; do readlink /proc/self/fd/$i; done; "
                            "grep -E '^(Tgid|NSsid|NSpgid):' /proc/self/status")
    cid, _ = pyrunc.create(bundle, "--console-socket", listener.path)
    master = listener.master()
    try:
        n = pty_number(master)
        pyrunc.ok("start", cid)
        got = lines(read_until_eof(master))
    finally:
        os.close(master)
    assert got[:3] == [f"/dev/pts/{n}"] * 3
    fields = {k.strip(): v.split()[-1] for k, v in (line.split(":", 1) for line in got[3:6])}
    # the process leads its own session (the pty is its controlling terminal)
    assert fields["NSsid"] == fields["Tgid"] == fields["NSpgid"], got


def test_console_size_absent_gives_unsized_pty(pyrunc, bundle, listener):
    terminal_bundle(bundle, "tty", size=None)
    cid, _ = pyrunc.create(bundle, "--console-socket", listener.path)
    master = listener.master()
    try:
        assert winsize(master) == (0, 0)
        pyrunc.ok("start", cid)
        assert lines(read_until_eof(master)) == [f"/dev/pts/{pty_number(master)}"]
    finally:
        os.close(master)


def test_console_socket_input_reaches_process(pyrunc, bundle, listener):
    terminal_bundle(bundle, "read line; echo \"got $line\"")
    cid, _ = pyrunc.create(bundle, "--console-socket", listener.path)
    master = listener.master()
    try:
        pyrunc.ok("start", cid)
        os.write(master, b"hello\n")
        got = lines(read_until_eof(master))
    finally:
        os.close(master)
    assert "got hello" in got, got


def test_terminal_without_console_socket_fails(pyrunc, bundle):
    terminal_bundle(bundle, "true")
    cid, res = pyrunc.create(bundle, check=False)
    assert res.returncode == 1
    pyrunc.one_line_error(res, NO_SOCKET)
    res = pyrunc("state", cid)
    assert res.returncode == 1 and "container does not exist" in res.stderr
    assert not os.path.exists(os.path.join(pyrunc.root, cid))


def test_console_socket_without_terminal_fails(pyrunc, bundle, listener):
    bundle.args("true")  # terminal: false
    cid, res = pyrunc.create(bundle, "--console-socket", listener.path, check=False)
    assert res.returncode == 1
    pyrunc.one_line_error(res, SOCKET_NO_TTY)
    assert listener.nothing_connected()
    res = pyrunc("state", cid)
    assert res.returncode == 1 and "container does not exist" in res.stderr


def test_console_socket_unreachable_fails_cleanly(pyrunc, bundle, tmp_path):
    terminal_bundle(bundle, "true")
    cid, res = pyrunc.create(bundle, "--console-socket", tmp_path / "nobody-listens", check=False)
    assert res.returncode != 0
    pyrunc.one_line_error(res)
    assert pyrunc("state", cid).returncode == 1


def test_recvtty_tool_end_to_end(pyrunc, bundle, tmp_path):
    sock = tmp_path / "recvtty.sock"
    python = shutil.which("python3") or sys.executable
    recv = subprocess.Popen([python, str(RECVTTY), str(sock), "--no-stdin"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert pyrunc.wait_until(sock.exists, timeout=10), "recvtty did not listen"
        terminal_bundle(bundle, "echo hello-from-the-tty; tty")
        cid, _ = pyrunc.create(bundle, "--console-socket", sock)
        pyrunc.ok("start", cid)
        out, err = recv.communicate(timeout=15)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    assert recv.returncode == 0, err
    got = lines(out)
    assert got[0] == "hello-from-the-tty"
    assert got[1].startswith("/dev/pts/")
    assert b"received" in err


# --- foreground run / exec under a pty ------------------------------------------------------

def test_run_foreground_terminal(pyrunc, bundle):
    # the proxy sizes the pty after the process started (runc too): give it a moment
    terminal_bundle(bundle, "tty; sleep 0.5; stty size; echo ready; read line; echo \"got $line\"; exit 3")
    bundle.write()
    cid = pyrunc.new_id()
    status, out, before, after = run_under_pty(cli(pyrunc, "run", "--bundle", bundle.path, cid),
                                               stdin_data=b"hello\n")
    got = lines(out)
    assert status == 3, out
    assert "/dev/pts/0" in got, got
    # the caller's terminal size wins over consoleSize in the foreground (runc resizes too)
    assert "40 120" in got, got
    assert "got hello" in got, got
    assert after == before, "the caller's terminal attributes were not restored"
    assert pyrunc("state", cid).returncode == 1  # run deleted it


def test_run_foreground_terminal_signal_status(pyrunc, bundle):
    bundle.remove_namespace("pid")  # so sh is no namespace init and can die of SIGKILL
    terminal_bundle(bundle, "echo dying; kill -9 $$")
    bundle.write()
    cid = pyrunc.new_id()
    status, out, before, after = run_under_pty(cli(pyrunc, "run", "--bundle", bundle.path, cid))
    assert status == 137, out
    assert "dying" in lines(out)
    assert after == before


def test_run_with_console_socket_needs_detach(pyrunc, bundle, listener):
    terminal_bundle(bundle, "true")
    res = pyrunc.run(bundle, "--console-socket", listener.path)
    assert res.returncode == 1
    pyrunc.one_line_error(res, SOCKET_NO_TTY)
    assert listener.nothing_connected()


def test_run_detached_with_console_socket(pyrunc, bundle, listener):
    terminal_bundle(bundle, "tty; stty size")
    cid = pyrunc.new_id()
    res = pyrunc.run(bundle, "--detach", "--console-socket", listener.path, cid=cid)
    assert res.returncode == 0, res.stderr
    assert (res.stdout, res.stderr) == ("", "")
    master = listener.master()
    try:
        n = pty_number(master)
        got = lines(read_until_eof(master))
    finally:
        os.close(master)
    assert got == [f"/dev/pts/{n}", f"{SIZE['height']} {SIZE['width']}"]


def _running(pyrunc, bundle) -> str:
    bundle.args("sleep", "1000")
    cid, _ = pyrunc.create(bundle)
    pyrunc.ok("start", cid)
    return cid


def test_exec_tty_foreground(pyrunc, bundle):
    cid = _running(pyrunc, bundle)
    status, out, before, after = run_under_pty(
        cli(pyrunc, "exec", "-t", cid, "sh", "-c",
            "tty; sleep 0.5; stty size; echo ready; read line; echo \"got $line\"; exit 5"),
        stdin_data=b"world\n")
    got = lines(out)
    assert status == 5, out
    assert any(line.startswith("/dev/pts/") and line[9:].isdigit() for line in got), got
    assert "40 120" in got, got
    assert "got world" in got, got
    assert after == before
    assert pyrunc.state(cid)["status"] == "running"


def test_exec_tty_detached_console_socket(pyrunc, bundle, listener, tmp_path):
    cid = _running(pyrunc, bundle)
    pid_file = tmp_path / "exec.pid"
    res = pyrunc("exec", "-t", "-d", "--console-socket", listener.path, "--pid-file", pid_file,
                 cid, "sh", "-c", "tty; ls -1 /proc/self/fd; echo ready; read line; "
                                  "echo \"got $line\"")
    assert res.returncode == 0, res.stderr
    assert (res.stdout, res.stderr) == ("", "")
    master = listener.master()
    try:
        n = pty_number(master)
        assert os.isatty(master)
        assert pid_file.read_text().isdigit()
        before = read_until_eof(master, until=b"ready")  # (typed input is echoed)
        os.write(master, b"xyz\n")
        got = lines(before + read_until_eof(master))
    finally:
        os.close(master)
    assert got[0] == f"/dev/pts/{n}"
    assert got[1:5] == ["0", "1", "2", "3"], got  # no console socket or other fd leaked
    assert "got xyz" in got, got


def test_exec_process_file_terminal_console_size(pyrunc, bundle, listener, tmp_path):
    import json
    cid = _running(pyrunc, bundle)
    pf = tmp_path / "process.json"
    pf.write_text(json.dumps({"terminal": True, "consoleSize": {"height": 12, "width": 34},
                              "args": ["stty", "size"], "env": ["PATH=/bin"], "cwd": "/"}))
    res = pyrunc("exec", "--process", pf, "-d", "--console-socket", listener.path, cid)
    assert res.returncode == 0, res.stderr
    master = listener.master()
    try:
        assert winsize(master) == (12, 34)
        assert lines(read_until_eof(master)) == ["12 34"]
    finally:
        os.close(master)


def test_exec_terminal_usage_errors(pyrunc, bundle, listener):
    cid = _running(pyrunc, bundle)
    res = pyrunc("exec", "-t", "-d", cid, "true")
    assert res.returncode == 255
    pyrunc.one_line_error(res, NO_SOCKET)
    res = pyrunc("exec", "-d", "--console-socket", listener.path, cid, "true")
    assert res.returncode == 255
    pyrunc.one_line_error(res, SOCKET_NO_TTY)
    assert listener.nothing_connected()
    assert pyrunc.state(cid)["status"] == "running"


def test_exec_tty_follows_window_size(pyrunc, bundle):
    cid = _running(pyrunc, bundle)

    def resize(proc, slave):
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 150, 0, 0))
        proc.send_signal(signal.SIGWINCH)  # it has no controlling tty: we tell it
        time.sleep(0.3)

    status, out, _, _ = run_under_pty(
        cli(pyrunc, "exec", "-t", cid, "sh", "-c",
            "sleep 0.5; stty size; echo ready; read x; stty size"),
        stdin_data=b"\n", on_ready=resize)
    got = lines(out)
    assert status == 0, out
    assert got[0] == "40 120", got
    assert got[-1] == "50 150", got


# --- runc 1.2+: the console's owner, ONLCR --------------------------------------------------------

@pytest.mark.parametrize("how", ["create", "exec"])
def test_console_owned_by_the_user(pyrunc, bundle, listener, how):
    """runc's fixStdioPermissions: the pty slave becomes the process user's;
    its group stays the devpts mount's gid=5 (tty)."""
    script = "stat -c '%u %g %a' $(tty) /proc/self/fd/0; id -u"
    user = {"uid": 1000, "gid": 1000}
    if how == "create":
        terminal_bundle(bundle, script)
        bundle.process["user"] = user
        cid, _ = pyrunc.create(bundle, "--console-socket", listener.path)
        master = listener.master()
        pyrunc.ok("start", cid)
    else:
        cid = _running(pyrunc, bundle)
        res = pyrunc("exec", "-t", "-d", "--user", "1000:1000", "--console-socket",
                     listener.path, cid, "sh", "-c", script)
        assert res.returncode == 0, res.stderr
        master = listener.master()
    try:
        got = lines(read_until_eof(master))
    finally:
        os.close(master)
    assert got[0].split()[:2] == ["1000", "5"], got
    assert got[-1] == "1000", got


def test_stdio_owned_by_the_user(pyrunc, bundle):
    """Not only a console: runc gives the user its stdio (here the files the
    test captures into), /dev/null aside."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.sh("stat -L -c %u /proc/self/fd/1 /proc/self/fd/0")
    res = pyrunc.run(bundle, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    out_owner, stdin_owner = res.stdout.split()
    assert out_owner == "1000" and stdin_owner == "0"


def test_foreground_console_clears_onlcr(pyrunc, bundle):
    """runc's foreground console (run and exec without -d): a program's "\\n"
    reaches the runtime's stdout as "\\n", not "\\r\\n"."""
    terminal_bundle(bundle, r'printf "a\nb\n"')
    assert pyrunc.run_ok(bundle) == "a\nb\n"
    bundle.process["terminal"] = False
    cid = _running(pyrunc, bundle)
    res = pyrunc("exec", "-t", cid, "printf", r"c\nd\n")
    assert (res.returncode, res.stdout) == (0, "c\nd\n"), res.stderr


def test_console_socket_receiver_gets_onlcr_unchanged(pyrunc, bundle, listener):
    """With --console-socket the receiver owns the console's settings: runc
    leaves ONLCR as the kernel set it (on), and so does pyrunc."""
    terminal_bundle(bundle, r'printf "a\nb\n"')
    cid, _ = pyrunc.create(bundle, "--console-socket", listener.path)
    master = listener.master()
    try:
        assert termios.tcgetattr(master)[1] & termios.ONLCR
        pyrunc.ok("start", cid)
        assert read_until_eof(master) == b"a\r\nb\r\n"
    finally:
        os.close(master)


def test_debug_create_with_console_does_not_hold_the_callers_stderr(pyrunc, bundle, listener):
    """With --debug the init logs its steps to a copy of create's stderr; it
    closes that copy before it waits for `start` (as runc's init closes its
    log pipe): a caller that reads stderr to its end (go-runc in terminal
    mode) is not kept waiting."""
    terminal_bundle(bundle, "true")
    bundle.write()
    cid = pyrunc.new_id()
    proc = subprocess.Popen(cli(pyrunc, "--debug", "create", "--bundle", bundle.path,
                                "--console-socket", listener.path, cid),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert b"init: ready" in err and out == b""
    master = listener.master()
    try:
        assert pyrunc.state(cid)["status"] == "created"
    finally:
        os.close(master)
