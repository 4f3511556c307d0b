"""Reading recipe files and applying ``--set KEY=VALUE`` overrides to their data."""

from __future__ import annotations

import codecs
import copy
import sys
from pathlib import Path
from typing import Any

from snnframe.errors import RecipeError, UsageError
from snnframe.recipe.params import show

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read(path: str | Path) -> dict[str, Any]:
    """The TOML data of a recipe file; a missing, empty, directory or non-TOML file is a RecipeError."""
    p = Path(path)
    if not p.exists():
        raise RecipeError([f"recipe file not found (looked for {p.resolve()})"], str(p))
    if p.is_dir():
        raise RecipeError(["is a directory, not a recipe file (expected a .toml file)"], str(p))
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise RecipeError([f"cannot read the recipe: {exc.strerror or exc}"], str(p)) from None
    if raw.startswith(codecs.BOM_UTF8):
        raise RecipeError(
            [
                "the file starts with a byte-order mark (BOM, bytes EF BB BF), which TOML does not allow; "
                "save it as UTF-8 without BOM (e.g. in Notepad: 'UTF-8', not 'UTF-8 with BOM')"
            ],
            str(p),
        )
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise RecipeError(["the file is UTF-16 encoded; TOML files must be UTF-8: save it as UTF-8"], str(p))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RecipeError(
            [f"not UTF-8 text (byte 0x{raw[exc.start]:02X} at line {line}); TOML files must be UTF-8: save as UTF-8"],
            str(p),
        ) from None
    if not text.strip():
        raise RecipeError(["the recipe is empty; see recipes/quickstart.toml for a complete example"], str(p))
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError([f"not valid TOML: {exc}"], str(p)) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.milestones=[10,15]"`` -> ``(["train", "milestones"], [10, 15])``.

    The value is read as TOML; what is not valid TOML (``/data``) is taken as a string.
    """
    key_text, sep, value_text = text.partition("=")
    key_text = key_text.strip()
    if not sep or not key_text:
        raise UsageError(f'--set "{text}": expected KEY=VALUE, e.g. --set train.epochs=3')
    parts = key_text.split(".")
    if any(not p.strip() for p in parts):
        raise UsageError(f'--set "{text}": "{key_text}" is not a valid key path (e.g. model.neuron.beta)')
    value_text = value_text.strip()
    try:
        value = tomllib.loads(f"v = {value_text}")["v"]
    except tomllib.TOMLDecodeError:
        value = value_text
    return [p.strip() for p in parts], value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``KEY=VALUE`` override set (``visualize.0.samples=3`` indexes lists)."""
    data = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = data
        for depth, part in enumerate(parts[:-1]):
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                node = node[_list_index(part, node, where, text)]
            elif isinstance(node, dict):
                node = node.setdefault(part, {})
            else:
                raise UsageError(f'--set "{text}": {where} is {show(node)}, not a table')
        last = parts[-1]
        if isinstance(node, list):
            node[_list_index(last, node, ".".join(parts), text)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise UsageError(f'--set "{text}": {".".join(parts[:-1])} is {show(node)}, not a table')
    return data


def _list_index(part: str, node: list, where: str, text: str) -> int:
    if part.isdigit() and int(part) < len(node):
        return int(part)
    raise UsageError(f'--set "{text}": {where} is not an index of a list of {len(node)} tables (0..{len(node) - 1})')


def read_with_overrides(path: str | Path, overrides: list[str] = ()) -> dict[str, Any]:
    """The TOML data of the recipe at ``path`` with ``overrides`` applied."""
    return apply_overrides(read(path), list(overrides))
