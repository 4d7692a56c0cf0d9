"""Shared by every test directory: where the pyrunc CLI under test lives."""
import os
import shutil

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
