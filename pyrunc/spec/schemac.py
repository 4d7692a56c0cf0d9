"""schemac: compile JSON schemas (draft 2020-12) into a plain-Python validity check.

``pyrunc create`` validates every config.json against the OCI runtime-spec
schemas, and ``import jsonschema`` alone costs far more than the rest of the
command.  This module turns the schemas into the source of a small module of
plain functions (one per ``$ref`` target) that answer "valid or not";
:mod:`pyrunc.spec.validate` registers it as the fast check and only falls
back to jsonschema to explain a failure.  A ``pattern`` with a hand-written
predicate in :data:`pyrunc.spec.patterns.PREDICATES` (all of the OCI
schemas' patterns) becomes a call to it; any other is compiled with ``re`` on
first use, so the generated module never imports ``re`` when it is loaded
(``import re`` alone costs milliseconds of every ``pyrunc create``).

The generated checker is exactly as strict as jsonschema with the validator
class of :mod:`pyrunc.spec.validate` (``Draft202012Validator``, no format
assertion, and -- like Go's encoding/json -- ``1.0`` is not an ``integer``;
pass ``float_integers=True`` for the draft's own rule that it is).  It is
defined on JSON values (dict, list, str, int, float, bool, None, as
:func:`json.load` produces) and mirrors jsonschema's keyword implementations
(``re.search`` for patterns, ``len()`` for string lengths, jsonschema's
``equal``/``uniq`` for enum/const/uniqueItems, keywords that don't apply to
an instance's type are ignored).

Supported keywords: type (string or list), properties, required,
additionalProperties, patternProperties, items, prefixItems, enum, const,
pattern, minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength,
maxLength, minItems, maxItems, uniqueItems, $ref, $defs, definitions, allOf,
anyOf, oneOf, not, boolean schemas; format and the annotations ($schema and
$id at a document's root, title, description, $comment, default, examples,
deprecated, readOnly, writeOnly) are ignored, as jsonschema does.  Anything
else makes the compiler refuse (:class:`SchemaCompileError`) rather than
silently accept documents jsonschema would reject.

Regenerate pyrunc/spec/_config_check.py after changing a schema::

    python -m pyrunc.spec.schemac            # write it
    python -m pyrunc.spec.schemac --check    # exit 1 when it is stale

Standard library only; nothing here imports jsonschema.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin

from pyrunc.spec import patterns as _patterns

__all__ = [
    "DRAFT_2020_12",
    "SUPPORTED_KEYWORDS",
    "SchemaCompileError",
    "compile_schemas",
    "compile_checker",
    "config_checker_source",
    "main",
]

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

OUTPUT = Path(__file__).with_name("_config_check.py")
# public function name in the generated module -> schema (relative to the schema base URI)
CONFIG_ENTRIES = {
    "check_config": "config-schema.json",
    "check_process": "config-schema.json#/properties/process",
}
# key shapes in the generated module (see key_shape) -> schema
KEY_ENTRIES = {
    "CONFIG_KEYS": "config-schema.json",
    "PROCESS_KEYS": "config-schema.json#/properties/process",
}

_ANNOTATIONS = frozenset(
    {"title", "description", "$comment", "default", "examples", "deprecated", "readOnly", "writeOnly", "format"}
)
_CONTAINERS = frozenset({"$defs", "definitions"})  # hold subschemas; only reached through $ref
_ROOT_ONLY = frozenset({"$schema", "$id"})
_ASSERTIONS = frozenset(
    {
        "type", "enum", "const", "$ref", "allOf", "anyOf", "oneOf", "not",
        "pattern", "minLength", "maxLength",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "properties", "required", "additionalProperties", "patternProperties",
        "items", "prefixItems", "minItems", "maxItems", "uniqueItems",
    }
)
SUPPORTED_KEYWORDS = _ASSERTIONS | _ANNOTATIONS | _CONTAINERS | _ROOT_ONLY

_JSON_TYPES = ("null", "boolean", "object", "array", "number", "integer", "string")
_NUMERIC = frozenset({"integer", "number"})
_IDENT_BAD = re.compile(r"[^0-9A-Za-z_]+")

# Helpers copied into the generated module only when a schema needs them.  They
# reproduce jsonschema._utils.equal / uniq (bool is not 1, 1 == 1.0, deep
# comparison of arrays and objects).
_HELPERS = {
    "_regex": '''
def _regex(pattern):
    """A re.search(pattern, s) predicate for a pattern pyrunc.spec.patterns has
    no function for; re is imported and the pattern compiled on first call, so
    loading this module does not cost an import of re."""
    search = None

    def matches(string):
        nonlocal search
        if search is None:
            import re

            search = re.compile(pattern).search
        return search(string) is not None

    return matches
''',
    "_equal": '''
def _unbool(element, true=object(), false=object()):
    if element is True:
        return true
    if element is False:
        return false
    return element


def _equal(one, two):
    """jsonschema._utils.equal: JSON equality (True is not 1; 1 == 1.0)."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, _Sequence) and isinstance(two, _Sequence):
        return len(one) == len(two) and all(_equal(i, j) for i, j in zip(one, two))
    if isinstance(one, _Mapping) and isinstance(two, _Mapping):
        return len(one) == len(two) and all(k in two and _equal(v, two[k]) for k, v in one.items())
    return _unbool(one) == _unbool(two)
''',
    "_uniq": '''
def _uniq(container):
    """jsonschema._utils.uniq: are all items of `container` distinct (by _equal)?"""
    try:
        ordered = sorted(_unbool(i) for i in container)
        for i, j in zip(ordered, ordered[1:]):
            if _equal(i, j):
                return False
    except (NotImplementedError, TypeError):
        seen = []
        for e in container:
            e = _unbool(e)
            for i in seen:
                if _equal(i, e):
                    return False
            seen.append(e)
    return True
''',
}


class SchemaCompileError(ValueError):
    """The schema uses something the compiler does not support (or is malformed)."""


def _is_num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


class _Compiler:
    def __init__(self, documents: dict, float_integers: bool) -> None:
        self.documents = documents  # absolute URI (no fragment) -> schema document
        self.float_integers = float_integers
        self.names: dict[tuple[str, str], str] = {}  # (doc uri, JSON pointer) -> function name
        self.queue: list[tuple[str, str]] = []
        self.used_names: set[str] = set()
        self.used_docs: list[str] = []
        self.consts: list[str] = []
        self.const_by_value: dict[str, str] = {}
        self.helpers: set[str] = set()
        self.needs_number = False
        self.uses_patterns = False  # the generated module imports pyrunc.spec.patterns
        self.functions: list[str] = []
        self.aliases: list[tuple[str, str]] = []

    # ------------------------------------------------------------- locations

    @staticmethod
    def where(loc: tuple[str, str]) -> str:
        """A short display form: file name and JSON pointer."""
        name = loc[0].rsplit("/", 1)[-1]
        return f"{name}#{loc[1]}" if loc[1] else name

    def lookup(self, loc: tuple[str, str]):
        uri, pointer = loc
        if uri not in self.documents:
            raise SchemaCompileError(f"$ref to unknown document {uri!r} (only local schemas are supported)")
        node = self.documents[uri]
        if pointer:
            if not pointer.startswith("/"):
                raise SchemaCompileError(f"unsupported $ref fragment {pointer!r} (anchors are not supported)")
            for token in pointer[1:].split("/"):
                token = _unescape(token)
                if isinstance(node, dict) and token in node:
                    node = node[token]
                elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                    node = node[int(token)]
                else:
                    raise SchemaCompileError(f"unresolvable $ref {self.where(loc)!r}")
        if not isinstance(node, (dict, bool)):
            raise SchemaCompileError(f"$ref {self.where(loc)!r} is not a schema")
        if uri not in self.used_docs:
            self.used_docs.append(uri)
        return node

    def resolve(self, base: str, ref: str) -> tuple[str, str]:
        uri, fragment = urldefrag(urljoin(base, ref))
        return uri, unquote(fragment)

    def name_for(self, loc: tuple[str, str]) -> str:
        """The function checking the schema at `loc` (queued for generation)."""
        name = self.names.get(loc)
        if name is None:
            self.lookup(loc)  # fail early on a dangling reference
            uri, pointer = loc
            stem = uri.rsplit("/", 1)[-1]
            stem = stem[: -len(".json")] if stem.endswith(".json") else stem
            parts = [_unescape(t) for t in pointer.split("/")[1:] if t not in ("$defs", "definitions", "properties")]
            base = _IDENT_BAD.sub("_", "__".join([stem] + parts)).strip("_") or "schema"
            if base[0].isdigit() or base.startswith("check") or keyword.iskeyword(base):
                base = "s_" + base
            name, n = base, 2
            while name in self.used_names:
                name, n = f"{base}_{n}", n + 1
            self.used_names.add(name)
            self.names[loc] = name
            self.queue.append(loc)
        return name

    def const(self, prefix: str, source: str, comment: str) -> str:
        """A module-level constant (deduplicated by its source text)."""
        name = self.const_by_value.get(source)
        if name is None:
            name = f"_{prefix}{len(self.consts)}"
            self.const_by_value[source] = name
            self.consts.append(f"{name} = {source}  # {comment}")
        return name

    def regex(self, pattern: str, loc: tuple[str, str]) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SchemaCompileError(f"{self.where(loc)}: pattern {pattern!r} does not compile: {exc}") from None
        predicate = _patterns.PREDICATES.get(pattern)
        if predicate is not None and getattr(_patterns, predicate.__name__, None) is predicate:
            self.uses_patterns = True
            return self.const("RE", f"_patterns.{predicate.__name__}", f"{pattern!r} at {self.where(loc)}")
        self.helpers.add("_regex")
        return self.const("RE", f"_regex({pattern!r})", f"{self.where(loc)}")

    # ------------------------------------------------------------ generation

    def run(self, entries: dict) -> list[tuple[str, str]]:
        """Generate every function reachable from `entries` (public name -> location);
        returns [(public name, function name)]."""
        public = []
        for name, (uri, pointer) in entries.items():
            if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
                raise SchemaCompileError(f"entry name {name!r} is not a public identifier")
            public.append((name, self.name_for((uri, pointer))))
        i = 0
        while i < len(self.queue):
            self.generate(self.queue[i])
            i += 1
        clash = {name for name, _ in public} & self.used_names
        if clash:
            raise SchemaCompileError(f"entry names {sorted(clash)} clash with generated functions")
        return public

    def generate(self, loc: tuple[str, str]) -> None:
        name = self.names[loc]
        schema = self.lookup(loc)
        target = self.alias_target(loc, schema)
        if target is not None:
            self.aliases.append((name, self.name_for(target)))
            return
        lines = [f"def {name}(x):", f'    """{self.where(loc)}"""']
        body = self.emit(schema, loc, "x", None, 1, loc)
        lines += body
        lines.append("    return True")
        self.functions.append("\n".join(lines))

    def alias_target(self, loc, schema):
        """For a schema that is only {"$ref": ...} (plus annotations): its target."""
        if not isinstance(schema, dict) or "$ref" not in schema:
            return None
        if any(k not in _ANNOTATIONS and k not in _ROOT_ONLY and k != "$ref" for k in schema):
            return None
        self.check_keywords(schema, loc)
        target = self.resolve(loc[0], self.ref_value(schema, loc))
        seen = {loc}
        probe = target
        while True:  # refuse pure-alias cycles (jsonschema would recurse forever)
            if probe in seen:
                raise SchemaCompileError(f"{self.where(loc)}: $ref cycle without any assertion")
            seen.add(probe)
            node = self.lookup(probe)
            if not (isinstance(node, dict) and set(node) - _ANNOTATIONS - _ROOT_ONLY == {"$ref"}):
                return target
            probe = self.resolve(probe[0], self.ref_value(node, probe))

    def ref_value(self, schema, loc) -> str:
        ref = schema["$ref"]
        if not isinstance(ref, str):
            raise SchemaCompileError(f"{self.where(loc)}: $ref must be a string")
        return ref

    def check_keywords(self, schema: dict, loc) -> None:
        for key in schema:
            if key not in SUPPORTED_KEYWORDS:
                raise SchemaCompileError(f"{self.where(loc)}: unsupported keyword {key!r}")
        at_root = loc[1] == ""
        if "$schema" in schema and (not at_root or schema["$schema"] != DRAFT_2020_12):
            raise SchemaCompileError(
                f"{self.where(loc)}: only a root \"$schema\": {DRAFT_2020_12!r} is supported"
            )
        if "$id" in schema and (not at_root or urldefrag(urljoin(loc[0], schema["$id"]))[0] != loc[0]):
            raise SchemaCompileError(f"{self.where(loc)}: \"$id\" is only supported at a document's root")

    # type expressions ---------------------------------------------------------

    def type_expr(self, t: str, var: str) -> str:
        if t == "object":
            return f"isinstance({var}, dict)"
        if t == "array":
            return f"isinstance({var}, list)"
        if t == "string":
            return f"isinstance({var}, str)"
        if t == "boolean":
            return f"isinstance({var}, bool)"
        if t == "null":
            return f"{var} is None"
        if t == "integer":
            expr = f"isinstance({var}, int) and not isinstance({var}, bool)"
            if self.float_integers:
                expr = f"({expr} or (isinstance({var}, float) and {var}.is_integer()))"
            return expr
        if t == "number":
            self.needs_number = True
            return f"isinstance({var}, _Number) and not isinstance({var}, bool)"
        raise AssertionError(t)

    def types_of(self, schema: dict, loc) -> list[str] | None:
        if "type" not in schema:
            return None
        types = schema["type"]
        if isinstance(types, str):
            types = [types]
        if not isinstance(types, list) or not types or any(t not in _JSON_TYPES for t in types):
            raise SchemaCompileError(f"{self.where(loc)}: bad \"type\" {schema['type']!r}")
        return list(dict.fromkeys(types))

    # subschemas as expressions -------------------------------------------------

    def sub_expr(self, schema, loc, var: str, fn_loc) -> str | None:
        """`schema` as one boolean expression over `var`, or None if it needs statements."""
        if schema is True:
            return "True"
        if schema is False:
            return "False"
        if not isinstance(schema, dict):
            raise SchemaCompileError(f"{self.where(loc)}: a schema must be an object or a boolean")
        if loc in self.names and loc != fn_loc:
            return f"{self.names[loc]}({var})"
        self.check_keywords(schema, loc)
        keys = set(schema) - _ANNOTATIONS - _CONTAINERS
        if not keys:
            return "True"
        if keys == {"$ref"}:
            return f"{self.name_for(self.resolve(loc[0], self.ref_value(schema, loc)))}({var})"
        if keys == {"type"}:
            types = self.types_of(schema, loc)
            if len(types) == 1:
                return self.type_expr(types[0], var)
        return None

    def named_expr(self, schema, loc, var: str, fn_loc) -> str:
        """An expression for `schema`, putting it in a function of its own if needed."""
        expr = self.sub_expr(schema, loc, var, fn_loc)
        if expr is None:
            expr = f"{self.name_for(loc)}({var})"
        return expr

    # statements ------------------------------------------------------------------

    def emit(self, schema, loc, var: str, known: frozenset | None, depth: int, fn_loc) -> list[str]:
        """Statements that `return False` when `var` is invalid under `schema`."""
        pad = "    " * depth
        if schema is True:
            return []
        if schema is False:
            return [f"{pad}return False"]
        if not isinstance(schema, dict):
            raise SchemaCompileError(f"{self.where(loc)}: a schema must be an object or a boolean")
        if loc in self.names and loc != fn_loc:
            return [f"{pad}if not {self.names[loc]}({var}):", f"{pad}    return False"]
        self.check_keywords(schema, loc)
        out: list[str] = []

        def fail_if(cond: str) -> None:
            out.append(f"{pad}if {cond}:")
            out.append(f"{pad}    return False")

        def sub(key: str) -> tuple[str, str]:
            return (loc[0], f"{loc[1]}/{key}")

        types = self.types_of(schema, loc)
        if types is not None and not self.subsumed(known, types):
            if len(types) == 1:
                fail_if(f"not {self._paren(self.type_expr(types[0], var))}")
            else:
                fail_if("not (" + " or ".join(self._paren(self.type_expr(t, var)) for t in types) + ")")
        if types is not None:
            known = self.narrow(known, types)

        if "$ref" in schema:
            target = self.name_for(self.resolve(loc[0], self.ref_value(schema, loc)))
            fail_if(f"not {target}({var})")

        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list):
                raise SchemaCompileError(f"{self.where(loc)}: \"enum\" must be an array")
            if values and all(isinstance(v, str) for v in values):
                name = self.const("ENUM", f"frozenset({tuple(values)!r})", self.where(sub("enum")))
                if known is not None and known <= {"string"}:
                    fail_if(f"{var} not in {name}")
                else:
                    fail_if(f"not (isinstance({var}, str) and {var} in {name})")
            else:
                self.helpers.add("_equal")
                name = self.const("ENUM", self.literal(values, loc), self.where(sub("enum")))
                fail_if(f"not any(_equal(e, {var}) for e in {name})")

        if "const" in schema:
            value = schema["const"]
            if isinstance(value, str):
                fail_if(f"{var} != {value!r}")
            else:
                self.helpers.add("_equal")
                fail_if(f"not _equal({var}, {self.literal(value, loc)})")

        if "allOf" in schema:
            for i, each in enumerate(self.schema_list(schema, "allOf", loc)):
                out += self.emit(each, sub(f"allOf/{i}"), var, known, depth, fn_loc)
        if "anyOf" in schema:
            exprs = [
                self.named_expr(each, sub(f"anyOf/{i}"), var, fn_loc)
                for i, each in enumerate(self.schema_list(schema, "anyOf", loc))
            ]
            fail_if("not (" + " or ".join(self._paren(e) for e in exprs) + ")")
        if "oneOf" in schema:
            exprs = [
                self.named_expr(each, sub(f"oneOf/{i}"), var, fn_loc)
                for i, each in enumerate(self.schema_list(schema, "oneOf", loc))
            ]
            fail_if("[" + ", ".join(self._paren(e) for e in exprs) + "].count(True) != 1")
        if "not" in schema:
            fail_if(self.named_expr(schema["not"], sub("not"), var, fn_loc))

        out += self.guarded(known, {"string"}, var, "str", depth, lambda d: self.string_keywords(
            schema, loc, var, d))
        out += self.guarded(known, _NUMERIC, var, None, depth, lambda d: self.number_keywords(
            schema, loc, var, d))
        out += self.guarded(known, {"object"}, var, "dict", depth, lambda d: self.object_keywords(
            schema, loc, var, d, fn_loc))
        out += self.guarded(known, {"array"}, var, "list", depth, lambda d: self.array_keywords(
            schema, loc, var, d, fn_loc))
        return out

    @staticmethod
    def narrow(known, types) -> frozenset:
        """The types `var` can have once it is known to be one of `known` and one of `types`."""
        if known is None:
            return frozenset(types)
        out = set()
        for k in known:
            if k in types:
                out.add(k)
            elif (k == "integer" and "number" in types) or (k == "number" and "integer" in types):
                out.add("integer")
        return frozenset(out)

    @staticmethod
    def subsumed(known, types) -> bool:
        """Is a value of any type in `known` already one of `types`?"""
        if known is None:
            return False
        return all(k in types or (k == "integer" and "number" in types) for k in known)

    @staticmethod
    def _paren(expr: str) -> str:
        if any(op in expr for op in (" and ", " or ", " is ", " in ", "not ")):
            return f"({expr})"
        return expr

    def schema_list(self, schema: dict, key: str, loc) -> list:
        value = schema[key]
        if not isinstance(value, list) or not value:
            raise SchemaCompileError(f"{self.where(loc)}: {key!r} must be a non-empty array")
        return value

    def literal(self, value, loc) -> str:
        """A Python literal of a JSON value (tuples for arrays do not matter to _equal)."""
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise SchemaCompileError(f"{self.where(loc)}: not a JSON value: {value!r}") from None
        return repr(value)

    def guarded(self, known, types: set, var: str, pytype: str | None, depth: int, make) -> list[str]:
        """Keywords that only apply to `types`: skipped when `var` can't be one, and
        wrapped in an isinstance() test unless it is known to be one."""
        if known is not None and not (known & types):
            return []
        needs_guard = known is None or not known <= types
        lines = make(depth + 1 if needs_guard else depth)
        if not lines or not needs_guard:
            return lines
        pad = "    " * depth
        if pytype is None:  # numbers
            self.needs_number = True
            test = f"isinstance({var}, _Number) and not isinstance({var}, bool)"
        else:
            test = f"isinstance({var}, {pytype})"
        return [f"{pad}if {test}:"] + lines

    def string_keywords(self, schema: dict, loc, var: str, depth: int) -> list[str]:
        lines = []
        if "pattern" in schema:
            if not isinstance(schema["pattern"], str):
                raise SchemaCompileError(f"{self.where(loc)}: \"pattern\" must be a string")
            lines += [f"if not {self.regex(schema['pattern'], loc)}({var}):", "    return False"]
        for key, op in (("minLength", "<"), ("maxLength", ">")):
            if key in schema:
                if not _is_count(schema[key]):
                    raise SchemaCompileError(f"{self.where(loc)}: bad {key!r}")
                lines += [f"if len({var}) {op} {schema[key]!r}:", "    return False"]
        return ["    " * depth + line for line in lines]

    def number_keywords(self, schema: dict, loc, var: str, depth: int) -> list[str]:
        lines = []
        for key, op in (("minimum", "<"), ("maximum", ">"), ("exclusiveMinimum", "<="), ("exclusiveMaximum", ">=")):
            if key in schema:
                bound = schema[key]
                if not _is_num(bound) or bound != bound or bound in (float("inf"), float("-inf")):
                    raise SchemaCompileError(f"{self.where(loc)}: bad {key!r}")
                lines += [f"if {var} {op} {bound!r}:", "    return False"]
        return ["    " * depth + line for line in lines]

    @staticmethod
    def child_var(var: str, prefix: str = "x") -> str:
        """x -> x1 -> x2 ... (one variable per nesting level)."""
        return f"{prefix}{int(var[1:] or 0) + 1}"

    def object_keywords(self, schema: dict, loc, var: str, depth: int, fn_loc) -> list[str]:
        pad = "    " * depth
        out = []
        sub = lambda key: (loc[0], f"{loc[1]}/{key}")  # noqa: E731
        req = schema.get("required", [])
        if not isinstance(req, list) or not all(isinstance(r, str) for r in req):
            raise SchemaCompileError(f"{self.where(loc)}: \"required\" must be an array of strings")
        if req:
            out.append(f"{pad}if " + " or ".join(f"{r!r} not in {var}" for r in dict.fromkeys(req)) + ":")
            out.append(f"{pad}    return False")
        props = schema.get("properties", {})
        if not isinstance(props, dict):
            raise SchemaCompileError(f"{self.where(loc)}: \"properties\" must be an object")
        child = self.child_var(var)
        for key, subschema in props.items():
            ploc = sub(f"properties/{key.replace('~', '~0').replace('/', '~1')}")
            expr = self.sub_expr(subschema, ploc, f"{var}[{key!r}]", fn_loc)
            if expr == "True":
                continue
            present = key in req  # already checked above
            if expr is not None:
                test = f"not {self._paren(expr)}" if present else f"{key!r} in {var} and not {self._paren(expr)}"
                out.append(f"{pad}if {test}:")
                out.append(f"{pad}    return False")
                continue
            if present:
                body = self.emit(subschema, ploc, child, None, depth, fn_loc)
                if body:
                    out.append(f"{pad}{child} = {var}[{key!r}]")
                    out += body
            else:
                body = self.emit(subschema, ploc, child, None, depth + 1, fn_loc)
                if body:
                    out.append(f"{pad}if {key!r} in {var}:")
                    out.append(f"{pad}    {child} = {var}[{key!r}]")
                    out += body
        patterns = schema.get("patternProperties", {})
        if not isinstance(patterns, dict):
            raise SchemaCompileError(f"{self.where(loc)}: \"patternProperties\" must be an object")
        additional = schema.get("additionalProperties", True)
        loop = []
        key_var = self.child_var(var, "k")
        for pattern, subschema in patterns.items():
            ploc = sub(f"patternProperties/{pattern.replace('~', '~0').replace('/', '~1')}")
            regex = self.regex(pattern, ploc)
            body = self.emit(subschema, ploc, child, None, depth + 2, fn_loc)
            if body:
                loop.append(f"{pad}    if {regex}({key_var}):")
                loop += body
        if additional is not True and additional != {}:
            # jsonschema.find_additional_properties: not a declared property and not
            # matching the patternProperties joined with "|"
            aloc = sub("additionalProperties")
            body = self.emit(additional, aloc, child, None, depth + 2, fn_loc)
            if body:
                conds = []
                if props:
                    conds.append(f"{key_var} not in {self.const('PROPS', f'frozenset({tuple(props)!r})', self.where(loc))}")
                joined = "|".join(patterns)
                if joined:
                    conds.append(f"not {self.regex(joined, aloc)}({key_var})")
                if conds:
                    loop.append(f"{pad}    if {' and '.join(conds)}:")
                    loop += body
                else:  # every property is additional
                    loop += [line[4:] for line in body]
        if loop:
            if any(key_var in line for line in loop):
                out.append(f"{pad}for {key_var}, {child} in {var}.items():")
            else:
                out.append(f"{pad}for {child} in {var}.values():")
            out += loop
        return out

    def array_keywords(self, schema: dict, loc, var: str, depth: int, fn_loc) -> list[str]:
        pad = "    " * depth
        out = []
        sub = lambda key: (loc[0], f"{loc[1]}/{key}")  # noqa: E731
        for key, op in (("minItems", "<"), ("maxItems", ">")):
            if key in schema:
                if not _is_count(schema[key]):
                    raise SchemaCompileError(f"{self.where(loc)}: bad {key!r}")
                out += [f"{pad}if len({var}) {op} {schema[key]!r}:", f"{pad}    return False"]
        if schema.get("uniqueItems", False) is not False:
            if schema["uniqueItems"] is not True:
                raise SchemaCompileError(f"{self.where(loc)}: \"uniqueItems\" must be a boolean")
            self.helpers.update(("_equal", "_uniq"))
            out += [f"{pad}if not _uniq({var}):", f"{pad}    return False"]
        child = self.child_var(var)
        prefix = schema.get("prefixItems", [])
        if not isinstance(prefix, list):
            raise SchemaCompileError(f"{self.where(loc)}: \"prefixItems\" must be an array")
        for i, subschema in enumerate(prefix):
            body = self.emit(subschema, sub(f"prefixItems/{i}"), child, None, depth + 1, fn_loc)
            if body:
                out.append(f"{pad}if len({var}) > {i}:")
                out.append(f"{pad}    {child} = {var}[{i}]")
                out += body
        if "items" in schema:
            items = schema["items"]
            if isinstance(items, list):
                raise SchemaCompileError(f"{self.where(loc)}: array-form \"items\" is not draft 2020-12")
            if items is False:
                out += [f"{pad}if len({var}) > {len(prefix)}:", f"{pad}    return False"]
            else:
                body = self.emit(items, sub("items"), child, None, depth + 1, fn_loc)
                if body:
                    seq = f"{var}[{len(prefix)}:]" if prefix else var
                    out.append(f"{pad}for {child} in {seq}:")
                    out += body
        return out


def compile_schemas(
    documents: dict,
    entries: dict,
    *,
    base_uri: str = "",
    float_integers: bool = False,
    header=None,
) -> str:
    """Python source of a module defining one checker function per entry.

    `documents` maps each schema's absolute URI to the parsed document; a
    document's "$id" (if any) must equal its key.  `entries` maps public
    function names to references resolved against `base_uri` (e.g.
    ``{"check_config": "config-schema.json"}``).  Each generated function
    takes a JSON value and returns True when it is valid.  `header` is text to
    put first, or a callable given the URIs of the documents actually used.
    """
    docs = {}
    for uri, doc in documents.items():
        if urldefrag(uri)[1]:
            raise SchemaCompileError(f"document URI {uri!r} must not have a fragment")
        if isinstance(doc, dict) and "$id" in doc and urldefrag(urljoin(uri, doc["$id"]))[0] != uri:
            raise SchemaCompileError(f"document {uri!r} has a different $id {doc['$id']!r}")
        docs[uri] = doc
    comp = _Compiler(docs, float_integers)
    public = comp.run({name: comp.resolve(base_uri, ref) for name, ref in entries.items()})

    if callable(header):
        header = header(list(comp.used_docs))
    parts = [header.rstrip("\n") + "\n\n" if header else ""]
    if comp.uses_patterns:
        parts.append("from pyrunc.spec import patterns as _patterns\n")
    if comp.needs_number:
        parts.append("from numbers import Number as _Number\n")
    if "_equal" in comp.helpers:
        parts.append("from collections.abc import Mapping as _Mapping, Sequence as _Sequence\n")
    parts.append(f"\n__all__ = {[name for name, _ in public]!r}\n")
    for helper in ("_regex", "_equal", "_uniq"):
        if helper in comp.helpers:
            parts.append("\n" + _HELPERS[helper])
    if comp.consts:
        parts.append("\n\n" + "\n".join(comp.consts) + "\n")
    for fn in comp.functions:
        parts.append("\n\n" + fn + "\n")
    if comp.aliases:
        parts.append("\n\n# schemas that are only a $ref\n")
        parts += [f"{name} = {target}\n" for name, target in comp.aliases]
    parts.append("\n# public checkers\n")
    parts += [f"{name} = {target}\n" for name, target in public]
    source = "".join(parts)
    compile(source, "<schemac>", "exec")  # never hand out broken code
    return source


def compile_checker(schema, *, float_integers: bool = False, documents: dict | None = None):
    """Compile one schema (plus optional referenced `documents`) and return its
    checker function -- handy for tests and one-off use."""
    uri = "https://schemac.invalid/schema.json"
    if isinstance(schema, dict) and "$id" in schema:
        uri = schema["$id"]
    docs = dict(documents or {})
    docs[uri] = schema
    source = compile_schemas(docs, {"check": uri}, float_integers=float_integers)
    namespace: dict = {"__name__": "schemac_generated"}
    exec(compile(source, "<schemac>", "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace["check"]


# --------------------------------------------------------------------------- key shapes

# Objects the OCI schema describes with properties but specs-go decodes as a
# Go map (its keys are data, never folded): a dotted path from the config root.
GO_MAPS = frozenset({"linux.timeOffsets"})


def key_shape(documents: dict, loc: tuple[str, str], path: str = "", _depth: int = 0):
    """Where a document has object keys that name fields, as plain data for
    pyrunc.spec.keys: a struct is {field: shape of its value}, a map of
    values ("map", shape) and an array ("list", shape); None for anything
    with no such keys below it. Built from properties, $ref and allOf;
    additionalProperties / patternProperties make a map."""
    if _depth > 64:
        raise SchemaCompileError(f"{_Compiler.where(loc)}: schema nests too deep for key shapes")
    comp = _Compiler(documents, False)
    schema = comp.lookup(loc)
    if not isinstance(schema, dict):
        return None
    props: dict = {}
    value = None
    items = None
    parts = [(schema, loc)]
    while parts:
        node, at = parts.pop(0)
        if "$ref" in node:
            target = comp.resolve(at[0], node["$ref"])
            parts.append((comp.lookup(target), target))
        for i, sub in enumerate(node.get("allOf") or ()):
            parts.append((sub, (at[0], f"{at[1]}/allOf/{i}")))
        for name in node.get("properties") or {}:
            props[name] = (at[0], f"{at[1]}/properties/{_escape(name)}")
        for key in ("additionalProperties", "patternProperties"):
            sub = node.get(key)
            if isinstance(sub, dict) and sub:
                if key == "patternProperties":
                    pattern = next(iter(sub))
                    value = (at[0], f"{at[1]}/patternProperties/{_escape(pattern)}")
                else:
                    value = (at[0], f"{at[1]}/additionalProperties")
        if isinstance(node.get("items"), dict):
            items = (at[0], f"{at[1]}/items")

    def child(where, sub_path):
        return key_shape(documents, where, sub_path, _depth + 1)

    if props:
        fields = {name: child(where, f"{path}.{name}" if path else name) for name, where in props.items()}
        if path in GO_MAPS:
            values = [v for v in fields.values() if v is not None]
            return ("map", values[0] if values else None)
        return fields
    if value is not None:
        sub = child(value, path + ".*")
        return ("map", sub) if sub is not None else None
    if items is not None:
        sub = child(items, path + "[]")
        return ("list", sub) if sub is not None else None
    return None


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _shape_literal(shape, indent: int = 0) -> str:
    """A readable Python literal of a key shape (one field per line)."""
    pad = "    " * (indent + 1)
    if isinstance(shape, dict):
        if not shape:
            return "{}"
        body = "".join(f"{pad}{name!r}: {_shape_literal(sub, indent + 1)},\n"
                       for name, sub in shape.items())
        return "{\n" + body + "    " * indent + "}"
    if isinstance(shape, tuple):
        return f"({shape[0]!r}, {_shape_literal(shape[1], indent)})"
    return "None"


# --------------------------------------------------------------------------- config checker


def _load_documents(directory: Path) -> dict:
    from pyrunc.spec.validate import SCHEMA_BASE_URI, SCHEMA_FILES

    docs = {}
    for name in SCHEMA_FILES:
        with open(directory / name, encoding="utf-8") as f:
            docs[SCHEMA_BASE_URI + name] = json.load(f)
    return docs


def config_checker_source(directory: Path | None = None) -> str:
    """The source of pyrunc/spec/_config_check.py for the schemas in `directory`
    (default: the shipped ones)."""
    from pyrunc.spec.validate import SCHEMA_BASE_URI, schemas_dir

    directory = Path(directory) if directory is not None else schemas_dir()
    entries = "\n".join(f"    {name}(doc) -> bool   # {ref}" for name, ref in CONFIG_ENTRIES.items())

    def header(used: list) -> str:
        names = ", ".join(u[len(SCHEMA_BASE_URI):] if u.startswith(SCHEMA_BASE_URI) else u for u in used)
        return f'''"""GENERATED by pyrunc.spec.schemac -- do not edit by hand.

Compiled from schemas/ {names}
(JSON Schema draft 2020-12).  After changing a schema regenerate it with

    python -m pyrunc.spec.schemac

(tests/unit/test_schemac.py fails while this file is stale).

{entries}

    CONFIG_KEYS, PROCESS_KEYS   # the fields of every object (pyrunc.spec.keys)

Each checker returns True when the document is valid and is exactly as strict as
jsonschema with pyrunc.spec.validate's validator (1.0 is not an integer,
format is not asserted).  One function per schema reached through a $ref.
Patterns are checked by the plain functions of pyrunc.spec.patterns, so
re is not imported: pyrunc.spec.validate registers check_config as the fast
check and imports jsonschema only to explain a failure.
"""'''

    documents = _load_documents(directory)
    source = compile_schemas(documents, CONFIG_ENTRIES, base_uri=SCHEMA_BASE_URI, header=header)
    keys = ["\n# the fields of each object, for pyrunc.spec.keys (see schemac.key_shape)\n"]
    for name, ref in KEY_ENTRIES.items():
        loc = _Compiler(documents, False).resolve(SCHEMA_BASE_URI, ref)
        keys.append(f"{name} = {_shape_literal(key_shape(documents, loc))}\n")
    return source + "".join(keys)


def main(argv: list | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m pyrunc.spec.schemac",
        description="Generate pyrunc/spec/_config_check.py from the OCI config schemas.",
    )
    parser.add_argument("--schemas", type=Path, default=None, help="schema directory (default: the shipped one)")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT, help=f"output file (default: {OUTPUT})")
    parser.add_argument("--check", action="store_true", help="exit 1 if the output file is out of date")
    args = parser.parse_args(argv)
    try:
        source = config_checker_source(args.schemas)
    except SchemaCompileError as exc:
        print(f"schemac: {exc}", file=sys.stderr)
        return 2
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current != source:
            print(f"schemac: {args.output} is out of date; run python -m pyrunc.spec.schemac", file=sys.stderr)
            return 1
        return 0
    if current != source:
        args.output.write_text(source, encoding="utf-8")
        print(f"schemac: wrote {args.output}")
    else:
        print(f"schemac: {args.output} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
