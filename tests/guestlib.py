"""Helpers shared by the suites that run in a guest (tests/cgroup2, tests/systemd):

    pyrunc_path()                 $PYRUNC, else the default venv's CLI
    run_cli(argv, stdin, timeout) run it with stdout/stderr through files (a detached
                                  container keeps the stdio it was given: a pipe would
                                  never see EOF) -> CompletedProcess(argv, code, out, err)
    make_rootfs(path)             a busybox rootfs (examples/bundles/make-rootfs.sh)
    spec_template(directory)      `pyrunc spec`'s config.json, as a dict
    wait_until(pred, timeout)     poll pred (bounded); its last value
"""
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pyrunc_path() -> str:
    return os.environ.get("PYRUNC") or "/opt/pyrunc/bin/pyrunc"


def run_cli(argv, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryFile() as inp:
        if stdin is not None:
            inp.write(stdin.encode())
            inp.seek(0)
        code = subprocess.run([str(a) for a in argv],
                              stdin=inp if stdin is not None else subprocess.DEVNULL,
                              stdout=out, stderr=err, timeout=timeout).returncode
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(argv, code, out.read().decode(), err.read().decode())


def make_rootfs(path) -> str:
    subprocess.run(["sh", str(REPO / "examples" / "bundles" / "make-rootfs.sh"), str(path)],
                   check=True, stdout=subprocess.DEVNULL, timeout=300)
    return str(path)


def spec_template(directory) -> dict:
    subprocess.run([pyrunc_path(), "spec", "--bundle", str(directory)], check=True, timeout=120)
    return json.loads((Path(directory) / "config.json").read_text())


def wait_until(pred, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()
