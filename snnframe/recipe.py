"""TOML recipes: reading, ``--set`` overrides and the schema of the core keys.

A recipe is checked in two passes, both of which collect *all* problems before
raising one :class:`RecipeError`: :func:`parse` checks the core keys here (no plugins
needed); :mod:`snnframe.build` then checks plugin names and parameters against the
registered factories.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any, Callable

import attrs

from snnframe.errors import RecipeError, UsageError, did_you_mean
from snnframe.params import check_value, show

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be > 0"


def _at_least_one(value: Any) -> str | None:
    return None if value >= 1 else "must be >= 1 (keep every k-th sample)"


def _not_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _plain_name(value: str) -> str | None:
    if _PLAIN_NAME.fullmatch(value) and value not in {".", ".."} and ".." not in value:
        return None
    return "must be a plain directory name (letters, digits, '.', '_', '-'), not a path"


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


def section(cls: type, optional: bool = False):
    """A nested component table (e.g. ``[model.neuron]``)."""
    return attrs.field(default=None, metadata={"section": cls, "optional": optional})


def params():
    """The plugin's own keys: everything in the table that is not a core key."""
    return attrs.field(factory=dict, metadata={"params": True})


@attrs.define
class Component:
    """A component table: ``kind`` names the plugin, the other keys go to its factory."""

    kind: str = key(str)
    params: dict[str, Any] = params()


@attrs.define
class ExperimentSection:
    name: str = key(str, check=_plain_name)
    seed: int = key(int, 0, _not_negative)
    out_dir: str = key(str, "runs")


@attrs.define
class DataSection:
    kind: str = key(str)
    root: str = key(str, "data")
    batch_size: int = key(int, 128, _positive)
    subset: int = key(int, 1, _at_least_one)
    test_subset: int = key(int, 1, _at_least_one)
    num_workers: int = key(int, 0, _not_negative)
    params: dict[str, Any] = params()


@attrs.define
class NeuronSection:
    kind: str = key(str, "leaky")
    surrogate: Component | None = section(Component, optional=True)
    params: dict[str, Any] = params()


@attrs.define
class ModelSection:
    kind: str = key(str)
    neuron: NeuronSection = section(NeuronSection)
    params: dict[str, Any] = params()


@attrs.define
class TrainSection:
    kind: str = key(str, "bptt")
    epochs: int = key(int, 20, _positive)
    lr: float = key(float, 1e-2, _positive)
    device: str = key(str, "auto", _device)
    loss: Component = section(Component)
    params: dict[str, Any] = params()


_LOSS_DEFAULT = {"kind": "ce_rate"}


@attrs.define
class Recipe:
    experiment: ExperimentSection = section(ExperimentSection)
    data: DataSection = section(DataSection)
    encoder: Component = section(Component)
    model: ModelSection = section(ModelSection)
    train: TrainSection = section(TrainSection)
    visualize: list[Component] = attrs.field(factory=list)
    source: str | None = attrs.field(default=None, eq=False)

    @property
    def run_dir(self) -> Path:
        return Path(self.experiment.out_dir) / self.experiment.name

    def component_tables(self) -> list[tuple[str, str, Component | Any]]:
        """``(registry kind, key path, section)`` for every component table."""
        model, train = self.model, self.train
        neuron = model and model.neuron
        tables = [
            ("datasets", "data", self.data),
            ("encoders", "encoder", self.encoder),
            ("architectures", "model", model),
            ("neurons", "model.neuron", neuron),
            ("surrogates", "model.neuron.surrogate", neuron and neuron.surrogate),
            ("trainers", "train", train),
            ("losses", "train.loss", train and train.loss),
        ]
        tables += [("visualizers", f"visualize[{i}]", v) for i, v in enumerate(self.visualize)]
        return [t for t in tables if t[2] is not None]

    def to_dict(self) -> dict[str, Any]:
        """The recipe as TOML data (plugin keys after core keys)."""
        out = {name: _section_dict(getattr(self, name)) for name in ("experiment", "data", "encoder", "model", "train")}
        out["visualize"] = [_section_dict(v) for v in self.visualize]
        return out


def _section_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    nested = {}
    for f in attrs.fields(type(obj)):
        value = getattr(obj, f.name)
        if "params" in f.metadata:
            out.update(copy.deepcopy(value))
        elif "section" in f.metadata:
            if value is not None:
                nested[f.name] = _section_dict(value)
        else:
            out[f.name] = value
    out.update(nested)  # sub-tables last, as TOML writes them
    return out


# ---------------------------------------------------------------- reading


def read(path: str | Path) -> dict[str, Any]:
    """The TOML data of a recipe file; a missing, empty, directory or non-TOML file is a RecipeError."""
    p = Path(path)
    if not p.exists():
        raise RecipeError([f"recipe file not found (looked for {p.resolve()})"], str(p))
    if p.is_dir():
        raise RecipeError(["is a directory, not a recipe file (expected a .toml file)"], str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError([f"cannot read the recipe: {exc}"], str(p)) from None
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


# ---------------------------------------------------------------- core schema


def parse(data: dict[str, Any], source: str | None = None, default_name: str | None = None) -> Recipe:
    """Check the core keys of recipe ``data`` and return a :class:`Recipe` (or raise all problems)."""
    recipe, problems = check_core(data, source, default_name)
    problems.raise_if_any(source)
    return recipe


def check_core(data: dict[str, Any], source: str | None = None,
               default_name: str | None = None) -> tuple[Recipe, Problems]:
    """The recipe and the problems of its core keys; tables with problems hold ``None`` where unusable."""
    problems = Problems()
    data = copy.deepcopy(data)
    experiment = data.setdefault("experiment", {})
    if isinstance(experiment, dict) and default_name and "name" not in experiment:
        experiment["name"] = default_name
    train = data.setdefault("train", {})
    if isinstance(train, dict):
        train.setdefault("loss", dict(_LOSS_DEFAULT))
    model = data.get("model")
    if isinstance(model, dict):
        model.setdefault("neuron", {})

    sections = {f.name: f for f in attrs.fields(Recipe) if "section" in f.metadata}
    known = list(sections) + ["visualize"]
    for name in data:
        if name not in known:
            problems.add(name, f"[{name}]: unknown section{did_you_mean(name, known)}; sections are: {', '.join(known)}")
    values: dict[str, Any] = {}
    for name, f in sections.items():
        if name in data:
            values[name] = _structure(f.metadata["section"], data[name], name, problems)
        else:
            problems.add(name, f"[{name}]: missing section")
    values["visualize"] = _structure_list(data.get("visualize", []), problems)
    return Recipe(**values, source=source), problems


def _structure(cls: type, table: Any, path: str, problems: Problems) -> Any:
    """``cls`` from a TOML table; a missing required key is left ``None`` (and reported)."""
    if not isinstance(table, dict):
        problems.add(path, f"{path}: expected a table, got {show(table)}")
        return None
    kwargs: dict[str, Any] = {}
    fields = attrs.fields(cls)
    core = {f.name for f in fields if "params" not in f.metadata}
    takes_params = any("params" in f.metadata for f in fields)
    for f in fields:
        meta = f.metadata
        where = f"{path}.{f.name}"
        if "params" in meta:
            kwargs["params"] = {k: v for k, v in table.items() if k not in core}
        elif "section" in meta:
            if f.name in table:
                kwargs[f.name] = _structure(meta["section"], table[f.name], where, problems)
            elif not meta["optional"]:
                problems.add(where, f"[{where}]: missing section")
        elif f.name in table:
            value = table[f.name]
            found = check_value(value, meta["type"], where)
            if not found and meta["check"] is not None:
                message = meta["check"](value)
                found = [f"{where}: {message}, got {show(value)}"] if message else []
            problems.add(path, *found)
            kwargs[f.name] = value
        elif f.default is attrs.NOTHING:
            problems.add(path, f"{where}: missing (required)")
            kwargs[f.name] = None
    if not takes_params:
        for k in table:
            if k not in core:
                problems.add(path, f"{path}.{k}: unknown key{did_you_mean(k, core)}; keys are: {', '.join(sorted(core))}")
    return cls(**kwargs)


def _structure_list(items: Any, problems: Problems) -> list[Component]:
    if not isinstance(items, list):
        problems.add("visualize", f"visualize: expected a list of tables ([[visualize]]), got {show(items)}")
        return []
    return [_structure(Component, item, f"visualize[{i}]", problems) for i, item in enumerate(items)]


def read_with_overrides(path: str | Path, overrides: list[str] = ()) -> dict[str, Any]:
    return apply_overrides(read(path), list(overrides))


def load(path: str | Path, overrides: list[str] = ()) -> Recipe:
    """Read, override and check the core keys of the recipe at ``path``."""
    return parse(read_with_overrides(path, overrides), source=str(path), default_name=Path(path).stem)
