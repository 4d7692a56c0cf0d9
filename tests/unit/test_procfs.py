import os

import pytest

from pyrunc.lean.procfs import read_small


def test_reads_whole_files_of_any_size(tmp_path):
    for size in (0, 1, 65535, 65536, 200_001):
        p = tmp_path / f"f{size}"
        data = os.urandom(size)
        p.write_bytes(data)
        assert read_small(str(p)) == data


def test_reads_proc_files_whose_size_is_zero():
    assert read_small("/proc/self/stat").startswith(str(os.getpid()).encode() + b" (")


def test_missing_file_raises_and_leaks_no_fd(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        read_small(str(tmp_path / "missing"))
    assert len(os.listdir("/proc/self/fd")) == before
