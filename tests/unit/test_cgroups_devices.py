"""Device rule validation, the emulator, and the v1 write sequence (fake tree)."""
import pytest

from pyrunc.cgroups import CgroupManager
from pyrunc.cgroups import fs as fs_mod
from pyrunc.cgroups.common import CgroupError
from pyrunc.cgroups.devices import (DEFAULT_ALLOWED_DEVICES, WILDCARD, Emulator, Rule,
                                    parse_rules, perms_to_str, v1_writes)
from pyrunc.errors import ConfigError

DENY_ALL = {"allow": False, "access": "rwm"}


def c(major, minor, access="rwm", allow=True):
    d = {"allow": allow, "type": "c", "access": access}
    if major is not None:
        d["major"] = major
    if minor is not None:
        d["minor"] = minor
    return d


# --- validation --------------------------------------------------------------------

def test_parse_rules_ok():
    rules = parse_rules([DENY_ALL, c(1, 3), c(136, None, "wr"), {"allow": True, "type": "b",
                                                                 "major": 8, "access": "m"}])
    assert rules == [Rule(False, "a", WILDCARD, WILDCARD, "rwm"),
                     Rule(True, "c", 1, 3, "rwm"),
                     Rule(True, "c", 136, WILDCARD, "rw"),
                     Rule(True, "b", 8, WILDCARD, "m")]
    assert parse_rules(None) == []
    assert rules[2].cgroup_string() == "c 136:* rw"
    assert rules[0].cgroup_string() == "a *:* rwm"
    assert parse_rules([c(-1, -1)]) == [Rule(True, "c", WILDCARD, WILDCARD, "rwm")]


def test_default_devices_are_valid_and_allow_only():
    rules = parse_rules(list(DEFAULT_ALLOWED_DEVICES))
    assert all(r.allow and r.type == "c" and r.access == "rwm" for r in rules)
    keys = {(r.major, r.minor) for r in rules}
    assert {(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2), (136, WILDCARD)} <= keys


@pytest.mark.parametrize("rule, field", [
    ({"allow": True, "type": "x", "access": "r"}, "type"),
    ({"allow": True, "type": "p", "access": "r"}, "type"),
    ({"allow": True, "type": "c", "access": ""}, "access"),
    ({"allow": True, "type": "c"}, "access"),
    ({"allow": True, "type": "c", "access": 7}, "access"),
    ({"allow": True, "type": "c", "major": "1", "access": "r"}, "major"),
    ({"allow": True, "type": "c", "major": True, "access": "r"}, "major"),
    ({"allow": True, "type": "c", "minor": -2, "access": "r"}, "minor"),
    ({"allow": True, "type": "c", "minor": 2**32, "access": "r"}, "minor"),
    ({"type": "c", "access": "r"}, "allow"),
    ({"allow": "yes", "type": "c", "access": "r"}, "allow"),
])
def test_parse_rules_rejects_naming_the_field(rule, field):
    with pytest.raises(ConfigError) as e:
        parse_rules([DENY_ALL, c(1, 3), rule])
    assert e.value.where == f"linux.resources.devices[2].{field}"
    assert str(e.value).startswith(f"linux.resources.devices[2].{field}: ")


@pytest.mark.parametrize("access, canonical", [
    ("rwm", "rwm"), ("mrw", "rwm"), ("wr", "rw"), ("rrw", "rw"), ("rwmx", "rwm"), ("m", "m"),
    ("r w", "rw"), ("x", None), ("RW", None),
])
def test_parse_rules_takes_every_access_string_runc_takes(access, canonical):
    """runc: any non-empty string; its r, w and m count, in any order; a rule
    left with none grants or denies nothing."""
    rules = parse_rules([DENY_ALL, c(1, 3, access)])
    assert rules[1:] == ([Rule(True, "c", 1, 3, canonical)] if canonical else [])


def test_parse_rules_empty_access_is_runcs_error():
    with pytest.raises(ConfigError) as e:
        parse_rules([DENY_ALL, c(1, 3, "")])
    assert str(e.value) == ("linux.resources.devices[1].access: "
                            "device access at 1 field cannot be empty")


def test_parse_rules_rejects_shapes():
    with pytest.raises(ConfigError) as e:
        parse_rules({"allow": True})
    assert e.value.where == "linux.resources.devices"
    with pytest.raises(ConfigError) as e:
        parse_rules([DENY_ALL, "c 1:3 rwm"])
    assert e.value.where == "linux.resources.devices[1]"
    # an unknown property is ignored (the spec), not refused
    assert parse_rules([{"allow": True, "access": "r", "path": "/dev/x"}]) == \
        [Rule(True, "a", WILDCARD, WILDCARD, "rwm")]


def test_parse_rules_refuses_hole_punching():
    with pytest.raises(ConfigError) as e:
        parse_rules([c(1, None), c(1, 3, "w", allow=False)])
    assert e.value.where == "linux.resources.devices[1]"
    assert "c 1:*" in str(e.value)
    # incomparable overlap: 1:* and *:3 share 1:3
    with pytest.raises(ConfigError) as e:
        parse_rules([c(1, None), c(None, 3, "r", allow=False)])
    assert e.value.where == "linux.resources.devices[1]"
    # a narrower allow inside a wider deny is the same problem in blacklist mode
    with pytest.raises(ConfigError):
        parse_rules([{"allow": True, "access": "rwm"}, c(1, None, allow=False), c(1, 3, "r")])
    # no overlap in access: fine
    parse_rules([c(1, None, "r"), c(1, 3, "w", allow=False)])
    # after a reset it is fine again
    parse_rules([c(1, None), DENY_ALL, c(1, 3, allow=False)])


def test_validate_resources():
    assert CgroupManager.validate(None) == []
    assert CgroupManager.validate({"devices": [DENY_ALL]}) == [
        Rule(False, "a", WILDCARD, WILDCARD, "rwm")]
    # empty sections ask for nothing: accepted
    assert CgroupManager.validate({"memory": {}, "pids": None, "hugepageLimits": []}) == []
    # every resource is accepted now (tests/unit/test_cgroup_resources.py has the
    # details); bad values and unknown keys are ConfigErrors naming the field
    for key, value in [("memory", {"limit": 1}), ("cpu", {"shares": 2}), ("pids", {"limit": 3}),
                       ("unified", {"memory.max": "1"}), ("blockIO", {"weight": 10})]:
        assert CgroupManager.validate({"devices": [], key: value}) == []
    with pytest.raises(ConfigError) as e:
        CgroupManager.validate({"devices": [], "unified": {"memory.max": "1"}}, version="v1")
    assert e.value.where == "linux.resources.unified"
    with pytest.raises(ConfigError) as e:
        CgroupManager.validate({"memory": {"limit": -2}})
    assert e.value.where == "linux.resources.memory.limit"
    with pytest.raises(ConfigError) as e:
        CgroupManager.validate({"devices": [{"allow": True, "type": "q", "access": "r"}]},
                               where="spec.resources")
    assert e.value.where == "spec.resources.devices[0].type"


# --- emulator semantics ----------------------------------------------------------------

def allowed(rules, dtype, major, minor, access):
    emu = Emulator.from_rules(parse_rules(rules))
    bits = set(access)
    for (t, ma, mi), perms in emu.rules.items():
        if t == dtype and ma in (WILDCARD, major) and mi in (WILDCARD, minor):
            if bits <= set(perms_to_str(perms)):
                return not emu.default_allow
    return emu.default_allow


def test_emulator_semantics():
    assert not allowed([], "c", 1, 3, "r")                                  # default deny
    assert allowed([c(1, 3)], "c", 1, 3, "r")
    assert not allowed([c(1, 3)], "b", 1, 3, "r")
    assert not allowed([c(1, 3), c(1, 3, allow=False)], "c", 1, 3, "r")     # later wins
    assert allowed([c(1, 3, "r"), c(1, 3, "w")], "c", 1, 3, "rw")           # merged
    assert allowed([c(1, 3), c(1, 3, "w", allow=False)], "c", 1, 3, "rm")
    assert not allowed([c(1, 3), c(1, 3, "w", allow=False)], "c", 1, 3, "w")
    assert not allowed([c(1, 3), c(1, None, allow=False)], "c", 1, 3, "r")  # wide deny wins
    assert allowed([c(1, 3), {"allow": True, "access": "rwm"}], "b", 8, 0, "rwm")   # allow all
    assert not allowed([{"allow": True, "access": "rwm"}, c(1, 3, allow=False)], "c", 1, 3, "r")
    assert allowed([{"allow": True, "access": "rwm"}, c(1, 3, allow=False)], "c", 1, 5, "r")


def test_clean_rules_sorted_like_runc():
    emu = Emulator.from_rules(parse_rules(list(DEFAULT_ALLOWED_DEVICES)))
    assert [r.cgroup_string() for r in emu.clean_rules()] == [
        "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
        "c 5:2 rwm", "c 10:200 rwm", "c 136:* rwm"]


# --- v1 write sequence ---------------------------------------------------------------------

def test_v1_writes_from_fresh_cgroup():
    rules = parse_rules([DENY_ALL] + list(DEFAULT_ALLOWED_DEVICES) + [c(1, 3, allow=False)])
    # new exceptions in rule order: devices.list then lists them as configured
    assert v1_writes("a *:* rwm\n", rules) == [
        ("devices.deny", "a *:* rwm"),
        ("devices.allow", "c 1:8 rwm"), ("devices.allow", "c 1:7 rwm"),
        ("devices.allow", "c 5:0 rwm"), ("devices.allow", "c 1:5 rwm"),
        ("devices.allow", "c 1:9 rwm"), ("devices.allow", "c 136:* rwm"),
        ("devices.allow", "c 5:2 rwm"), ("devices.allow", "c 10:200 rwm")]


def test_v1_writes_from_allow_list_is_minimal():
    current = "c 1:3 rwm\nc 1:5 rwm\nc 136:* rw\n"
    rules = parse_rules([c(1, 5), c(136, None), c(1, 9, "r")])
    assert v1_writes(current, rules) == [
        ("devices.deny", "c 1:3 rwm"),
        ("devices.allow", "c 136:* m"),
        ("devices.allow", "c 1:9 r")]


def test_v1_writes_blacklist_target():
    rules = parse_rules([{"allow": True, "access": "rwm"}, {"allow": False, "type": "b",
                                                          "major": 8, "minor": 0, "access": "rwm"}])
    assert v1_writes("a *:* rwm\n", rules) == [
        ("devices.allow", "a *:* rwm"), ("devices.deny", "b 8:0 rwm")]


class FakeDevicesCgroup:
    """Plays the v1 devices controller on a plain directory: applies writes to
    devices.allow/deny with kernel semantics and keeps devices.list up to date."""

    def __init__(self, directory, honour_writes=True):
        self.dir = directory
        self.writes = []
        self.honour = honour_writes
        self.emu = Emulator(default_allow=True)
        self._render()

    def _render(self):
        if self.emu.default_allow:
            text = "a *:* rwm\n"
        else:
            text = "".join(Rule(True, t, ma, mi, perms_to_str(bits)).cgroup_string() + "\n"
                           for (t, ma, mi), bits in self.emu.rules.items())
        (self.dir / "devices.list").write_text(text)

    def write_file(self, directory, name, data):
        assert directory == str(self.dir)
        self.writes.append((name, data))
        if not self.honour:
            return
        kind, nums, access = data.split()
        major, minor = (WILDCARD if n == "*" else int(n) for n in nums.split(":"))
        self.emu.apply(Rule(name == "devices.allow", kind, major, minor, access))
        self._render()


def fake_v1_manager(tmp_path):
    d = tmp_path / "devices" / "ctr"
    d.mkdir(parents=True)
    return CgroupManager.from_dict({"version": "v1", "paths": {"devices": str(d)},
                                    "created": []}), d


def test_apply_devices_v1_fake_tree(tmp_path, monkeypatch):
    m, d = fake_v1_manager(tmp_path)
    fake = FakeDevicesCgroup(d)
    monkeypatch.setattr(fs_mod, "write_file", fake.write_file)
    m.apply_devices(list(DEFAULT_ALLOWED_DEVICES) + [c(1, 3, allow=False)])
    assert fake.writes[0] == ("devices.deny", "a *:* rwm")
    assert ("devices.allow", "c 1:5 rwm") in fake.writes
    assert not any("1:3" in line for _, line in fake.writes)
    assert "c 1:5 rwm" in (d / "devices.list").read_text()
    # applying again is a no-op: already in the target state
    fake.writes.clear()
    m.apply_devices(list(DEFAULT_ALLOWED_DEVICES) + [c(1, 3, allow=False)])
    assert fake.writes == []
    # and a change only writes the difference
    m.apply_devices(list(DEFAULT_ALLOWED_DEVICES))
    assert fake.writes == [("devices.allow", "c 1:3 rwm")]


def test_apply_devices_v1_detects_mismatch(tmp_path, monkeypatch):
    m, d = fake_v1_manager(tmp_path)
    fake = FakeDevicesCgroup(d, honour_writes=False)
    monkeypatch.setattr(fs_mod, "write_file", fake.write_file)
    with pytest.raises(CgroupError, match=str(d)):
        m.apply_devices([c(1, 5)])
