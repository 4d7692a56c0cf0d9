"""Shared by every test directory: where the pyrunc CLI under test lives."""
import os
import shutil
import socket

import pytest

DEFAULT_PYRUNC = "/opt/pyrunc-venv/bin/pyrunc"


def find_pyrunc() -> str:
    """$PYRUNC, else `pyrunc` on PATH, else the venv's script."""
    return os.environ.get("PYRUNC") or shutil.which("pyrunc") or DEFAULT_PYRUNC


@pytest.fixture(scope="session")
def pyrunc_bin() -> str:
    return find_pyrunc()


def pytest_report_header(config):
    path = find_pyrunc()
    real = os.path.realpath(path)
    return [f"pyrunc CLI under test: {path}" + (f" -> {real}" if real != path else "")]


@pytest.fixture
def full_backlog_socket(tmp_path):
    """The path of a unix socket that listens but never accepts, its backlog
    already full: a peer nobody answers (console socket, seccomp agent)."""
    path = str(tmp_path / "full.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(0)
    fillers = []
    try:
        while True:
            c = socket.socket(socket.AF_UNIX)
            c.setblocking(False)
            fillers.append(c)
            try:
                c.connect(path)
            except BlockingIOError:
                break
        yield path
    finally:
        for c in fillers:
            c.close()
        server.close()
