"""A cgroup removed under the runtime (systemd removes an emptied scope while
`delete --force` kills): the kill and the thaw find nothing to do."""
import errno

import pytest

from pyrunc.cgroups import manager
from pyrunc.cgroups.common import CgroupError
from pyrunc.cgroups.fs2 import Fs2Manager


def _failing_write(err: int):
    def write_file(directory, name, value, *_a, **_k):
        raise CgroupError(f"cannot write {value!r} to {directory}/{name}") from OSError(err, "x")
    return write_file


@pytest.mark.parametrize("err", [errno.ENODEV, errno.ENOENT])
def test_kill_and_thaw_of_a_cgroup_being_removed_are_no_ops(tmp_path, monkeypatch, err):
    (tmp_path / "cgroup.freeze").write_text("0\n")
    (tmp_path / "cgroup.procs").write_text("")
    m = Fs2Manager({"": str(tmp_path)})
    monkeypatch.setattr(manager, "write_file", _failing_write(err))
    m.kill_all()
    m.thaw()


def test_other_write_errors_still_fail(tmp_path, monkeypatch):
    (tmp_path / "cgroup.freeze").write_text("0\n")
    m = Fs2Manager({"": str(tmp_path)})
    monkeypatch.setattr(manager, "write_file", _failing_write(errno.EACCES))
    with pytest.raises(CgroupError):
        m.kill_all()
