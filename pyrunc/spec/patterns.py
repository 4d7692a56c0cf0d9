"""Plain-Python stand-ins for the regex ``pattern``s of the OCI runtime-spec schemas.

``import re`` drags in enum, functools, collections... and costs milliseconds
of every ``pyrunc create`` (a fresh process), just to check a handful of
fixed patterns.  Each function here answers exactly what
``re.search(pattern, s) is not None`` answers for every ``str`` ``s``, with
str methods only.  :mod:`pyrunc.spec.schemac` emits a call to the predicate of
:data:`PREDICATES` for a known pattern and falls back to a lazily compiled
regex for any other.

Python's regex rules that matter here (no flags, str pattern):

* ``$`` matches at the end *and* just before one trailing ``"\\n"``, so an
  anchored pattern whose body cannot contain a newline accepts ``s`` iff it
  accepts ``s`` minus one trailing ``"\\n"`` (:func:`_line`);
* ``.`` is anything but ``"\\n"``;
* ``[0-9]`` and ``[A-Z]`` are ASCII ranges (``str.isdigit`` / ``str.isupper``
  would accept ``"٣"`` / ``"É"``, hence the explicit sets).

tests/unit/test_spec_patterns.py compares every predicate with ``re.search``.
"""

# (no "from __future__ import annotations": even __future__ is an import)
__all__ = [
    "PREDICATES",
    "any_char",
    "cap_name",
    "cpu_list",
    "file_type",
    "hugepage_size",
    "mem_bw_schema",
    "oci_version",
    "oci_version_supported",
    "rlimit_type",
]

_DIGITS = frozenset("0123456789")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_CAP_CHARS = _UPPER | {"_"}
_CPU_LIST = _DIGITS | frozenset(", -")
_SEMVER_IDENT = _DIGITS | _UPPER | frozenset("abcdefghijklmnopqrstuvwxyz.-")  # [0-9A-Za-z.-]


def _line(s: str) -> str:
    """`s` without the one trailing newline that ``$`` may stand before."""
    return s[:-1] if s.endswith("\n") else s


def _only(s: str, chars: frozenset) -> bool:
    return all(c in chars for c in s)


def _positive(s: str) -> bool:
    """``[1-9][0-9]*``"""
    return s != "" and s[0] != "0" and _only(s, _DIGITS)


def _number(s: str) -> bool:
    """``0|[1-9][0-9]*`` (no leading zeros)."""
    return s == "0" or _positive(s)


def _semver_suffix(s: str) -> str | None:
    """Split off ``(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?`` from the end of `s`;
    returns the part before it, or None when the suffix is malformed.

    The dotted numbers before it contain neither "-" nor "+", so the first "+"
    starts the build part and the first "-" before it the pre-release part."""
    s, plus, build = s.partition("+")
    if plus and not (build and _only(build, _SEMVER_IDENT)):  # a second "+" fails here too
        return None
    s, minus, pre = s.partition("-")
    if minus and not (pre and _only(pre, _SEMVER_IDENT)):
        return None
    return s


def oci_version(s: str) -> bool:
    r"""``^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$``"""
    core = _semver_suffix(_line(s))
    if core is None:
        return False
    parts = core.split(".")
    return len(parts) == 3 and all(_number(p) for p in parts)


def oci_version_supported(s: str) -> bool:
    r"""``^1\.[0-3]\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$``"""
    core = _semver_suffix(_line(s))
    if core is None:
        return False
    parts = core.split(".")
    return len(parts) == 3 and parts[0] == "1" and parts[1] in ("0", "1", "2", "3") and _number(parts[2])


def rlimit_type(s: str) -> bool:
    """``^RLIMIT_[A-Z]+$``"""
    s = _line(s)
    return s.startswith("RLIMIT_") and len(s) > 7 and _only(s[7:], _UPPER)


def cap_name(s: str) -> bool:
    """``^CAP_[A-Z_]+$`` (features-linux.json)"""
    s = _line(s)
    return s.startswith("CAP_") and len(s) > 4 and _only(s[4:], _CAP_CHARS)


def cpu_list(s: str) -> bool:
    """``^[0-9, -]*$`` (execCPUAffinity; so the empty string too)"""
    return _only(_line(s), _CPU_LIST)


def hugepage_size(s: str) -> bool:
    """``^[1-9][0-9]*[KMG]B$``"""
    s = _line(s)
    return len(s) >= 3 and s[-1] == "B" and s[-2] in "KMG" and _positive(s[:-2])


def mem_bw_schema(s: str) -> bool:
    r"""``^MB:[^\n]*$``"""
    s = _line(s)
    return s.startswith("MB:") and "\n" not in s


def file_type(s: str) -> bool:
    """``^[cbup]$``"""
    return _line(s) in ("c", "b", "u", "p")


def any_char(s: str) -> bool:
    """``.{1,}`` (unanchored: some character that is not a newline)"""
    return s.strip("\n") != ""


# schema pattern (exactly as in the JSON, after decoding) -> predicate
PREDICATES = {
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$": oci_version,
    r"^1\.[0-3]\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$": oci_version_supported,
    r"^RLIMIT_[A-Z]+$": rlimit_type,
    r"^CAP_[A-Z_]+$": cap_name,
    r"^[0-9, -]*$": cpu_list,
    r"^[1-9][0-9]*[KMG]B$": hugepage_size,
    r"^MB:[^\n]*$": mem_bw_schema,
    r"^[cbup]$": file_type,
    r".{1,}": any_char,
}
