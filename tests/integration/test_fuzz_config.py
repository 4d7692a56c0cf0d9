"""Property-based fuzzing of config.json through `create` (Hypothesis).

Each example mutates a valid config a few times: wrong types, out-of-range and
huge numbers (NaN and infinities too), unknown and mis-cased keys, unicode and
very long strings, deep nesting, duplicated keys and entries, and now and then
the raw text (a cut, bytes that are not UTF-8, a byte order mark). `create`
must then either create the container (deleted at once) or fail with one
clear line on stderr (no traceback, no "internal error") and a non-zero exit,
within a bound, leaving no state dir, cgroup, mount or process.

CI runs PYRUNC_FUZZ_EXAMPLES examples (default 150, about half a minute); a
longer run for local use (docs/reliability.md):

    PYRUNC_FUZZ_EXAMPLES=5000 PYRUNC=/opt/pyrunc/bin/pyrunc \\
        /opt/pyrunc/bin/pytest -q -p no:cacheprovider tests/integration/test_fuzz_config.py

The mutations stay on the safe side of the host: the rootfs is a private
copy, and the config keeps its own mount, pid, network, uts and ipc
namespaces (a namespace path may not name a namespace that exists), so a
mutated config cannot mount onto the host or rename it. Nothing is started:
the user's program never runs."""
import copy
import json
import math
import os
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("PYRUNC_FUZZ_EXAMPLES", "150"))
OWN_NAMESPACES = ("mount", "pid", "network", "uts", "ipc")

NUMBERS = [0, -1, 1, 7, 255, 256, 1023, 65535, 65536, 2**31 - 1, 2**31, -2**31, 2**32,
           2**53 + 1, 2**63 - 1, 2**63, -2**63, -2**63 - 1, 2**64, 10**100, 0.5, -0.0, 1e308,
           -1e308, 5e-324, math.nan, math.inf, -math.inf]
STRINGS = ["", " ", ".", "..", "/", "//", "../..", "a/../../..", "\x00", "a\x00b", "\n", "\t",
           "%d", "%s%s%n", "é", "ǅ", "\u212a", "ſ", "\U0001f40d" * 10, "\u202e", "\ufeff",
           "\ud800", "x" * 100_000, "é" * 20_000, "CAP_SYS_ADMIN", "cap_chown", "rwm", "a",
           "tmpfs", "bind", "proc", "ro", "rbind", "nosuid", "RLIMIT_NOFILE", "SCMP_ACT_ALLOW",
           "1.0.2", "2.0.0", "user", "cgroup", "time", "c", "b", "p", "0:0", "-1", "1e3"]
KEYS = ["x", "X-Foo", "", "\x00", "é", "annotations", "hooks2", "Ociversion", "args ", "🔑"]


def junk():
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                       st.sampled_from(NUMBERS), st.floats(), st.sampled_from(STRINGS),
                       st.text(max_size=40))
    return st.one_of(scalar, st.lists(scalar, max_size=6),
                     st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), scalar,
                                     max_size=4))


class Nested:
    """A value wrapped in `depth` arrays (written out as text: json cannot)."""

    def __init__(self, value, depth: int):
        self.value, self.depth = value, depth


def dumps(value, dups: dict) -> str:
    """JSON text; `dups` maps id(dict) to (key, value) pairs written again after
    its own items (duplicated keys); NaN and infinities as Python writes them."""
    if isinstance(value, Nested):
        return "[" * value.depth + dumps(value.value, dups) + "]" * value.depth
    if isinstance(value, dict):
        items = list(value.items()) + dups.get(id(value), [])
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v, dups)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v, dups) for v in value) + "]"
    return json.dumps(value)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def mutate(doc, data, dups: dict):
    """One mutation somewhere in `doc`; returns the (possibly new) document."""
    path = data.draw(st.sampled_from(list(_paths(doc))), label="path")
    op = data.draw(st.sampled_from(["replace", "replace", "delete", "unknown key", "miscase",
                                    "duplicate", "nest", "long string"]), label="op")
    target = _get(doc, path)
    if op == "unknown key" and isinstance(target, dict):
        target[data.draw(st.sampled_from(KEYS) | st.text(max_size=10))] = data.draw(junk())
        return doc
    if op == "duplicate":
        if isinstance(target, list) and target:
            target.append(copy.deepcopy(data.draw(st.sampled_from(target))))
        elif isinstance(target, dict) and target:
            key = data.draw(st.sampled_from(sorted(target, key=str)))
            dups.setdefault(id(target), []).append((key, data.draw(junk())))
        return doc
    if not path:  # the whole document
        return data.draw(junk()) if op == "replace" else doc
    parent, key = _get(doc, path[:-1]), path[-1]
    if op == "delete":
        del parent[key]
    elif op == "miscase" and isinstance(key, str):
        value = parent.pop(key)
        parent[data.draw(st.sampled_from([key.upper(), key.lower(), key.swapcase(),
                                          key.title()]))] = value
    elif op == "nest":
        parent[key] = Nested(target, data.draw(st.sampled_from([2, 50, 1000, 100_000])))
    elif op == "long string":
        parent[key] = data.draw(st.sampled_from(["y" * 1_000_000, "\u00e9" * 300_000,
                                                 "/" + "a/" * 40_000]))
    else:
        parent[key] = data.draw(junk())
    return doc


def keep_safe(doc, rootfs: str) -> None:
    """The invariants that keep a mutated config off the host (see above)."""
    if not isinstance(doc, dict):
        return
    root = doc.get("root")
    if isinstance(root, dict) and isinstance(root.get("path"), str) and root["path"] != rootfs:
        if os.path.exists(root["path"]) or "\x00" in root["path"] or not root["path"].strip("/."):
            root["path"] = rootfs
    linux = doc.get("linux")
    if not isinstance(linux, dict) or not isinstance(linux.get("namespaces"), list):
        return
    namespaces = linux["namespaces"]
    for ns in namespaces:
        if isinstance(ns, dict) and isinstance(ns.get("path"), str) and "\x00" not in ns["path"] \
                and os.path.exists(ns["path"]):
            del ns["path"]
    have = {ns.get("type") for ns in namespaces
            if isinstance(ns, dict) and isinstance(ns.get("type"), str)}
    namespaces += [{"type": t} for t in OWN_NAMESPACES if t not in have]


def raw_mutation(text: bytes, data) -> bytes:
    op = data.draw(st.sampled_from(["none", "none", "none", "cut", "bytes", "bom"]), label="raw")
    if op == "cut":
        return text[:data.draw(st.integers(0, len(text)))]
    if op == "bytes":
        at = data.draw(st.integers(0, len(text)))
        return text[:at] + data.draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80",
                                                      b"\x00"])) + text[at:]
    if op == "bom":
        return b"\xef\xbb\xbf" + text
    return text


@pytest.fixture
def fuzz_bundle(pyrunc):
    bundle = pyrunc.bundle("fuzz")
    bundle.private_rootfs()
    bundle.args("true")
    bundle.config["root"]["path"] = bundle.rootfs
    yield bundle
    # mount destinations of hundreds of components made as deep a tree in the
    # rootfs: too deep for pytest's own (recursive) removal of old tmp dirs in
    # a later session, so it goes now, with rm's iterative walk
    subprocess.run(["rm", "-rf", "--one-file-system", bundle.rootfs], check=False)


def test_fuzzed_configs(pyrunc, fuzz_bundle):
    base = fuzz_bundle.config
    seen = {"created": 0, "refused": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data):
        dups: dict = {}
        doc = copy.deepcopy(base)
        for _ in range(data.draw(st.integers(1, 4), label="mutations")):
            doc = mutate(doc, data, dups)
        keep_safe(doc, fuzz_bundle.rootfs)
        text = raw_mutation(dumps(doc, dups).encode("utf-8", "surrogatepass"), data)
        (fuzz_bundle.dir / "config.json").write_bytes(text)
        cid = pyrunc.new_id()
        try:
            res = pyrunc("create", "--bundle", fuzz_bundle.path, cid, timeout=60)
        except subprocess.TimeoutExpired:
            pyrunc("delete", "--force", cid)
            raise AssertionError("create hung") from None
        if res.returncode == 0:
            seen["created"] += 1
            d = pyrunc("delete", "--force", cid)
            assert d.returncode == 0 and d.stderr == "", d.stderr[:500]
        else:
            seen["refused"] += 1
            # runc's warnings (logrus lines) may come first; the error is one line
            lines = [line for line in res.stderr.splitlines() if "level=warning" not in line]
            assert len(lines) == 1 and lines[0].strip(), f"not one line: {res.stderr[:500]!r}"
            assert "Traceback" not in res.stderr and "internal error" not in lines[0], \
                lines[0][:500]
            assert "cleanup after failed create" not in res.stderr, res.stderr[:500]
            assert res.stdout == ""
        assert pyrunc.leftovers() == []

    fuzz_bundle.write_config = False
    check()
    print(f"fuzzed configs: {seen['created']} created, {seen['refused']} refused")
    assert seen["refused"] > 0
