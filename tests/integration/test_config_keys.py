"""config.json keys as runc reads them (pyrunc/spec/keys.py): unknown
properties are ignored (the spec's MUST) with a debug line; keys that differ
from a field only in case are that field (Go's encoding/json); a null field
is as if absent."""
import json

import pytest

pytestmark = pytest.mark.integration


def test_unknown_properties_are_ignored(pyrunc, bundle):
    bundle.config["org.example.future"] = {"anything": [1, 2]}
    bundle.process["notYetInTheSpec"] = True
    bundle.linux["resources"] = {"devices": [{"allow": False, "access": "rwm", "extra": 1}]}
    bundle.args("echo", "ran")
    assert pyrunc.run_ok(bundle) == "ran\n"
    res = pyrunc("--debug", "run", "--bundle", bundle.path, pyrunc.new_id(), bundle=bundle)
    assert res.returncode == 0, res.stderr
    for where in ("org.example.future", "process.notYetInTheSpec",
                  "linux.resources.devices[0].extra"):
        assert f'msg="config: ignoring unknown property {where}"' in res.stderr, res.stderr


def test_keys_in_another_case_are_the_fields(pyrunc, bundle):
    """runc (Go) matches field names case-insensitively; of two, the later wins."""
    process = bundle.config.pop("process")
    bundle.config["HOSTNAME"] = "folded"
    bundle.write_config = False

    def write(args_then_ARGS):
        body = json.dumps({k: v for k, v in process.items() if k != "args"})[1:-1]
        first, second = args_then_ARGS
        text = json.dumps(bundle.config)[:-1] + (
            f', "Process": {{{body}, "args": {json.dumps(first)}, "ARGS": {json.dumps(second)}}}}}')
        (bundle.dir / "config.json").write_text(text)

    write((["echo", "first"], ["echo", "second"]))
    assert pyrunc.run_ok(bundle) == "second\n"
    write((["echo", "first"], ["sh", "-c", "hostname"]))
    assert pyrunc.run_ok(bundle) == "folded\n"


def test_null_fields_are_absent(pyrunc, bundle):
    """As Go decodes them: "env": null is no environment (so no HOME, runc
    1.5), "process": null is no process."""
    bundle.process["env"] = None
    bundle.args("/bin/cat", "/proc/self/environ")
    assert pyrunc.run_ok(bundle) == ""
    bundle.config["process"] = None
    res = pyrunc.run(bundle)
    assert pyrunc.one_line_error(res) == "pyrunc run failed: process property must not be empty"


@pytest.mark.parametrize("access", ["mrw", "wr", "rrw", "rwmx", "x", "RW", "r w"])
def test_device_access_strings_runc_accepts(pyrunc, bundle, access):
    """runc takes any non-empty access string (its r, w and m count)."""
    bundle.linux["resources"] = {"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": access}]}
    bundle.sh("echo ok > /dev/null && echo ran")
    assert pyrunc.run_ok(bundle) == "ran\n"


def test_empty_device_access_is_refused(pyrunc, bundle):
    bundle.linux["resources"] = {"devices": [{"allow": False, "access": ""}]}
    res = pyrunc.run(bundle)
    assert res.returncode == 1
    assert pyrunc.one_line_error(res).endswith("device access at 0 field cannot be empty")
