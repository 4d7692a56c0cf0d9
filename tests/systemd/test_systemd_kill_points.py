"""A create under the systemd cgroup driver SIGKILLed at points of the fork
chain: the unit is in create's journal before it is started, so after
delete --force no unit, cgroup, state dir or process is left, and the id can
be created again (docs/reliability.md)."""
import json
import os
import sys
from pathlib import Path

import pytest

import sdlib

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import faultlib  # noqa: E402

# the unit journalled but not started (create:cgroup, create:resources: it starts
# with the init's placement), started with the init in it (spawn:placed on)
POINTS = ["create:init", "create:cgroup", "create:resources", "spawn:placed", "init:ready",
          "create:ready"]


@pytest.mark.parametrize("point", POINTS)
def test_create_killed(sd, point, tmp_path):
    launcher = faultlib.make_launcher(os.environ.get("PYRUNC") or "/opt/pyrunc/bin/pyrunc",
                                      tmp_path)
    bundle = sd.bundle()
    cid = sd.new_id()
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["cgroupsPath"] = f":{sd.prefix}:{cid}"
    (bundle / "config.json").write_text(json.dumps(config))
    faultlib.kill_at([launcher, "--root", sd.root, "--systemd-cgroup", "create", "--bundle",
                      bundle, cid], point, cid, timeout=300)
    sd.ok("delete", "--force", cid)
    assert sd.leftovers() == []
    assert sdlib.units(sd.unit(cid)) == []
    assert faultlib.pids_of(cid) == []
    sd.ok("create", "--bundle", bundle, cid)
    sd.ok("delete", "--force", cid)
