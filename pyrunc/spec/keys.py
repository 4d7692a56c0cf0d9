"""Object keys as runc reads them (Go's encoding/json into specs-go structs).

The spec says a runtime MUST ignore properties it does not know: they stay
in the document, unused, with a debug line. A key that differs from a field
name only in letter case is that field, as Go matches it (case-insensitive,
with Go's folding: "ſ" is "s", "K" (Kelvin) is "k"). When a field appears
twice, Go decodes the later value into the earlier one: objects merge,
arrays take the later elements (each decoded into the earlier element at
its index), maps gain keys, a later null clears an object, array or map and
leaves a scalar (and process.user, a struct value in specs-go) alone. A
field that is null is as if absent, as a Go zero value or nil pointer is.

The shapes (which objects are structs, which are maps, where arrays of them
are) come from the schemas, generated into _config_check.py by schemac.
A document whose keys are all exact field names is left as it is, after
one walk: the usual case costs no copying.
"""
from pyrunc import log


def normalize_config(config: dict) -> dict:
    from pyrunc.spec._config_check import CONFIG_KEYS
    return normalize(config, CONFIG_KEYS, "")


def normalize_process(process: dict, where: str = "process") -> dict:
    from pyrunc.spec._config_check import PROCESS_KEYS
    return normalize(process, PROCESS_KEYS, where)


def normalize(doc, shape, where: str):
    """Fold the keys of `doc` (in place) as `shape` describes; returns `doc`."""
    if isinstance(shape, dict):
        if isinstance(doc, dict):
            if not shape.keys() >= doc.keys():
                _fold(doc, shape, where)
            if None in doc.values():
                for key in [k for k, v in doc.items() if v is None and k in shape]:
                    del doc[key]
            for key, value in doc.items():
                sub = shape.get(key)
                if sub is not None:
                    normalize(value, sub, f"{where}.{key}" if where else key)
    elif isinstance(shape, tuple):
        kind, sub = shape
        if kind == "list" and isinstance(doc, list):
            for i, item in enumerate(doc):
                normalize(item, sub, f"{where}[{i}]")
        elif kind == "map" and isinstance(doc, dict):
            for key, value in doc.items():
                normalize(value, sub, f"{where}.{key}")
    return doc


def go_fold(name: str) -> str:
    """Go's foldName: ASCII letters upper-cased, any other rune as
    unicode.ToUpper(unicode.ToLower(r)) (one rune to one rune)."""
    out = []
    for ch in name:
        if ch.isascii():
            out.append(ch.upper())
        else:
            folded = ch.lower().upper()
            out.append(folded if len(folded) == 1 else ch)
    return "".join(out)


def _fold(doc: dict, shape: dict, where: str) -> None:
    """Rename keys to the fields they match, merging repeats in document order."""
    folded = {go_fold(name): name for name in shape}
    items = list(doc.items())
    doc.clear()
    for key, value in items:
        name = key if key in shape else folded.get(go_fold(key))
        if name is None:
            log.debug(f"config: ignoring unknown property {_at(where, key)}")
            doc[key] = value
            continue
        if name != key:
            log.debug(f"config: property {_at(where, key)} taken as {name!r} (case-insensitive, "
                      "as Go's encoding/json)")
        if name in doc:
            sub = shape[name]
            doc[name] = _merge(normalize(doc[name], sub, _at(where, name)),
                               normalize(value, sub, _at(where, name)), sub,
                               keep_on_null=name in _VALUE_STRUCTS)
        else:
            doc[name] = value


# struct fields that are Go values, not pointers: a null leaves them as they are
_VALUE_STRUCTS = frozenset({"user"})


def _merge(old, new, shape, keep_on_null: bool = False):
    """Go decoding `new` into a field that already holds `old` (None: absent)."""
    if new is None:
        return None if isinstance(old, (dict, list)) and not keep_on_null else old
    if isinstance(old, dict) and isinstance(new, dict):
        if isinstance(shape, dict):  # a struct: field by field
            for key, value in new.items():
                if key in old:
                    old[key] = _merge(old[key], value, shape.get(key),
                                      keep_on_null=key in _VALUE_STRUCTS)
                else:
                    old[key] = value
            return old
        if isinstance(shape, tuple) or shape is None:  # a map: new keys, later values
            old.update(new)
            return old
    if isinstance(old, list) and isinstance(new, list):
        element = shape[1] if isinstance(shape, tuple) else None
        return [_merge(old[i], item, element) if i < len(old) and isinstance(item, dict)
                else item for i, item in enumerate(new)]
    return new


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
