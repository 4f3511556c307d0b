"""TOML recipes: reading and ``--set`` overrides, the core schema, and building components.

* :mod:`~snnframe.recipe.overrides` reads a file and applies ``--set KEY=VALUE``;
* :mod:`~snnframe.recipe.schema` checks the core keys (no plugins needed);
* :mod:`~snnframe.recipe.params` checks a component table against its factory's signature;
* :mod:`~snnframe.recipe.build` resolves plugin names and builds the components.
"""

from __future__ import annotations

from pathlib import Path

from snnframe.recipe.overrides import apply_overrides, parse_override, read, read_with_overrides
from snnframe.recipe.schema import Component, Problems, Recipe, check_core, parse

__all__ = [
    "Component",
    "Problems",
    "Recipe",
    "apply_overrides",
    "check_core",
    "load",
    "parse",
    "parse_override",
    "read",
    "read_with_overrides",
]


def load(path: str | Path, overrides: list[str] = ()) -> Recipe:
    """Read, override and check the core keys of the recipe at ``path``."""
    return parse(read_with_overrides(path, overrides), source=str(path), default_name=Path(path).stem)
