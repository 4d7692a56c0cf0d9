"""--pidfd-socket PATH on create, run and exec (runc 1.2+): the container's
process sends a pidfd of itself over the socket, one message whose data is
"standard" (a container's init) or "setns" (an exec'd process), so its
manager can signal it without a pid-reuse race (runc's tests/cmd/pidfd-kill)."""
import os
import signal

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def listener(fd_listener):
    """The --pidfd-socket: (data, pidfd) of its one message."""
    def receive():
        data, _anc, fds, rest = fd_listener.receive()
        assert len(fds) == 1 and rest == b"", (data, fds, rest)
        return data, fds[0]
    fd_listener.receive_pidfd = receive
    return fd_listener


def pid_of_pidfd(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return int(next(line.split()[1] for line in f if line.startswith("Pid:")))


def test_create_sends_the_inits_pidfd(pyrunc, bundle, listener):
    cid, _ = pyrunc.create(bundle, "--pidfd-socket", listener.path)
    data, pidfd = listener.receive_pidfd()
    try:
        assert data == b"standard"
        assert pid_of_pidfd(pidfd) == pyrunc.state(cid)["pid"]
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)  # runc's pidfd-kill
        pyrunc.wait_status(cid, "stopped")
    finally:
        os.close(pidfd)
    pyrunc.ok("delete", cid)


def test_run_sends_the_inits_pidfd(pyrunc, bundle, listener):
    cid = pyrunc.new_id()
    pyrunc.run_ok(bundle, "--detach", "--pidfd-socket", listener.path, cid=cid)
    data, pidfd = listener.receive_pidfd()
    try:
        assert data == b"standard"
        assert pid_of_pidfd(pidfd) == pyrunc.state(cid)["pid"]
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        pyrunc.wait_status(cid, "stopped")
    finally:
        os.close(pidfd)
    pyrunc.ok("delete", cid)


def test_exec_sends_its_processs_pidfd(pyrunc, bundle, listener, tmp_path):
    cid = pyrunc.new_id()
    pyrunc.run_ok(bundle, "--detach", cid=cid)
    pid_file = tmp_path / "exec.pid"
    pyrunc.ok("exec", "--detach", "--pid-file", pid_file, "--pidfd-socket", listener.path,
              cid, "sleep", "1000")
    data, pidfd = listener.receive_pidfd()
    try:
        assert data == b"setns"
        pid = int(pid_file.read_text())
        assert pid_of_pidfd(pidfd) == pid
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        assert pyrunc.wait_until(lambda: not pyrunc.pid_alive(pid))
    finally:
        os.close(pidfd)
    assert pyrunc.state(cid)["status"] == "running"


def test_pidfd_socket_that_cannot_be_reached(pyrunc, bundle, tmp_path):
    missing = tmp_path / "no.sock"
    cid, res = pyrunc.create(bundle, "--pidfd-socket", missing, check=False)
    assert res.returncode == 1
    assert pyrunc.one_line_error(res) == \
        f"pyrunc create failed: failed to dial {missing}: no such file or directory"
    assert pyrunc("state", cid).returncode == 1
    cid = pyrunc.new_id()
    pyrunc.run_ok(bundle, "--detach", cid=cid)
    res = pyrunc("exec", "--pidfd-socket", missing, cid, "true")
    assert res.returncode == 255
    assert pyrunc.one_line_error(res) == f"exec failed: failed to dial {missing}: no such file or directory"
