"""config.json read as runc's Go decoder reads it (pyrunc/spec/load.py)."""
import pytest

from pyrunc.errors import ConfigError
from pyrunc.spec.load import MAX_DEPTH, parse_json


def test_bytes_that_are_not_utf8_read_as_replacement_characters():
    assert parse_json(b'{"a": "x\xffy"}', "config.json") == {"a": "x\ufffdy"}


@pytest.mark.parametrize("escape", ["\\ud800", "\\uDC00", "\\udbff"])
def test_a_lone_surrogate_escape_reads_as_a_replacement_character(escape):
    doc = f'{{"root": {{"path": "a{escape}b"}}, "k{escape}": ["{escape}"]}}'.encode()
    assert parse_json(doc, "config.json") == {"root": {"path": "a\ufffdb"},
                                              "k\ufffd": ["\ufffd"]}


def test_a_surrogate_pair_is_one_character():
    assert parse_json(b'{"a": "\\ud83d\\ude00"}', "config.json") == {"a": "\U0001F600"}


def test_nan_is_refused_and_deep_nesting_is_one_line():
    with pytest.raises(ConfigError, match="config.json is not valid JSON"):
        parse_json(b'{"a": NaN}', "config.json")
    deep = b"[" * (MAX_DEPTH + 5) + b"]" * (MAX_DEPTH + 5)
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_json(deep, "config.json")
