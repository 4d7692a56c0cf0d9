"""kill_process (the undo of a create, delete --force) treats a recorded
process that exits while it is being signalled as gone, not as an error."""
import subprocess

from pyrunc.container import lifecycle
from pyrunc.lean.procfs import process_start_time


def test_a_process_that_exits_between_check_and_signal_is_gone(monkeypatch):
    child = subprocess.Popen(["sleep", "30"])
    try:
        start = process_start_time(child.pid)

        def exited_meanwhile(pidfd, sig):  # systemd stopped the unit first, say
            raise ProcessLookupError(3, "No such process")

        monkeypatch.setattr(lifecycle, "pidfd_send_signal", exited_meanwhile)
        lifecycle.kill_process(child.pid, start)  # no error, no wait
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_a_recycled_pid_is_not_signalled():
    child = subprocess.Popen(["sleep", "30"])
    try:
        lifecycle.kill_process(child.pid, process_start_time(child.pid) + 1)
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()
