"""The package layout is the architecture: each layer imports only from the
layers below it (README, "Architecture"). Checked on the source text, lazy
imports inside functions included."""
import pathlib
import re

import pyrunc

# top to bottom; a package may import from its own layer and those after it
LAYERS = [("cli",), ("container",), ("process",), ("rootfs", "security", "cgroups"), ("spec",),
          ("lean", "errors", "log", "native", "_native", "_build_info", "schemas")]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
IMPORT = re.compile(r"^\s*(?:from|import)\s+pyrunc\.([a-z_0-9]+)", re.M)
PACKAGE = pathlib.Path(pyrunc.__file__).parent


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if parts[0] in ("__init__.py", "__main__.py"):
            continue  # the entry point sits above every layer
        yield path, parts[0].removesuffix(".py")


def test_every_module_is_in_a_layer():
    assert {top for _, top in _modules()} <= set(RANK)


def test_imports_go_down_only():
    upward = []
    for path, top in _modules():
        for target in IMPORT.findall(path.read_text()):
            if target in RANK and RANK[target] < RANK[top]:
                upward.append(f"{path.relative_to(PACKAGE)} imports pyrunc.{target}")
    assert upward == []


def test_same_layer_packages_do_not_import_each_other_in_a_circle():
    edges = {}
    for path, top in _modules():
        for target in IMPORT.findall(path.read_text()):
            if target != top and target in RANK and RANK[target] == RANK[top]:
                edges.setdefault(top, set()).add(target)
    for a, targets in edges.items():
        for b in targets:
            assert a not in edges.get(b, set()), f"pyrunc.{a} and pyrunc.{b} import each other"
