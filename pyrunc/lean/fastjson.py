"""JSON for the hot commands without the json package, whose import pulls
in `re` (about 9 ms, most of what `pyrunc state` would spend). Decoding uses
the same C scanner the json package uses; encoding handles the plain types
state and log records hold."""
import _json

_INF = float("inf")


class _DecodeContext:
    # the attributes _json.make_scanner reads from a json.JSONDecoder
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None
    memo = None


_scan = _json.make_scanner(_DecodeContext())
_WS = " \t\n\r"


def loads(text: str):
    start = len(text) - len(text.lstrip(_WS))
    try:
        value, end = _scan(text, start)
    except StopIteration as e:
        raise ValueError(f"invalid JSON at offset {e.value}") from None
    except ValueError:
        raise
    except Exception:  # noqa: BLE001 - the bare scanner fails oddly on NaN, control characters…
        raise ValueError("invalid JSON") from None
    if text[end:].strip(_WS):
        raise ValueError(f"extra data after JSON at offset {end}")
    return value


def dumps(value, indent: int | None = None) -> str:
    """Like json.dumps(value, indent=indent) for dict/list/str/int/float/bool/None
    (compact separators without indent, as the hot outputs want)."""
    return _encode(value, indent, 0)


_quote = _json.encode_basestring_ascii  # json.dumps' default ensure_ascii


def _encode(v, indent, level) -> str:
    if isinstance(v, str):
        return _quote(v)
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return int.__repr__(v)
    if isinstance(v, float):
        if v != v or v in (_INF, -_INF):  # NaN, ±inf (math costs an import)
            raise ValueError(f"cannot encode {v!r} as JSON")
        return float.__repr__(v)
    if isinstance(v, dict):
        items = [(_quote(str(k)), _encode(x, indent, level + 1)) for k, x in v.items()]
        if not items:
            return "{}"
        if indent is None:
            return "{" + ",".join(f"{k}:{x}" for k, x in items) + "}"
        pad, end = "\n" + " " * (indent * (level + 1)), "\n" + " " * (indent * level)
        return "{" + ",".join(f"{pad}{k}: {x}" for k, x in items) + end + "}"
    if isinstance(v, (list, tuple)):
        items = [_encode(x, indent, level + 1) for x in v]
        if not items:
            return "[]"
        if indent is None:
            return "[" + ",".join(items) + "]"
        pad, end = "\n" + " " * (indent * (level + 1)), "\n" + " " * (indent * level)
        return "[" + ",".join(pad + x for x in items) + end + "]"
    raise TypeError(f"cannot encode {type(v).__name__} as JSON")
