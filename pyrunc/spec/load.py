"""Reading a bundle's config.json: the fast JSON scanner first, the json
package only to word an error (its import costs create milliseconds)."""
import os

from pyrunc.errors import ConfigError
from pyrunc.lean import fastjson


# nesting levels a config or process document may have: Go's decoder allows
# 10000, but no real document nears 20, and deeper ones would exhaust
# Python's recursion in the steps after decoding
MAX_DEPTH = 200


def load_config(bundle: str) -> dict:
    """The bundle's config.json, its keys read as runc reads them (spec/keys.py)."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(f"config.json not found in bundle {bundle}") from None
    config = parse_json(data, "config.json")
    if isinstance(config, dict):
        from pyrunc.spec.keys import normalize_config
        normalize_config(config)
    return config


def parse_json(data: bytes, what: str):
    """A JSON document as runc's Go decoder reads it: bytes that are not
    UTF-8 read as U+FFFD; ConfigError (naming `what`) if it is not JSON or is
    nested deeper than MAX_DEPTH."""
    text = data.decode("utf-8", "replace")
    try:
        value = fastjson.loads(text)
    except ValueError:
        # broken JSON (or deeply nested): the json package decides and words the error
        import json
        try:
            value = json.loads(text, parse_constant=_not_a_number)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{what} is not valid JSON: {e}") from None
        except ValueError as e:  # NaN, Infinity: Python's extension, not JSON (Go refuses them)
            raise ConfigError(f"{what} is not valid JSON: {e}") from None
        except RecursionError:
            raise _too_deep(what) from None
    if text.count("[") + text.count("{") > MAX_DEPTH:  # (else it cannot be that deep)
        _check_depth(value, what)
    if "\\ud" in text or "\\uD" in text:  # (else no escape made a surrogate)
        value = _without_lone_surrogates(value)
    return value


def _without_lone_surrogates(value):
    """An escaped UTF-16 surrogate without its pair ("\\ud800") reads as U+FFFD,
    as Go's decoder reads it (Python keeps it, and no path or message can
    then be encoded)."""
    if isinstance(value, str):
        if any("\ud800" <= c <= "\udfff" for c in value):
            return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
        return value
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v)
                for k, v in value.items()}
    return value


def _not_a_number(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _check_depth(value, what: str) -> None:
    level = [value]
    for _ in range(MAX_DEPTH):
        level = [v for x in level if isinstance(x, (dict, list))
                 for v in (x.values() if isinstance(x, dict) else x)]
        if not level:
            return
    if any(isinstance(x, (dict, list)) for x in level):
        raise _too_deep(what)


def _too_deep(what: str) -> ConfigError:
    return ConfigError(f"{what} is nested too deeply (more than {MAX_DEPTH} levels)")
