"""The fault-injection harness of the reliability tests: pyrunc driven through
the test-only entry point tests/tools/pyrunc_faults.py (named points, see
pyrunc.fault_point), and the checks that nothing is left."""
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

FAULTS = Path(__file__).resolve().parents[1] / "tools" / "pyrunc_faults.py"


@pytest.fixture
def faulty(pyrunc, tmp_path):
    """The Runtime, driving pyrunc through the fault-injecting entry point
    (the same installed package: its interpreter is the one the script names)."""
    with open(pyrunc.binary) as f:
        python = f.readline()[2:].strip()
    launcher = tmp_path / "pyrunc-faults"
    launcher.write_text(f"#!{python}\nimport sys\nsys.path.insert(0, {str(FAULTS.parent)!r})\n"
                        "import pyrunc_faults\npyrunc_faults.main()\n")
    launcher.chmod(0o755)
    pyrunc.binary = str(launcher)
    return pyrunc


def kill_at(rt, point: str, *argv: str, cid: str, timeout: float = 60) -> str:
    """Run `pyrunc --root R ARGV` and SIGKILL it at `point`; returns its stderr.
    Fails if the command ends without reaching the point."""
    proc, text = fault_at(rt, "kill", point, *argv, cid=cid, timeout=timeout)
    assert proc.returncode == -signal.SIGKILL, \
        f"{argv[0]} did not reach {point} (exit {proc.returncode}): {text}"
    return text


def fault_at(rt, action: str, point: str, *argv: str, cid: str, timeout: float = 60,
             env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """Run `pyrunc --root R ARGV` with ACTION at POINT (see pyrunc_faults.py)
    until it exits; returns the process and its stderr (without the markers)."""
    env = dict(os.environ, PYRUNC_FAULT=f"{point}={action}", **(env or {}))
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([rt.binary, "--root", rt.root, *argv], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, env=env)
        deadline = time.monotonic() + timeout
        handled = False
        while proc.poll() is None:
            assert time.monotonic() < deadline, f"{argv[0]} hung ({action} at {point})"
            err.seek(0)
            m = re.search(rb"fault-(kill|die) (\d+) (\S+)\n", err.read())
            if m and not handled:  # another process than the command reached the point
                handled = True
                if m.group(1) == b"kill":
                    proc.kill()
                    proc.wait()
                    assert _signal_waiting(int(m.group(2)), cid, signal.SIGUSR1), \
                        f"no process of {cid} waiting at {point}"
                else:
                    assert _signal_waiting(int(m.group(2)), cid, signal.SIGKILL), \
                        f"no process of {cid} waiting at {point}"
            time.sleep(0.002)
        err.seek(0)
        text = err.read().decode(errors="replace")
    return proc, re.sub(r"fault-(kill|die) \d+ \S+\n", "", text)


def _signal_waiting(nspid: int, cid: str, sig: int) -> bool:
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
    """Live processes whose command line mentions `token` (the chain's carry
    the container id, a hook's its own token)."""
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


def nothing_left(rt, *tokens: str) -> list[str]:
    problems = rt.leftovers()
    for token in tokens:
        problems += [f"process {pid} mentioning {token}" for pid in pids_of(token)]
    return problems


def check_killed_then_clean(rt, bundle, point: str, cid: str, *argv, tokens=(),
                            before_again=None) -> None:
    kill_at(rt, point, *argv, cid=cid)
    res = rt("delete", "--force", cid)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert nothing_left(rt, cid, *tokens) == []
    # the id is free again
    if before_again is not None:
        before_again()
    rt.create(bundle, cid=cid)
    rt.ok("delete", "--force", cid)
