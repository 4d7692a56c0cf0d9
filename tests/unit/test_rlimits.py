import resource

import pytest

from pyrunc.errors import ConfigError
from pyrunc.security import rlimits as rl
from pyrunc.security.rlimits import RLIM_INFINITY, Rlimit, parse_rlimits


def test_all_names_match_python_resource_module():
    assert len(rl.RLIMITS) == 16
    assert rl.RLIMITS["RLIMIT_LOCKS"] == 10  # not exported by Python's resource module
    for name, value in rl.RLIMITS.items():
        assert getattr(resource, name, value) == value, name


def test_parse():
    out = parse_rlimits([
        {"type": "RLIMIT_NOFILE", "soft": 3000, "hard": 4000},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": RLIM_INFINITY},
    ])
    assert out == [Rlimit(resource.RLIMIT_NOFILE, 3000, 4000), Rlimit(resource.RLIMIT_CORE, 0, 2**64 - 1)]
    assert out[0].name == "RLIMIT_NOFILE"
    assert (out[0].resource, out[0].soft, out[0].hard) == (7, 3000, 4000)


def test_none_and_empty():
    assert parse_rlimits(None) == []
    assert parse_rlimits([]) == []


@pytest.mark.parametrize("rlimits,where,word", [
    ([{"type": "RLIMIT_TEST", "soft": 1, "hard": 1}], "process.rlimits[0].type", "wrong rlimit value"),
    ([{"type": "nofile", "soft": 1, "hard": 1}], "process.rlimits[0].type", "wrong rlimit value"),
    ([{"type": "RLIMIT_CPU", "soft": 1, "hard": 1},
      {"type": "RLIMIT_NOFILE", "soft": 10, "hard": 1}], "process.rlimits[1]", "greater"),
    ([{"type": "RLIMIT_CPU", "soft": 1, "hard": 1},
      {"type": "RLIMIT_CPU", "soft": 1, "hard": 2}], "process.rlimits[1].type", "duplicate"),
    ([{"type": "RLIMIT_CPU", "soft": -1, "hard": 1}], "process.rlimits[0].soft", "range"),
    ([{"type": "RLIMIT_CPU", "soft": 1, "hard": 2**64}], "process.rlimits[0].hard", "range"),
    ([{"type": "RLIMIT_CPU", "soft": "1", "hard": 1}], "process.rlimits[0].soft", "integer"),
    ([{"type": "RLIMIT_CPU", "hard": 1}], "process.rlimits[0].soft", "required"),
    ([{"type": "RLIMIT_CPU", "soft": 1}], "process.rlimits[0].hard", "required"),
    ([{"soft": 1, "hard": 1}], "process.rlimits[0].type", "type"),
    (["RLIMIT_CPU"], "process.rlimits[0]", "object"),
    ({"type": "RLIMIT_CPU"}, "process.rlimits", "list"),
])
def test_errors(rlimits, where, word):
    with pytest.raises(ConfigError) as ei:
        parse_rlimits(rlimits)
    assert ei.value.where == where
    assert word in ei.value.message


def test_python_rlim_conversion():
    assert rl._to_rlim(RLIM_INFINITY) == resource.RLIM_INFINITY == -1
    assert rl._to_rlim(5) == 5
    assert rl._from_rlim(-1) == RLIM_INFINITY
    assert rl._from_rlim(rl._to_rlim(2**63)) == 2**63


def test_current_rlimits_reports_all():
    cur = rl.current_rlimits()
    assert len(cur) == 16
    nofile = next(r for r in cur if r.name == "RLIMIT_NOFILE")
    assert (nofile.soft, nofile.hard) == tuple(rl._from_rlim(v) for v in resource.getrlimit(7))
