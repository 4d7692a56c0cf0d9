"""Validation of config.json, exec's process.json, state and features documents.

Two layers:

1. The OCI runtime-spec v1.3 JSON schemas shipped in ``pyrunc.schemas``
   (draft 2020-12, every ``$ref`` resolved from a local ``referencing.Registry``;
   nothing is ever fetched from the network).
2. Semantic checks the schema cannot express but runc makes (absolute cwd,
   non-empty args, root present, non-empty mount destinations, duplicate
   namespaces, ...).

Every failure raises :class:`pyrunc.errors.ConfigError` whose ``where`` is the
JSON path in dotted/indexed form (``mounts[3].destination``) and whose message
is one short line.

Performance: ``import jsonschema`` costs far more than the rest of
``pyrunc create``, so it is imported lazily, and only when no fast check is
registered for a schema or the fast check reports the document invalid (the
slow validator is then used to produce the precise error).  A compiled fast
path can be slotted in with :func:`register_fast_check`.
"""

from __future__ import annotations

# json, re and pathlib are imported where used: a valid config (the fast
# path) never needs them, and `create` is a fresh process every time.
import posixpath
TYPE_CHECKING = False
if TYPE_CHECKING:  # no runtime import of typing (startup time)
    from pathlib import Path
    from typing import Any, Callable, Iterable

from pyrunc.errors import ConfigError

__all__ = [
    "SCHEMA_BASE_URI",
    "SCHEMA_FILES",
    "SUPPORTED_OCI_VERSIONS",
    "validate_config",
    "validate_process",
    "validate_state",
    "validate_features",
    "check_oci_version",
    "load_schema",
    "schemas_dir",
    "schema_registry",
    "register_fast_check",
    "format_where",
]

# Every schema's "$id" is SCHEMA_BASE_URI + file name; relative "$ref"s such as
# "defs.json#/$defs/uint32" resolve against it.  ".invalid" can never resolve
# in DNS, so an unregistered reference can't turn into a network fetch.
SCHEMA_BASE_URI = "https://pyrunc.invalid/schemas/"
SCHEMA_FILES = (
    "config-schema.json",
    "config-linux.json",
    "defs.json",
    "defs-linux.json",
    "state-schema.json",
    "features-schema.json",
    "features-linux.json",
)
CONFIG_SCHEMA = "config-schema.json"
PROCESS_SCHEMA = "config-schema.json#/properties/process"
STATE_SCHEMA = "state-schema.json"
FEATURES_SCHEMA = "features-schema.json"

SUPPORTED_OCI_VERSIONS = "1.0.0 to 1.3.x"
_SUFFIX_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-")
_MAX_MINOR = 3

# ---------------------------------------------------------------------------
# fast path hook


# schema name -> callable(instance) -> bool (True: valid).  A fast check only
# answers yes/no; when it says "invalid" the jsonschema validator runs to find
# the error to report, so fast checks never need to produce messages.
_fast_checks: dict[str, Callable[[Any], bool]] = {}


def register_fast_check(schema: str, check: Callable[[Any], bool] | None) -> None:
    """Install (or with None remove) a fast validity check for `schema`
    (one of CONFIG_SCHEMA, PROCESS_SCHEMA, STATE_SCHEMA, FEATURES_SCHEMA)."""
    if check is None:
        _fast_checks.pop(schema, None)
    else:
        _fast_checks[schema] = check


def _compiled_check(name: str, schema: str) -> Callable[[Any], bool]:
    """Stand-in for `name` of the generated pyrunc/spec/_config_check.py (see
    pyrunc.spec.schemac): imports it on first use, then registers the real
    function in its place. That module imports only pyrunc.spec.patterns."""

    def check(doc: Any) -> bool:
        from pyrunc.spec import _config_check

        real = getattr(_config_check, name)
        if _fast_checks.get(schema) is check:
            register_fast_check(schema, real)
        return real(doc)

    return check


register_fast_check(CONFIG_SCHEMA, _compiled_check("check_config", CONFIG_SCHEMA))
register_fast_check(PROCESS_SCHEMA, _compiled_check("check_process", PROCESS_SCHEMA))


# ---------------------------------------------------------------------------
# public API


def validate_config(config: dict) -> None:
    """Validate a whole config.json document; raise ConfigError on the first problem."""
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a JSON object, not {_json_type(config)}", where="(root)")
    version = config.get("ociVersion")
    if isinstance(version, str):
        check_oci_version(version)
    linux = config.get("linux")
    if isinstance(linux, dict) and "timeOffsets" in linux and linux["timeOffsets"] is None:
        del linux["timeOffsets"]  # runc (Go) reads null as absent
    _schema_check(CONFIG_SCHEMA, config, "")
    _check_config_semantics(config)


def validate_process(process: dict, where_prefix: str = "process") -> None:
    """Validate a process object alone (exec's --process file uses where_prefix="")."""
    if not isinstance(process, dict):
        raise ConfigError(
            f"process must be a JSON object, not {_json_type(process)}", where=where_prefix or "(root)"
        )
    _schema_check(PROCESS_SCHEMA, process, where_prefix)
    _check_process_semantics(process, where_prefix)


def validate_state(state: dict) -> None:
    """Validate a `pyrunc state` document against state-schema.json."""
    _schema_check(STATE_SCHEMA, state, "")


def validate_features(doc: dict) -> None:
    """Validate a `pyrunc features` document against features-schema.json."""
    _schema_check(FEATURES_SCHEMA, doc, "")


def check_oci_version(version: str, where: str = "ociVersion") -> None:
    """Accept 1.0.0 up to 1.3.x, pre-release/build suffixes included."""
    numbers = _semver_numbers(version)
    if numbers is None:
        raise ConfigError(f"invalid ociVersion {version!r}: not a semantic version", where=where)
    major, minor = numbers
    if major != 1 or minor > _MAX_MINOR:
        raise ConfigError(
            f"unsupported ociVersion {version!r}: pyrunc supports {SUPPORTED_OCI_VERSIONS}",
            where=where,
        )


def _semver_numbers(version: str) -> tuple[int, int] | None:
    """(major, minor) of MAJOR.MINOR.PATCH[-pre][+build], or None if malformed."""
    core, plus, build = version.partition("+")
    core, dash, pre = core.partition("-")
    for suffix, present in ((pre, dash), (build, plus)):
        if present and (not suffix or not _SUFFIX_CHARS.issuperset(suffix)):
            return None
    parts = core.split(".")
    if len(parts) != 3 or not all(p.isdigit() and p.isascii() and (p == "0" or p[0] != "0")
                                  for p in parts):
        return None
    return int(parts[0]), int(parts[1])


# ---------------------------------------------------------------------------
# schema loading (lazy, cached)


_schemas_path: Path | None = None


def schemas_dir() -> Path:
    """The directory holding the schema files (package data ``pyrunc.schemas``).

    Found through the import system (a normal install puts it at
    site-packages/pyrunc/schemas; setuptools' editable finder maps the package
    to the source tree's schemas/, possibly as a namespace package whose
    __path__ also holds a non-directory placeholder, which is why
    importlib.resources.files() is not used), then next to this source tree.
    """
    global _schemas_path
    if _schemas_path is not None:
        return _schemas_path
    from pathlib import Path
    candidates: list[Path] = []
    try:
        from importlib.util import find_spec

        spec = find_spec("pyrunc.schemas")
    except ImportError:
        spec = None
    if spec is not None:
        if spec.origin and spec.has_location:
            candidates.append(Path(spec.origin).parent)
        candidates.extend(Path(p) for p in spec.submodule_search_locations or ())
    pkg = Path(__file__).resolve().parent.parent  # .../pyrunc
    candidates += [pkg / "schemas", pkg.parent / "schemas"]
    for cand in candidates:
        if (cand / CONFIG_SCHEMA).is_file():
            _schemas_path = cand
            return cand
    raise RuntimeError("pyrunc: cannot find the OCI schema files (package pyrunc.schemas)")


def load_schema(name: str) -> dict:
    """The parsed schema file `name` (e.g. "config-schema.json")."""
    import json
    with open(schemas_dir() / name, encoding="utf-8") as f:
        return json.load(f)


_registry = None
_validator_cls = None
_validators: dict[str, Any] = {}


def schema_registry():
    """A referencing.Registry holding every shipped schema under its $id."""
    global _registry
    if _registry is None:
        from referencing import Registry
        from referencing.jsonschema import DRAFT202012

        resources = []
        for name in SCHEMA_FILES:
            doc = load_schema(name)
            uri = SCHEMA_BASE_URI + name
            if doc.get("$id") != uri:  # pragma: no cover - guards hand edits
                raise RuntimeError(f"schema {name} has $id {doc.get('$id')!r}, expected {uri!r}")
            # jsonschema picks the validator class from "$schema" when it follows
            # a $ref; dropping it keeps our class (and its integer type checker).
            doc.pop("$schema", None)
            resources.append((uri, DRAFT202012.create_resource(doc)))
        _registry = Registry().with_resources(resources).crawl()
    return _registry


def _get_validator_cls():
    global _validator_cls
    if _validator_cls is None:
        from jsonschema import Draft202012Validator, validators

        # Like Go's encoding/json: 1.0 is not an integer (draft 2020-12 says it is).
        checker = Draft202012Validator.TYPE_CHECKER.redefine(
            "integer", lambda _checker, inst: isinstance(inst, int) and not isinstance(inst, bool)
        )
        _validator_cls = validators.extend(Draft202012Validator, type_checker=checker)
    return _validator_cls


def _get_validator(schema: str):
    v = _validators.get(schema)
    if v is None:
        cls = _get_validator_cls()
        v = cls({"$ref": SCHEMA_BASE_URI + schema}, registry=schema_registry())
        _validators[schema] = v
    return v


def _schema_check(schema: str, instance: Any, where_prefix: str) -> None:
    fast = _fast_checks.get(schema)
    if fast is not None and fast(instance):
        return
    from jsonschema.exceptions import best_match

    error = best_match(_get_validator(schema).iter_errors(instance))
    if error is None:
        return
    raise _to_config_error(error, where_prefix)


# ---------------------------------------------------------------------------
# turning jsonschema errors into ConfigError

def _is_ident(key: str) -> bool:
    return key.isidentifier() and key.isascii()
_MAX_MSG = 160


def format_where(parts: Iterable[str | int], prefix: str = "") -> str:
    """["mounts", 3, "destination"] -> "mounts[3].destination"; odd keys are quoted."""
    import json
    out = prefix
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _is_ident(p):
            out += f".{p}" if out else p
        else:
            out += f"[{json.dumps(p)}]"
    return out


def _short(value: Any, limit: int = 40) -> str:
    import json
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= limit else repr(value[: limit - 5]) + "..."
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MSG else text[: _MAX_MSG - 3] + "..."


def _to_config_error(error, where_prefix: str) -> ConfigError:
    path = list(error.absolute_path)
    kind = error.validator
    inst = error.instance
    if kind == "required" and isinstance(inst, dict):
        missing = [p for p in error.validator_value if p not in inst]
        name = next((p for p in missing if repr(p) in error.message), missing[0] if missing else "?")
        return ConfigError("required field is missing", where=format_where(path + [name], where_prefix))
    if kind == "type":
        expected = error.validator_value
        if isinstance(expected, list):
            expected = " or ".join(repr(t) for t in expected)
        else:
            expected = repr(expected)
        msg = f"{_short(inst)} is not of type {expected}"
    elif kind == "enum":
        choices = ", ".join(repr(c) for c in error.validator_value)
        msg = f"{_short(inst)} is not one of {choices}"
    elif kind == "pattern":
        msg = f"{_short(inst)} does not match {error.validator_value!r}"
    elif kind in ("minimum", "maximum"):
        word = "less than the minimum" if kind == "minimum" else "greater than the maximum"
        msg = f"{_short(inst)} is {word} of {error.validator_value}"
    elif kind == "minItems" and error.validator_value == 1:
        msg = "must not be empty"
    else:
        msg = error.message
    return ConfigError(_one_line(msg), where=format_where(path, where_prefix) or "(root)")


# ---------------------------------------------------------------------------
# semantic checks (run after the schema passed: types are known to be right)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_config_semantics(config: dict) -> None:
    root = config.get("root")
    if root is None:
        raise ConfigError("root must be specified", where="root")
    if not root["path"]:
        raise ConfigError("must not be empty", where="root.path")

    process = config.get("process")
    if process is not None:
        _check_process_semantics(process, "process")

    for i, mount in enumerate(config.get("mounts") or ()):
        where = f"mounts[{i}]"
        dest = mount["destination"]
        for field in ("destination", "source", "type"):
            value = mount.get(field)
            if isinstance(value, str) and "\0" in value:
                raise ConfigError("must not contain a NUL byte", where=f"{where}.{field}")
        for j, opt in enumerate(mount.get("options") or ()):
            if "\0" in opt:
                raise ConfigError("must not contain a NUL byte", where=f"{where}.options[{j}]")
        if not dest:
            raise ConfigError("must not be empty", where=f"{where}.destination")
        # a relative destination is allowed on Linux (runtime-spec 1.2), relative to "/"

    linux = config.get("linux")
    if linux is not None:
        _check_linux_semantics(linux)


def _check_linux_semantics(linux: dict) -> None:
    seen: dict[str, int] = {}
    for i, ns in enumerate(linux.get("namespaces") or ()):
        t = ns["type"]
        if t in seen:
            raise ConfigError(f'malformed spec file: duplicated ns "{t}"',
                              where=f"linux.namespaces[{i}].type")
        seen[t] = i
    for key in linux.get("sysctl") or ():
        if not key or not key.strip():
            raise ConfigError("sysctl name must not be empty", where=format_where(["sysctl", key], "linux"))


def _check_process_semantics(process: dict, prefix: str) -> None:
    cwd = process["cwd"]
    if not cwd:  # runc's words
        raise ConfigError("Cwd property must not be empty", where=_join(prefix, "cwd"))
    if not posixpath.isabs(cwd):
        raise ConfigError(f"Cwd must be an absolute path: {cwd!r}", where=_join(prefix, "cwd"))
    if not process.get("args"):
        raise ConfigError("args must not be empty", where=_join(prefix, "args"))

    sched = process.get("scheduler")
    if sched is not None:
        where = _join(prefix, "scheduler")
        policy = sched["policy"]
        nice = sched.get("nice", 0)
        if policy in ("SCHED_OTHER", "SCHED_BATCH") and not -20 <= nice <= 19:
            raise ConfigError(f"nice {nice} is out of range -20..19", where=f"{where}.nice")
        if sched.get("priority", 0) != 0 and policy not in ("SCHED_FIFO", "SCHED_RR"):
            raise ConfigError(
                "priority can only be specified for SCHED_FIFO or SCHED_RR", where=f"{where}.priority"
            )
        if policy != "SCHED_DEADLINE":
            for field in ("runtime", "deadline", "period"):
                if sched.get(field, 0) != 0:
                    raise ConfigError(
                        f"{field} can only be specified for SCHED_DEADLINE", where=f"{where}.{field}"
                    )

    ioprio = process.get("ioPriority")
    if ioprio is not None:
        prio = ioprio.get("priority", 0)
        if not 0 <= prio <= 7:
            raise ConfigError(
                f"priority {prio} is out of range 0..7", where=_join(prefix, "ioPriority.priority")
            )
