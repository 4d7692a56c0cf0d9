"""pyrunc.spec.keys: config keys read as runc reads them. The expected
documents are what Go's encoding/json makes of each input in specs-go
structs (checked with a Go program against runc 1.5.1's vendored
runtime-spec; see the cases' comments)."""
import copy

import pytest

from pyrunc import log
from pyrunc.spec.keys import go_fold, normalize_config, normalize_process

BASE = {"ociVersion": "1.2.0", "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}}


def cfg(**top):
    doc = copy.deepcopy(BASE)
    doc.update(top)
    return doc


def test_exact_keys_are_left_alone():
    doc = cfg(mounts=[{"destination": "/proc", "type": "proc", "source": "proc"}],
              annotations={"Any.Key": "v", "ANY.KEY": "w"},
              linux={"sysctl": {"Net.Foo": "1"}, "timeOffsets": {"Monotonic": {"secs": 1}}})
    before = copy.deepcopy(doc)
    assert normalize_config(doc) is doc
    assert doc == before  # map keys (annotations, sysctl, timeOffsets) are data, never folded


def test_unknown_properties_are_kept_unused_with_a_debug_line(monkeypatch):
    lines = []
    monkeypatch.setattr(log, "debug", lines.append)
    doc = cfg(unknownTop=1)
    doc["process"]["weird"] = {"a": 1}
    normalize_config(doc)
    assert doc["unknownTop"] == 1 and doc["process"]["weird"] == {"a": 1}
    assert lines == ["config: ignoring unknown property unknownTop",
                     "config: ignoring unknown property process.weird"]


@pytest.mark.parametrize("given, expected", [
    # a key that differs only in case is the field
    ({"Process": {"Args": ["echo"], "CWD": "/"}}, {"process": {"args": ["echo"], "cwd": "/"}}),
    # Go's folding beyond ASCII: long s is s, the Kelvin sign is k
    ({"proceſs": {"args": ["a"], "cwd": "/"}, "ANNOTATIONS": {"k": "v"}},
     {"process": {"args": ["a"], "cwd": "/"}, "annotations": {"k": "v"}}),
    # the later of two wins (Go: {"args":["x"],"ARGS":["y"]} -> args ["y"])
    ({"process": {"args": ["x"], "ARGS": ["y"], "cwd": "/"}},
     {"process": {"args": ["y"], "cwd": "/"}}),
    # structs merge field by field, process.user too
    ({"process": {"args": ["a"], "user": {"uid": 1, "gid": 2}},
      "Process": {"cwd": "/x", "USER": {"uid": 5}}},
     {"process": {"args": ["a"], "user": {"uid": 5, "gid": 2}, "cwd": "/x"}}),
    # array elements are decoded into the earlier elements at their index
    ({"mounts": [{"destination": "/a", "type": "bind", "options": ["x"]}],
      "MOUNTS": [{"destination": "/b"}]},
     {"mounts": [{"destination": "/b", "type": "bind", "options": ["x"]}]}),
    # maps gain keys
    ({"annotations": {"a": "1"}, "Annotations": {"b": "2"}}, {"annotations": {"a": "1", "b": "2"}}),
    # a later null clears a pointer, leaves a string and a struct value alone
    ({"process": {"args": ["a"]}, "PROCESS": None}, {}),
    ({"hostname": "a", "HOSTNAME": None}, {"hostname": "a"}),
    ({"process": {"user": {"uid": 1, "gid": 2}, "User": None}},
     {"process": {"user": {"uid": 1, "gid": 2}}}),
    # a null field is as if absent
    ({"process": {"args": ["a"], "env": None, "terminal": None}, "hooks": None},
     {"process": {"args": ["a"]}}),
])
def test_keys_as_go_reads_them(given, expected):
    assert normalize_config(given) == expected


def test_process_file_keys():
    assert normalize_process({"Args": ["a"], "Env": ["A=1"], "cwd": "/", "USER": {"UID": 3}}, "") == \
        {"args": ["a"], "env": ["A=1"], "cwd": "/", "user": {"uid": 3}}


def test_go_fold():
    assert go_fold("hostName") == go_fold("HOSTNAME") == "HOSTNAME"
    assert go_fold("hoſtname") == "HOSTNAME"
    assert go_fold("\u212aey") == go_fold("key")    # KELVIN SIGN
    assert go_fold("straße") == "STRAßE"           # one rune stays one rune (Go's ToUpper)
