"""The layout's boundaries: who may import whom, and a core that names no built-in component."""

import ast
from pathlib import Path

import pytest

from snnframe.kinds import NAMES
from snnframe.plugins import load_plugins

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "snnframe"
BUILTINS = sorted(p for p in (PACKAGE / "builtins").iterdir() if (p / "__init__.py").is_file())


def imported_modules(path: Path) -> list[str]:
    """Every module an ``import`` or ``from ... import`` in ``path`` names (function-level ones too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def test_there_are_builtin_packages_to_check():
    assert {p.name for p in BUILTINS} >= {
        "datasets",
        "encoders",
        "neurons",
        "surrogates",
        "models",
        "losses",
        "training",
        "visualizers",
    }


@pytest.mark.parametrize("package", BUILTINS, ids=lambda p: p.name)
def test_a_builtin_package_imports_only_the_core_the_engine_and_itself(package):
    own = f"snnframe.builtins.{package.name}"
    for path in package.rglob("*.py"):
        for name in imported_modules(path):
            if (
                name.startswith("snnframe.builtins")
                and name != "snnframe.builtins"
                and not (name == own or name.startswith(own + "."))
            ):
                pytest.fail(f"{path.relative_to(REPO)} imports {name}: built-in packages must not import each other")


def test_plugins_import_nothing_from_the_builtins():
    files = list((REPO / "plugins").rglob("*.py"))
    assert files
    for path in files:
        for name in imported_modules(path):
            assert not name.startswith("snnframe.builtins"), f"{path.relative_to(REPO)} imports {name}"


def test_the_core_imports_no_builtin_package():
    for path in PACKAGE.rglob("*.py"):
        if (PACKAGE / "builtins") in path.parents:
            continue
        for name in imported_modules(path):
            assert not name.startswith("snnframe.builtins"), f"{path.relative_to(REPO)} imports {name}"


def string_literals(path: Path) -> set[str]:
    """String constants of a module, docstrings left out."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    }


def test_the_core_names_no_builtin_component():
    plugins = load_plugins()
    builtin = {entry.name for kind in NAMES for entry in plugins.registry(kind) if entry.plugin.startswith("snnframe.")}
    assert {"leaky", "bptt", "ce_rate", "frames", "static", "csnn"} <= builtin
    for path in PACKAGE.rglob("*.py"):
        if (PACKAGE / "builtins") in path.parents:
            continue
        named = string_literals(path) & builtin
        assert not named, f"{path.relative_to(REPO)} names built-in components {sorted(named)}"
