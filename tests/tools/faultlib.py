"""Driving pyrunc through its fault-injection entry point (pyrunc_faults.py,
beside this file), for any test suite (host, cgroup v2 guest, systemd guest):
a launcher script, running a command with an action at a named point (the
test's half of the handshake with processes that cannot signal the command),
and finding processes by a token in their command line."""
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

TOOLS = Path(__file__).resolve().parent


def make_launcher(pyrunc: str, directory) -> str:
    """An executable `pyrunc-faults` in `directory` that runs pyrunc_faults.py
    with the interpreter the `pyrunc` script names (the same installed package)."""
    with open(pyrunc) as f:
        python = f.readline()[2:].split()[0]  # (its flags, -IS, would hide the venv)
    launcher = Path(directory) / "pyrunc-faults"
    launcher.write_text(f"#!{python}\nimport sys\nsys.path.insert(0, {str(TOOLS)!r})\n"
                        "import pyrunc_faults\npyrunc_faults.main()\n")
    launcher.chmod(0o755)
    return str(launcher)


def fault_at(command: list, action: str, point: str, cid: str, timeout: float = 60,
             env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """Run `command` (the launcher, its flags, the subcommand…) with ACTION at
    POINT until it exits; returns the process and its stderr (without the
    handshake lines). kill: the command is SIGKILLed at the point; die: the
    process at the point is; hang: it sleeps there."""
    env = dict(os.environ, PYRUNC_FAULT=f"{point}={action}", **(env or {}))
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([str(a) for a in command], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, env=env)
        deadline = time.monotonic() + timeout
        handled = False
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise AssertionError(f"{command} hung ({action} at {point})")
            err.seek(0)
            m = re.search(rb"fault-(kill|die) (\d+) (\S+)\n", err.read())
            if m and not handled:  # another process than the command reached the point
                handled = True
                if m.group(1) == b"kill":
                    proc.kill()
                    proc.wait()
                    sig = signal.SIGUSR1
                else:
                    sig = signal.SIGKILL
                assert signal_waiting(int(m.group(2)), cid, sig), \
                    f"no process of {cid} waiting at {point}"
            time.sleep(0.002)
        err.seek(0)
        text = err.read().decode(errors="replace")
    return proc, re.sub(r"fault-(kill|die) \d+ \S+\n", "", text)


def kill_at(command: list, point: str, cid: str, timeout: float = 60) -> str:
    """SIGKILL `command` at `point`; fails if it ends without reaching it.
    Returns its stderr."""
    proc, text = fault_at(command, "kill", point, cid, timeout)
    assert proc.returncode == -signal.SIGKILL, \
        f"{command[3:5]} did not reach {point} (exit {proc.returncode}): {text}"
    return text


def signal_waiting(nspid: int, cid: str, sig: int) -> bool:
    """Signal the process of `cid` whose pid in its own namespace is `nspid`."""
    for pid in pids_of(cid):
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        nspids = fields.get("NSpid", "").split()
        if nspids and int(nspids[-1]) == nspid:
            os.kill(pid, sig)
            return True
    return False


def pids_of(token: str) -> list[int]:
    """Live processes whose command line mentions `token` (the fork chain's
    carry the container id, a hook's its own token)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmd and state not in (b"Z", b"X"):
            out.append(int(name))
    return out
