"""--systemd-cgroup on a host without systemd as PID 1 (this one): every
command takes the flag (runc's callers pass it to all of them), create and
run fail with the one "systemd is not running: ..." line and leave nothing
(the fixture checks state, cgroups, mounts, processes), and a container made
with the cgroupfs driver is still driven by its own driver. The driver itself
is proven in tests/systemd (a systemd guest) and tests/unit/test_systemd_driver.py."""
import json
import os

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.path.isdir("/run/systemd/system"),
                                 reason="this host runs systemd: tests/systemd covers it")]


@pytest.mark.parametrize("command", ["create", "run"])
def test_create_without_systemd_is_one_line(pyrunc, bundle, command):
    cid = pyrunc.new_id()
    res = pyrunc("--systemd-cgroup", command, "--bundle", bundle.path, cid, bundle=bundle)
    line = pyrunc.one_line_error(res, "systemd is not running: ", "/run/systemd/system")
    assert line.startswith(f"pyrunc {command} failed: ")
    assert not os.path.exists(os.path.join(pyrunc.root, cid))


def test_click_path_create_without_systemd_is_one_line(pyrunc, bundle):
    # --no-new-keyring=... is not a fast-path form: this goes through click
    cid = pyrunc.new_id()
    res = pyrunc("-systemd-cgroup", "--debug", "create", "-b", bundle.path, "--preserve-fds",
                 "0", "--no-pivot", cid, bundle=bundle)
    assert res.returncode != 0 and "systemd is not running: " in res.stderr


def test_every_command_accepts_the_flag(pyrunc, bundle, tmp_path):
    bundle.args("sleep", "100")
    cid, _ = pyrunc.create(bundle)                 # the cgroupfs driver
    flag = "--systemd-cgroup"
    assert json.loads(pyrunc.ok(flag, "state", cid).stdout)["status"] == "created"
    pyrunc.ok(flag, "start", cid)
    pyrunc.ok(flag, "update", "--pids-limit", "40", cid)
    pyrunc.ok(flag, "pause", cid)
    pyrunc.ok(flag, "resume", cid)
    assert pyrunc.ok(flag, "exec", cid, "true").returncode == 0
    assert str(json.loads(pyrunc.ok(flag, "state", cid).stdout)["pid"]) in \
        pyrunc.ok(flag, "ps", cid).stdout
    assert '"type":"stats"' in pyrunc.ok(flag, "events", "--stats", cid).stdout
    assert cid in pyrunc.ok(flag, "list", "-q").stdout
    pyrunc.ok(flag, "kill", cid, "KILL")
    pyrunc.wait_status(cid, "stopped")
    pyrunc.ok(flag, "delete", cid)


def test_features_report_the_systemd_driver(pyrunc):
    doc = json.loads(pyrunc.ok("features", root=None).stdout)
    assert doc["linux"]["cgroup"]["systemd"] is True
    assert doc["linux"]["cgroup"]["systemdUser"] is True
