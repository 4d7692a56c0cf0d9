"""AppArmor's change-on-exec as runc writes it (security/lsm.py), on a fake attr tree:
the real kernel's answers are tested in the systemd guest (tests/engines/test_apparmor.py)."""
import os

import pytest

from pyrunc.container.features import features
from pyrunc.errors import ContainerStartError
from pyrunc.security import lsm


def test_change_onexec_writes_exec_name_to_attr_apparmor(tmp_path):
    (tmp_path / "attr" / "apparmor").mkdir(parents=True)
    (tmp_path / "attr" / "apparmor" / "exec").write_text("")
    (tmp_path / "attr" / "exec").write_text("")
    lsm._apparmor_change_onexec("docker-default", "", proc=str(tmp_path))
    assert (tmp_path / "attr" / "apparmor" / "exec").read_text() == "exec docker-default"
    assert (tmp_path / "attr" / "exec").read_text() == ""


def test_change_onexec_falls_back_to_attr_exec(tmp_path):
    (tmp_path / "attr").mkdir()
    (tmp_path / "attr" / "exec").write_text("")
    lsm._apparmor_change_onexec("p", "", proc=str(tmp_path))
    assert (tmp_path / "attr" / "exec").read_text() == "exec p"


def test_refused_write_is_runcs_line(tmp_path):
    """The kernel refuses a profile it has not loaded at write(2) (ENOENT); /dev/full
    stands in for a refusing attr file."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    (tmp_path / "attr" / "apparmor").mkdir(parents=True)
    (tmp_path / "attr" / "apparmor" / "exec").symlink_to("/dev/full")
    with pytest.raises(ContainerStartError) as e:
        lsm._apparmor_change_onexec("nope", "unable to apply apparmor profile: ",
                                    proc=str(tmp_path))
    assert str(e.value) == (f"unable to apply apparmor profile: apparmor failed to apply "
                            f"profile: write {tmp_path}/attr/apparmor/exec: no space left on device")


def test_missing_attr_file_is_an_open_error(tmp_path):
    with pytest.raises(ContainerStartError, match=r"apparmor failed to apply profile: open "
                       r".*/attr/exec: no such file or directory$"):
        lsm._apparmor_change_onexec("p", "", proc=str(tmp_path))


def test_features_say_pyrunc_implements_apparmor():
    """features-linux.md: `apparmor.enabled` is the runtime's support, whatever the host."""
    assert features()["linux"]["apparmor"] == {"enabled": True}
