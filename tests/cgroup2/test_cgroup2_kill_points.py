"""A create SIGKILLed at points of the fork chain on a pure cgroup v2 host
(tests/integration/test_kill_points.py does every point on the host's
layout): after delete --force no state dir, cgroup or process is left, and
the id can be created again."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import faultlib  # noqa: E402

pytestmark = pytest.mark.cgroup2

POINTS = ["create:cgroup", "middle:forked", "init:placed", "create:ready"]


@pytest.mark.parametrize("point", POINTS)
def test_create_killed(v2rt, point, tmp_path):
    launcher = faultlib.make_launcher(os.environ.get("PYRUNC") or "/opt/pyrunc-venv/bin/pyrunc",
                                      tmp_path)
    bundle = v2rt.bundle({"pids": {"limit": 20}, "memory": {"limit": 64 << 20}})
    cid = v2rt.new_id()
    faultlib.kill_at([launcher, "--root", v2rt.root, "create", "--bundle", bundle, cid],
                     point, cid, timeout=120)
    v2rt.ok("delete", "--force", cid)
    left = [d for d, _, _ in os.walk("/sys/fs/cgroup") if cid in d]
    assert left == [] and not os.path.exists(os.path.join(v2rt.root, cid))
    assert faultlib.pids_of(cid) == []
    v2rt.ok("create", "--bundle", bundle, cid)
    v2rt.ok("delete", "--force", cid)
