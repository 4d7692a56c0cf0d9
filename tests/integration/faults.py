"""The fault-injection harness of the host's reliability tests, over
tests/tools/faultlib.py: the `faulty` Runtime (pyrunc through its
fault-injection entry point) and the checks that nothing is left."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import faultlib  # noqa: E402
from faultlib import pids_of  # noqa: E402,F401


@pytest.fixture
def faulty(pyrunc, tmp_path):
    """The Runtime, driving pyrunc through the fault-injecting entry point."""
    pyrunc.binary = faultlib.make_launcher(pyrunc.binary, tmp_path)
    return pyrunc


def fault_at(rt, action: str, point: str, *argv: str, cid: str, timeout: float = 60,
             env: dict | None = None):
    return faultlib.fault_at([rt.binary, "--root", rt.root, *argv], action, point, cid,
                             timeout, env)


def kill_at(rt, point: str, *argv: str, cid: str, timeout: float = 60) -> str:
    return faultlib.kill_at([rt.binary, "--root", rt.root, *argv], point, cid, timeout)


def nothing_left(rt, *tokens: str) -> list[str]:
    """The fixture's leftover check, now, plus processes mentioning a token."""
    problems = rt.leftovers()
    for token in tokens:
        problems += [f"process {pid} mentioning {token}" for pid in pids_of(token)]
    return problems


def check_killed_then_clean(rt, bundle, point: str, cid: str, *argv, tokens=(),
                            before_again=None) -> None:
    """Kill at `point`, delete --force: nothing left at once; then the id works."""
    kill_at(rt, point, *argv, cid=cid)
    res = rt("delete", "--force", cid)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert nothing_left(rt, cid, *tokens) == []
    if before_again is not None:
        before_again()
    rt.create(bundle, cid=cid)
    rt.ok("delete", "--force", cid)
