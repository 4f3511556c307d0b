"""The core keys of a recipe, and its component tables laid out by :data:`snnframe.kinds.KINDS`.

A recipe is checked in two passes, both of which collect *all* problems before raising one
:class:`~snnframe.errors.RecipeError`: :func:`check_core` checks the core keys here (no plugins
needed); :mod:`snnframe.recipe.build` then checks plugin names and parameters against the
registered factories.

Every component table (``[data]``, ``[model.neuron]``, each ``[[visualize]]``, ...) becomes a
:class:`Component` (``kind`` + the plugin's own ``params``) stored in :attr:`Recipe.tables` under
its key path; the few tables with core keys (``[data]``, ``[train]``) are subclasses with those
keys as attributes.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from snnframe.errors import RecipeError, did_you_mean
from snnframe.kinds import KINDS, Kind, base_of, is_many
from snnframe.recipe.params import check_value, show

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=-]*")  # "=": sweep runs are named <name>-s0-train.lr=0.01
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be > 0"


def _at_least_one(value: Any) -> str | None:
    return None if value >= 1 else "must be >= 1 (keep every k-th sample)"


def _not_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _plain_name(value: str) -> str | None:
    if _PLAIN_NAME.fullmatch(value) and value not in {".", ".."} and ".." not in value:
        return None
    return "must be a plain directory name (letters, digits, '.', '_', '-', '='), not a path"


def _device(value: str) -> str | None:
    return None if _DEVICE.fullmatch(value) else 'must be "auto", "cpu", "cuda" or "cuda:N"'


@attrs.define
class Problems:
    """Every problem found in a recipe, and the component tables they make unusable."""

    messages: list[str] = attrs.field(factory=list)
    tables: set[str] = attrs.field(factory=set)

    def add(self, table: str, *messages: str) -> None:
        if messages:
            self.messages.extend(messages)
            self.tables.add(table)

    def raise_if_any(self, source: str | None) -> None:
        if self.messages:
            raise RecipeError(self.messages, source)


def key(type_: Any, default: Any = attrs.NOTHING, check: Callable[[Any], str | None] | None = None):
    """A core key: its TOML type, default (none = required) and value check."""
    return attrs.field(default=default, metadata={"type": type_, "check": check})


@attrs.define
class Component:
    """A component table: ``kind`` names the plugin component, ``params`` are its other keys.

    ``kind`` is ``None`` only where the kind has a default that the build step fills in.
    """

    kind: str | None = key(str, None)
    params: dict[str, Any] = attrs.field(factory=dict)


@attrs.define
class ExperimentSection:
    name: str = key(str, check=_plain_name)
    seed: int = key(int, 0, _not_negative)
    out_dir: str = key(str, "runs")


@attrs.define
class DataSection(Component):
    root: str = key(str, "data")
    batch_size: int = key(int, 128, _positive)
    subset: int = key(int, 1, _at_least_one)
    test_subset: int = key(int, 1, _at_least_one)
    num_workers: int = key(int, 0, _not_negative)


@attrs.define
class TrainSection(Component):
    epochs: int = key(int, 20, _positive)
    lr: float = key(float, 1e-2, _positive)
    device: str = key(str, "auto", _device)


# Component tables that have core keys; every other component table is a plain Component.
SECTION_CLASSES: dict[str, type[Component]] = {"data": DataSection, "train": TrainSection}


def _core_fields(cls: type) -> list[attrs.Attribute]:
    return [f for f in attrs.fields(cls) if f.name != "params"]


def _patterns() -> list[tuple[Kind, str]]:
    """``(kind, path pattern)`` for every place a component table may sit, parents before children."""
    return [(kind, pattern) for kind in KINDS for pattern in kind.paths]


def matches(pattern: str, path: str) -> bool:
    """Whether the key path ``path`` (``"model.neurons.3"``) is one of ``pattern``'s (``"model.neurons.*"``).

    A ``*`` segment stands for any one name, a trailing ``[]`` for any list index.
    """
    regex = re.escape(pattern).replace(r"\*", r"[^.\[\]]+")
    if regex.endswith(r"\[\]"):
        regex = regex[: -len(r"\[\]")] + r"\[\d+\]"
    return re.fullmatch(regex, path) is not None


def _sub_tables(path: str) -> set[str]:
    """The names of the component tables (or tables of them) that sit directly inside the table at ``path``."""
    names = set()
    for _, pattern in _patterns():
        parent, _, name = base_of(pattern).rpartition(".")
        if parent and matches(parent, path):
            names.add(name)
    return names


@attrs.define
class Recipe:
    experiment: ExperimentSection | None
    tables: dict[str, Component] = attrs.field(factory=dict)  # key path -> table
    source: str | None = attrs.field(default=None, eq=False)

    @property
    def data(self) -> DataSection:
        return self.tables["data"]  # type: ignore[return-value]

    @property
    def train(self) -> TrainSection:
        return self.tables["train"]  # type: ignore[return-value]

    def table(self, path: str) -> Component | None:
        """The component table at ``path`` (``"model.neuron"``, ``"visualize[0]"``), if any."""
        return self.tables.get(path)

    @property
    def run_dir(self) -> Path:
        return Path(self.experiment.out_dir) / self.experiment.name

    def component_tables(self) -> list[tuple[Kind, str, Component]]:
        """``(kind, key path, table)`` for every component table, in :data:`KINDS` order."""
        return [(kind, path, self.tables[path]) for kind in KINDS for path in self.paths(kind)]

    def paths(self, kind: Kind) -> list[str]:
        """The key paths of ``kind``'s tables in this recipe, at all of its places (:attr:`Kind.paths`)."""
        return [p for pattern in kind.paths for p in self.tables if matches(pattern, p)]

    def to_dict(self) -> dict[str, Any]:
        """The recipe as TOML data: core keys, then plugin keys, then sub-tables."""
        out: dict[str, Any] = {"experiment": attrs.asdict(self.experiment)} if self.experiment else {}
        for kind, path, table in self.component_tables():
            content = {"kind": table.kind} if table.kind is not None else {}
            content.update({f.name: getattr(table, f.name) for f in _core_fields(type(table)) if f.name != "kind"})
            content.update(copy.deepcopy(table.params))
            if path.endswith("]"):  # an item of a list of tables
                parent_path, _, name = path[: path.rindex("[")].rpartition(".")
                parent = _node(out, parent_path)
                if parent is not None:
                    parent.setdefault(name, []).append(content)
            elif any(is_many(pattern) and matches(pattern, path) for pattern in kind.paths):
                outer, _, item = path.rpartition(".")
                parent_path, _, name = outer.rpartition(".")
                parent = _node(out, parent_path)
                if parent is not None:
                    parent.setdefault(name, {})[item] = content
            else:
                parent_path, _, name = path.rpartition(".")
                parent = _node(out, parent_path)
                if parent is not None:
                    parent[name] = content
        return out


def _node(out: dict[str, Any], path: str) -> dict[str, Any] | None:
    node: Any = out
    for part in path.split(".") if path else []:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def parse(data: dict[str, Any], source: str | None = None, default_name: str | None = None) -> Recipe:
    """Check the core keys of recipe ``data`` and return a :class:`Recipe` (or raise all problems)."""
    recipe, problems = check_core(data, source, default_name)
    problems.raise_if_any(source)
    return recipe


def check_core(
    data: dict[str, Any], source: str | None = None, default_name: str | None = None
) -> tuple[Recipe, Problems]:
    """The recipe and the problems of its core keys; tables with problems are left out where unusable."""
    problems = Problems()
    known = ["experiment"] + list(dict.fromkeys(base_of(p).split(".")[0] for _, p in _patterns()))
    for name in data:
        if name not in known:
            problems.add(
                name, f"[{name}]: unknown section{did_you_mean(name, known)}; sections are: {', '.join(known)}"
            )
    experiment_table = data.get("experiment", {})
    if isinstance(experiment_table, dict) and default_name and "name" not in experiment_table:
        experiment_table = {**experiment_table, "name": default_name}
    experiment = _structure(ExperimentSection, experiment_table, "experiment", problems)
    tables: dict[str, Component] = {}
    raw: dict[str, dict[str, Any]] = {"": data}  # key path -> the TOML table that was read there
    for kind, pattern in _patterns():
        parent_pattern, _, name = base_of(pattern).rpartition(".")
        # the enclosing tables that were read (a missing or broken one is already reported)
        parents = [p for p in list(raw) if matches(parent_pattern, p)] if parent_pattern else [""]
        for parent_path in parents:
            base = f"{parent_path}.{name}" if parent_path else name
            main = pattern == kind.path
            for path, table in _tables_of(kind, pattern, base, main, raw[parent_path].get(name), problems):
                if table is None:
                    continue
                component = _structure(
                    SECTION_CLASSES.get(path, Component),
                    table,
                    path,
                    problems,
                    sub_tables=_sub_tables(path),
                    kind_required=not kind.has_default,
                )
                if component is not None:
                    tables[path] = component
                    raw[path] = table
    return Recipe(experiment, tables, source=source), problems


def _tables_of(
    kind: Kind, pattern: str, base: str, main: bool, value: Any, problems: Problems
) -> Iterator[tuple[str, Any]]:
    """``(path, TOML table)`` for each table of ``kind`` found in ``value`` at ``base`` (reporting bad shapes).

    ``main``: ``pattern`` is the kind's own :attr:`Kind.path` (the places in ``also`` are optional).
    """
    if value is None:
        if main and not kind.optional:
            problems.add(base, f"[{base}]: missing section")
        elif main and kind.has_default and not is_many(pattern):
            yield base, {}
        return
    if pattern.endswith("[]"):
        if not isinstance(value, list):
            problems.add(base, f"{base}: expected a list of tables ([[{base}]]) or names, got {show(value)}")
            return
        for i, item in enumerate(value):
            if isinstance(item, str):  # a name alone: ["tensorboard"] is [{kind = "tensorboard"}]
                item = {"kind": item}
            yield f"{base}[{i}]", _table_or_report(item, f"{base}[{i}]", problems)
    elif is_many(pattern):
        if not isinstance(value, dict):
            problems.add(base, f"{base}: expected a table of tables, got {show(value)}")
            return
        for name, item in value.items():
            yield f"{base}.{name}", _table_or_report(item, f"{base}.{name}", problems)
    else:
        yield base, _table_or_report(value, base, problems)


def _table_or_report(value: Any, path: str, problems: Problems) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    problems.add(path, f"{path}: expected a table, got {show(value)}")
    return None


def _structure(
    cls: type, table: Any, path: str, problems: Problems, sub_tables: set[str] = frozenset(), kind_required: bool = True
) -> Any:
    """``cls`` from a TOML table; a required key that is missing is reported and left ``None``."""
    if not isinstance(table, dict):
        problems.add(path, f"{path}: expected a table, got {show(table)}")
        return None
    fields = {f.name: f for f in attrs.fields(cls) if f.name != "params"}
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        where = f"{path}.{name}"
        if name in table:
            value = table[name]
            found = check_value(value, f.metadata["type"], where)
            if not found and f.metadata["check"] is not None:
                message = f.metadata["check"](value)
                found = [f"{where}: {message}, got {show(value)}"] if message else []
            problems.add(path, *found)
            kwargs[name] = value
        elif f.default is attrs.NOTHING or (name == "kind" and kind_required):
            problems.add(path, f"{where}: missing (required)")
            kwargs[name] = None
    if "params" in {f.name for f in attrs.fields(cls)}:
        kwargs["params"] = {k: v for k, v in table.items() if k not in fields and k not in sub_tables}
    else:
        for k in table:
            if k not in fields:
                problems.add(
                    path, f"{path}.{k}: unknown key{did_you_mean(k, fields)}; keys are: {', '.join(sorted(fields))}"
                )
    return cls(**kwargs)
