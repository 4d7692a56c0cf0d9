"""linux.intelRdt on a host without resctrl (this machine): the real error
path. The resctrl file logic is tested against a fake tree in
tests/unit/test_resctrl.py."""
import json
import os

import pytest

from pyrunc.cgroups import resctrl

pytestmark = pytest.mark.integration


@pytest.fixture
def no_resctrl():
    if resctrl.find_root() is not None:
        pytest.skip("resctrl is mounted here: this file tests the host without it")


@pytest.mark.parametrize("rdt", [{"closID": "x"}, {"l3CacheSchema": "L3:0=f"},
                                 {"enableMonitoring": True}, {}])
def test_create_refused_without_resctrl(pyrunc, bundle, no_resctrl, rdt):
    bundle.linux["intelRdt"] = rdt
    cid = pyrunc.new_id()
    res = pyrunc("create", "--bundle", bundle.path, cid, bundle=bundle)
    pyrunc.one_line_error(res, "linux.intelRdt", "resctrl is not mounted")
    assert not os.path.exists(os.path.join(pyrunc.root, cid))


def test_update_schema_without_resctrl(pyrunc, bundle, no_resctrl):
    bundle.args("sleep", "1000")
    cid, _ = pyrunc.create(bundle)
    res = pyrunc("update", "--l3-cache-schema", "L3:0=f", cid)
    pyrunc.one_line_error(res, "Intel RDT/CAT: l3 cache schema is not enabled")
    res = pyrunc("update", "--mem-bw-schema", "MB:0=20", cid)
    pyrunc.one_line_error(res, "Intel RDT/MBA: memory bandwidth schema is not enabled")


def test_features_say_disabled(pyrunc, no_resctrl):
    doc = json.loads(pyrunc.ok("features").stdout)
    assert doc["linux"]["intelRdt"] == {"enabled": False, "schemata": False, "monitoring": False}
