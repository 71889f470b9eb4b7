"""The repository's floors: every top-level package is ours, registered, and re-exports a
sorted ``__all__`` that matches what it imports."""

from __future__ import annotations

import ast
import importlib
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("qhybrid", "qhybrid_usecases", "qhybrid_entrypoints", "qhybrid_control", "flows",
            "tasks", "backends", "registry")
SUBPACKAGES = ("qhybrid.core", "qhybrid.experiments")


def _top_level_packages() -> set[str]:
    return {p.parent.name for p in REPO.glob("*/__init__.py")
            if p.parent.name not in ("tests", "benchmarks")}


def test_every_top_level_package_is_declared() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert _top_level_packages() == set(PACKAGES)
    assert set(config["tool"]["importlinter"]["root_packages"]) == set(PACKAGES)
    included = set(config["tool"]["setuptools"]["packages"]["find"]["include"])
    assert set(PACKAGES) <= included


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_is_imported_from_this_repository(name: str) -> None:
    # tasks, flows, backends and registry are generic names: an installed distribution of the
    # same name must never shadow ours.
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().is_relative_to(REPO), module.__file__


def _public_names(init: Path) -> set[str]:
    """What the package's __init__ imports, and the dunder values it defines (__version__)."""
    names: set[str] = set()
    body = ast.parse(init.read_text()).body
    # Names loaded on first use (a module __getattr__) are imported for type checkers only.
    lazy = [inner for node in body if isinstance(node, ast.If)
            and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
            for inner in node.body]
    for node in [*body, *lazy]:
        if isinstance(node, ast.ImportFrom) and node.module not in (None, "__future__", "typing"):
            names |= {alias.asname or alias.name for alias in node.names
                      if not (alias.asname or alias.name).startswith("_")}
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)
                      and t.id.startswith("__") and t.id != "__all__"}
    return names


@pytest.mark.parametrize("name", PACKAGES + SUBPACKAGES)
def test_all_is_sorted_and_matches_the_imports(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(getattr(module, "__all__", []))
    init = Path(module.__file__ or "")
    public = _public_names(init)
    assert set(exported) == public, f"{name}.__all__ differs from its imports"
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.{symbol}"
    # Sorted as ruff's RUF022 sorts: SCREAMING_CASE, then CamelCase, then the rest.
    def key(n: str) -> tuple[int, str]:
        return (0 if n.isupper() else 1 if n[0].isupper() else 2, n)


    assert exported == sorted(exported, key=key), f"{name}.__all__ is not sorted"
