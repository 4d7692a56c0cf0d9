import pytest

from pyrunc.errors import ConfigError
from pyrunc.security import capabilities as caps
from pyrunc.security.capabilities import CapabilitySets, parse_capabilities


def test_table_is_complete_and_dense():
    assert caps.CAPABILITIES["CAP_CHOWN"] == 0
    assert caps.CAPABILITIES["CAP_SETPCAP"] == 8
    assert caps.CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert caps.CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert sorted(caps.CAPABILITIES.values()) == list(range(41))
    assert caps.known_capabilities()[0] == "CAP_CHOWN"
    assert len(caps.known_capabilities()) == 41


def test_none_means_untouched():
    assert parse_capabilities(None) is None


def test_masks():
    s = parse_capabilities({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_KILL"],
        "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": [],
        "ambient": ["CAP_KILL", "CAP_KILL"],
    })
    assert s == CapabilitySets(bounding=(1 << 0) | (1 << 5) | (1 << 10), effective=1 << 5,
                               inheritable=0, permitted=(1 << 5) | 1, ambient=1 << 5)


def test_missing_sets_are_empty():
    assert parse_capabilities({}) == CapabilitySets()
    assert parse_capabilities({"bounding": None}) == CapabilitySets()


def test_unknown_name_names_the_element():
    with pytest.raises(ConfigError) as ei:
        parse_capabilities({"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_FOO"]})
    assert ei.value.where == "process.capabilities.bounding[3]"
    assert "CAP_FOO" in ei.value.message


def test_custom_where_and_lowercase_rejected():
    with pytest.raises(ConfigError) as ei:
        parse_capabilities({"ambient": ["cap_chown"]}, where="caps")
    assert ei.value.where == "caps.ambient[0]"


@pytest.mark.parametrize("value,where", [
    ("CAP_CHOWN", "process.capabilities.permitted"),
    ([1], "process.capabilities.permitted[0]"),
])
def test_bad_types(value, where):
    with pytest.raises(ConfigError) as ei:
        parse_capabilities({"permitted": value})
    assert ei.value.where == where


def test_not_an_object():
    with pytest.raises(ConfigError) as ei:
        parse_capabilities(["CAP_CHOWN"])
    assert ei.value.where == "process.capabilities"


def test_unknown_set():
    with pytest.raises(ConfigError) as ei:
        parse_capabilities({"bounding": [], "effectiv": []})
    assert ei.value.where == "process.capabilities.effectiv"


def test_cap_above_kernel_last_cap(monkeypatch):
    monkeypatch.setattr(caps, "_cap_last_cap", 37)
    parse_capabilities({"bounding": ["CAP_AUDIT_READ"]})
    with pytest.raises(ConfigError) as ei:
        parse_capabilities({"bounding": ["CAP_CHOWN", "CAP_BPF"]})
    assert ei.value.where == "process.capabilities.bounding[1]"
    assert "kernel" in ei.value.message


def test_effective_must_be_permitted():
    with pytest.raises(ConfigError) as ei:
        parse_capabilities({"effective": ["CAP_KILL", "CAP_CHOWN"], "permitted": ["CAP_KILL"]})
    assert ei.value.where == "process.capabilities.effective[1]"
    assert "CAP_CHOWN" in ei.value.message


def test_cap_last_cap_reads_kernel():
    assert 0 <= caps.cap_last_cap() <= 63


def test_cap_names():
    assert caps.cap_names((1 << 0) | (1 << 21)) == ["CAP_CHOWN", "CAP_SYS_ADMIN"]
    assert caps.cap_names(1 << 50) == ["CAP_50"]
