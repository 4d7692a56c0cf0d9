"""The import graph of the commands container engines call most is part of
their cost (every command is a fresh process): this fails when it grows past
a budget, counted in modules (times are too noisy for CI).

Counted as the installed `pyrunc` command runs (scripts/pyrunc: `python -IS`,
the venv's site-packages appended): without the site module, os and the
modules it needs (os.path, posixpath, genericpath, stat, _stat,
_collections_abc) are the command's own imports, 7 of the hot budget."""
import os
import subprocess
import sys

# modules a command may add on top of a bare interpreter (python -IS -c pass)
HOT_BUDGET = 23      # state, start, kill, delete (today: 23)
CREATE_BUDGET = 68   # create, run (today: 66; 76 before optional sections were imported lazily)
# what create loads, including the modules it imports on first use
CREATE_IMPORTS = ("pyrunc.cli, pyrunc.container.create, pyrunc.cgroups.warmup, "
                  "pyrunc.spec._config_check, pyrunc.cgroups.resources, pyrunc.spec.keys")
# stdlib packages whose import chains cost milliseconds each (logging: --debug
# is pyrunc.log's, which costs nothing when off)
HEAVY = ("click", "jsonschema", "json", "re", "enum", "dataclasses", "socket", "signal",
         "collections", "functools", "contextlib", "array", "typing", "inspect", "copy",
         "weakref", "logging")
# where pyrunc is installed: the launcher appends it to a site-less path
SITE = os.path.dirname(os.path.dirname(os.path.abspath(__import__("pyrunc").__file__)))

COUNT = """
import sys
sys.path.append({site!r})
base = set(sys.modules)
{imports}
print(len(set(sys.modules) - base))
"""


def _count(imports: str) -> int:
    out = subprocess.run([sys.executable, "-IS", "-c", COUNT.format(site=SITE, imports=imports)],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_hot_commands_import_budget():
    # the fast path for state/start/kill/delete: pyrunc.__main__ -> cli -> commands -> lifecycle
    n = _count("import pyrunc.__main__, pyrunc.cli, pyrunc.cli.commands, "
               "pyrunc.container.lifecycle, pyrunc.container.state, pyrunc.lean.signals")
    assert n <= HOT_BUDGET, f"hot commands import {n} modules (budget {HOT_BUDGET})"


def _heavy_imports(imports: str) -> str:
    # (relative to what the interpreter had already)
    out = subprocess.run([sys.executable, "-IS", "-c",
                          f"import sys; sys.path.append({SITE!r}); base = set(sys.modules); "
                          f"import {imports}; "
                          f"print(' '.join(m for m in {HEAVY!r} if m in set(sys.modules) - base))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_hot_commands_do_not_import_heavy_modules():
    assert _heavy_imports("pyrunc.cli, pyrunc.container.lifecycle") == ""


def test_create_import_budget():
    n = _count(f"import {CREATE_IMPORTS}")
    assert n <= CREATE_BUDGET, f"create imports {n} modules (budget {CREATE_BUDGET})"


def test_create_run_exec_do_not_import_heavy_modules():
    assert _heavy_imports(CREATE_IMPORTS + ", pyrunc.container.run, pyrunc.container.exec") == ""
