"""Tests for pyrunc.spec.patterns: each predicate must answer exactly what
``re.search(pattern, s) is not None`` answers (hand-picked edge cases and a
seeded random corpus per pattern), and the generated config checker must not
import re, neither when imported nor when it validates a full config."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pyrunc.spec import patterns, schemac
from pyrunc.spec import validate as v
from pyrunc.spec.defaults import default_spec

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
SEED = 20240613
CORPUS_SIZE = 4000  # random strings per pattern

OCI_VERSION = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
OCI_VERSION_SUPPORTED = r"^1\.[0-3]\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"

# characters that are not what they look like to str methods: unicode digits
# ("٣".isdigit(), "²".isdigit()), non-ASCII letters, unicode spaces, line
# separators other than "\n" (not special to "." or "$")
TRICKY = ["٣", "²", "０", "É", "ß", "ı", "K", "\u00a0", "\u2028", "\r", "\t", "\x00", "\U0001f600"]
COMMON = ["", "\n", "\n\n", " ", "x", "0", "\r\n"] + TRICKY

EDGE_CASES = {
    OCI_VERSION: [
        "0.0.0", "1.0.0", "1.2.3", "10.20.30", "1.0.0\n", "1.0.0\n\n", "\n1.0.0", "1.0.0 ", " 1.0.0",
        "01.0.0", "1.00.0", "1.0.01", "1.0", "1", "1.0.0.0", "1..0", ".1.0.0", "1.0.0.",
        "1.0.0-rc1", "1.0.0-rc.1", "1.0.0-rc-1", "1.0.0--", "1.0.0-.", "1.0.0-", "1.0.0-\n", "1.0.0-a\n",
        "1.0.0+build", "1.0.0+b.1-x", "1.0.0+", "1.0.0-rc1+b", "1.0.0+b-rc1", "1.0.0-rc1+", "1.0.0-+b",
        "1.0.0+a+b", "1.0.0-a-b+c.d", "1.0.0-a b", "1.0.0-a\nb", "1.0.0-É", "1.0.0-_", "1.0.0+a_b",
        "٣.0.0", "1.٣.0", "1.0.٣", "1.0.0-٣", "1.0.0+٣", "０.0.0", "-1.0.0", "+1.0.0", "1.-0.0", "1.+0.0",
        "a.b.c", "1.0.0-A-Z.a-z.0-9", "99999999999999999999.0.0",
    ],
    OCI_VERSION_SUPPORTED: [
        "1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.0.2", "1.3.10", "1.3.01", "1.3.0\n", "1.3.0\n\n",
        "0.3.0", "2.0.0", "11.0.0", "1.03.0", "1.00.0", "1.3", "1.3.", "1.3.0.0", "1.3.0-rc.1",
        "1.0.0-rc1+dev", "1.0.2-dev", "1.0.0+", "1.0.0-", "1.0.0+a+b", "1.٣.0", "1.3.٣", "١.3.0",
        "1.3.0 ", "\n1.3.0", "1.3.0-a\nb", "1.3.0+a\n",
    ],
    r"^RLIMIT_[A-Z]+$": [
        "RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_A", "RLIMIT_", "RLIMIT_\n", "RLIMIT_AS\n", "RLIMIT_AS\n\n",
        "RLIMIT_nofile", "RLIMIT_NO_FILE", "RLIMIT_AS1", "rlimit_AS", "RLIMIT_É", "RLIMIT_ß", "RLIMIT_K",
        " RLIMIT_AS", "RLIMIT_AS ", "RLIMIT", "XRLIMIT_AS", "RLIMIT_A\nB",
    ],
    r"^CAP_[A-Z_]+$": [
        "CAP_SYS_ADMIN", "CAP_CHOWN", "CAP__", "CAP_", "CAP_\n", "CAP_X\n", "CAP_X\n\n", "CAP_sys",
        "CAP_NET_BIND_SERVICE", "CAP_1", "cap_CHOWN", "CAP_É", "CAP_X Y", "CAP", "CAP_X\nY",
    ],
    r"^[0-9, -]*$": [
        "0-3, 7", "7", "0,1,2", " ", "-", ",", "\n", "0-3\n", "0-3\n\n", "\n0", "0\n1", "٣", "1-٣", "0x1",
        "0;1", "0\t1", "0\r", "\u00a0",
    ],
    r"^[1-9][0-9]*[KMG]B$": [
        "2MB", "64KB", "1GB", "1024KB", "10MB\n", "10MB\n\n", "0MB", "01MB", "MB", "1B", "1M", "1kB",
        "1mb", "1TB", "1KBB", "1KMB", "٣MB", "1٣MB", "1 MB", " 1MB", "1MB ", "\n1MB", "1\nMB", "1KB\r",
    ],
    r"^MB:[^\n]*$": [
        "MB:", "MB:0=20;1=70", "MB:\n", "MB:0=20\n", "MB:0=20\n\n", "MB:0\n1", "MB:\r", "MB:\u2028",
        "MB", "mb:", " MB:", "\nMB:", "MB:٣", "L3:0=7f0", "MB: anything at all ",
    ],
    r"^[cbup]$": [
        "c", "b", "u", "p", "c\n", "c\n\n", "\nc", "cb", "C", "a", " c", "c ", "", "\n",
    ],
    r".{1,}": [
        "a", "ab", "\na", "a\n", "\n\n\n", "\n \n", "\r", "\u2028", "٣", "\x00",
    ],
}

# characters and chunks each random string is built from: the pattern's own
# alphabet and literals, so that matches are common, plus the usual suspects
ALPHABETS = {
    OCI_VERSION: (list("0123456789.-+aZ") + ["1.0.0", "0.", "1.", "-rc", "+b"], 8),
    OCI_VERSION_SUPPORTED: (list("0123456789.-+aZ") + ["1.", "1.3.", "1.0.0", "-rc", "+b"], 8),
    r"^RLIMIT_[A-Z]+$": (list("ARLIMTZ_a1") + ["RLIMIT_", "RLIMIT_CORE"], 5),
    r"^CAP_[A-Z_]+$": (list("ACPSZ_a1") + ["CAP_", "CAP_SYS"], 5),
    r"^[0-9, -]*$": (list("0123456789, -;x"), 8),
    r"^[1-9][0-9]*[KMG]B$": (list("0129KMGBkT") + ["MB", "KB"], 6),
    r"^MB:[^\n]*$": (list("MB:0=;a") + ["MB:", "MB:0=20"], 5),
    r"^[cbup]$": (list("cbupCa"), 3),
    r".{1,}": (list("a"), 4),
}


def _random_corpus(pattern: str) -> list[str]:
    """Half random strings of pattern material, half near misses: matching
    edge cases with a few characters inserted, replaced or deleted."""
    rng = random.Random(f"{SEED}-{pattern}")
    chunks, max_len = ALPHABETS[pattern]
    pool = chunks * 4 + ["\n", "\n", " "] + TRICKY  # mostly pattern material
    regex = re.compile(pattern)
    valid = [s for s in EDGE_CASES[pattern] if regex.search(s)]
    out = []
    for i in range(CORPUS_SIZE):
        if i % 2:
            s = "".join(rng.choice(pool) for _ in range(rng.randint(0, max_len)))
        else:
            s = rng.choice(valid)
            for _ in range(rng.randint(0, 2)):
                at = rng.randint(0, len(s))
                s = s[:at] + rng.choice(["", rng.choice(pool)]) + s[at + rng.randint(0, 1):]
        if rng.random() < 0.2:  # "$" is special right before a final newline
            s += "\n"
        out.append(s)
    return out


def _schema_patterns() -> set[str]:
    found = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "pattern" and isinstance(value, str):
                    found.add(value)
                elif key == "patternProperties" and isinstance(value, dict):
                    found.update(value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for name in sorted(os.listdir(v.schemas_dir())):
        if name.endswith(".json"):
            walk(json.loads((v.schemas_dir() / name).read_text(encoding="utf-8")))
    return found


def test_every_schema_pattern_has_a_predicate():
    # a new pattern in a schema still works (schemac's re fallback), but
    # would bring re back into every create: give it a predicate
    assert _schema_patterns() == set(patterns.PREDICATES)
    assert set(EDGE_CASES) == set(ALPHABETS) == set(patterns.PREDICATES)
    for function in patterns.PREDICATES.values():
        assert getattr(patterns, function.__name__) is function  # schemac emits patterns.<name>
        assert function.__name__ in patterns.__all__


@pytest.mark.parametrize("pattern", sorted(patterns.PREDICATES))
def test_predicate_agrees_with_re_on_edge_cases(pattern):
    predicate = patterns.PREDICATES[pattern]
    regex = re.compile(pattern)
    cases = EDGE_CASES[pattern] + COMMON
    cases += [c + "\n" for c in cases] + [c + "\r\n" for c in cases]
    hits = 0
    for s in cases:
        expected = regex.search(s) is not None
        assert predicate(s) is expected, (pattern, s)
        hits += expected
    assert hits >= 2  # the list exercises both answers


@pytest.mark.parametrize("pattern", sorted(patterns.PREDICATES))
def test_predicate_agrees_with_re_on_random_strings(pattern):
    predicate = patterns.PREDICATES[pattern]
    regex = re.compile(pattern)
    hits = 0
    for s in _random_corpus(pattern):
        expected = regex.search(s) is not None
        assert predicate(s) is expected, (pattern, s)
        hits += expected
    # both answers are common, or the corpus proves little
    assert CORPUS_SIZE // 50 <= hits <= CORPUS_SIZE - CORPUS_SIZE // 50, hits


# --------------------------------------------------------------------------- schemac


def test_schemac_uses_predicates_and_imports_re_lazily_otherwise():
    known = schemac.compile_schemas(
        {"https://x.invalid/a.json": {"type": "string", "pattern": "^[cbup]$"}}, {"check": "https://x.invalid/a.json"}
    )
    assert "_patterns.file_type" in known and "re" not in _top_level_imports(known)
    unknown = schemac.compile_schemas(
        {"https://x.invalid/a.json": {"type": "string", "pattern": "^a+$"}}, {"check": "https://x.invalid/a.json"}
    )
    assert "_patterns" not in unknown and _top_level_imports(unknown) == []
    check = schemac.compile_checker({"type": "string", "pattern": "^a+$"})
    assert check("aa") and check("aa\n") and not check("ab") and not check("")


def _top_level_imports(source: str) -> list[str]:
    return [line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))]


# --------------------------------------------------------------------------- no re at runtime

# -S: no site, hence no editable-install import hook (it loads re by itself);
# -P and PYTHONPATH: the source tree's package is the one imported
CHILD = """
import sys
assert 're' not in sys.modules, 'the interpreter loaded re at startup: this test would prove nothing'
base = set(sys.modules)
from pyrunc.spec import _config_check
assert _config_check.__file__ == {module!r}, _config_check.__file__
imported = sorted(set(sys.modules) - base)
for doc in {docs!r}:
    assert _config_check.check_config(doc) is True
    assert _config_check.check_process(doc['process']) is True
bad = dict({docs!r}[0], ociVersion='1.0.0\\n\\n')
assert _config_check.check_config(bad) is False
print(' '.join(imported))
print('re' in sys.modules)
"""


def test_config_checker_does_not_import_re():
    full = json.loads((DATA / "full_linux_config.json").read_text())
    docs = [default_spec(), full]  # the full one reaches every pattern of the config schema
    assert all(v._get_validator(v.CONFIG_SCHEMA).is_valid(d) for d in docs)
    module = str(REPO / "pyrunc" / "spec" / "_config_check.py")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-S", "-P", "-c", CHILD.format(module=module, docs=docs)],
        capture_output=True, text=True, cwd=REPO, env=env,
    )
    assert out.returncode == 0, out.stderr
    imported, re_loaded = out.stdout.split("\n")[:2]
    assert imported.split() == ["pyrunc", "pyrunc.spec", "pyrunc.spec._config_check", "pyrunc.spec.patterns"]
    assert re_loaded == "False"
