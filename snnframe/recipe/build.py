"""Second pass over a recipe: plugin names, factory arguments, then the components themselves.

Each step adds what it finds to a shared :class:`~snnframe.recipe.schema.Problems`, so that one
:class:`~snnframe.errors.RecipeError` reports every problem of the recipe at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from snnframe.contracts import NeuronError, NeuronFactory, NeuronTable
from snnframe.errors import DataError, ParameterError, PluginError, one_line
from snnframe.kinds import BY_NAME, Kind
from snnframe.plugins import Plugins
from snnframe.recipe.params import check_arguments, defaults, factory_parameters
from snnframe.recipe.schema import Problems, Recipe


def resolve(recipe: Recipe, plugins: Plugins, problems: Problems) -> dict[str, Callable[..., Any]]:
    """The factory of every usable component table, by key path; problems with names and keys are collected.

    A table whose ``kind`` was left out gets the kind's default (a plugin's ``default=True``).
    """
    factories: dict[str, Callable[..., Any]] = {}
    for kind, path, table in recipe.component_tables():
        registry = plugins.registry(kind.name)
        if table.kind is not None and not isinstance(table.kind, str):  # e.g. kind = [] (already reported)
            continue
        if table.kind is None:
            if not kind.has_default:  # missing and required: already reported
                continue
            name, why = registry.default_name()
            if name is None:
                problems.add(path, f"{path}.kind: missing; {why}")
                continue
            table = recipe.tables[path] = attrs.evolve(table, kind=name)
        if table.kind not in registry:
            problems.add(path, f"{path}.kind: {registry.unknown_message(table.kind)}")
            continue
        try:
            factory = registry.get(table.kind)
        except PluginError as exc:
            problems.add(path, f"{path}.kind: {exc}")
            continue
        what = f'{kind.singular} "{table.kind}"'
        problems.add(path, *_missing_injected(factory, _injected(kind, path, recipe), path, what))
        problems.add(path, *check_arguments(factory, table.params, kind.injected, path, what))
        factories[path] = factory
    return factories


def _injected(kind: Kind, path: str, recipe: Recipe) -> tuple[str, ...]:
    """What the factory must accept for this table.

    A neuron gets ``surrogate`` only with a surrogate table, and ``shape`` (from the
    architecture) only if its factory has that parameter.
    """
    if kind.name == "neurons":
        optional = {"shape"} | ({"surrogate"} if recipe.table(f"{path}.surrogate") is None else set())
        return tuple(name for name in kind.injected if name not in optional)
    return kind.injected


def _missing_injected(factory: Callable[..., Any], injected: tuple[str, ...], path: str, what: str) -> list[str]:
    params, takes_any = factory_parameters(factory)
    missing = [name for name in injected if name not in params and not takes_any]
    if not missing:
        return []
    return [f"{path}.kind: {what} cannot be used here: its factory does not accept {', '.join(missing)}"]


def with_defaults(recipe: Recipe, factories: dict[str, Callable[..., Any]]) -> Recipe:
    """The recipe with every factory default written out, as saved in ``recipe.toml``."""
    tables = dict(recipe.tables)
    for kind, path, table in recipe.component_tables():
        if path in factories:
            tables[path] = attrs.evolve(table, params={**defaults(factories[path], kind.injected), **table.params})
    return attrs.evolve(recipe, tables=tables)


@attrs.define
class Components:
    dataset: Any
    encoder: Any
    model: Any
    loss: Any
    trainer: Any
    visualizers: list[tuple[str, Any]]
    factories: dict[str, Callable[..., Any]] = attrs.field(factory=dict, repr=False)  # by key path
    loggers: list[tuple[str, Any]] = attrs.field(factory=list)


def construct(
    recipe: Recipe, factories: dict[str, Callable[..., Any]], problems: Problems, plugins: Plugins | None = None
) -> Components:
    """Call the factory of every table without problems, injecting what each kind receives.

    A ``ValueError`` (or ``DataError``) a factory raises is reported against its table; a
    component whose table, or a table it depends on, has a problem is not built.
    """

    def make(path: str, **injected: Any) -> Any:
        if path in problems.tables or path not in factories:
            return None
        try:
            return factories[path](**recipe.tables[path].params, **injected)
        except NeuronError as exc:  # a neuron table's problem, found while the architecture built it
            problems.add(exc.path, f"{exc.path}: {exc}")
        except ParameterError as exc:
            problems.add(path, f"{path}.{exc.key}: {exc}")
        except (ValueError, DataError) as exc:
            problems.add(path, f"{path}: {exc}")
        except Exception as exc:  # a value the plugin did not check: still the recipe's table, not a traceback
            problems.add(path, factory_failure(path, recipe.tables[path].kind, exc))
        return None

    neuron = _neuron_factory(recipe, factories, problems, make)
    data = recipe.table("data")  # None when [data] is missing or not a table (already reported)
    dataset = make("data", root=data.root) if data is not None else None
    encoder = make("encoder")
    model = None
    if dataset is not None and encoder is not None:
        info = dataset.info
        if encoder.modality != info.modality:
            problems.add("encoder", _modality_mismatch(recipe, encoder, info, plugins))
        elif neuron is not None:
            model = make(
                "model", input_shape=tuple(encoder.input_shape(info)), num_classes=info.num_classes, neuron=neuron
            )
            if model is not None:
                _check_layer_numbers(recipe, neuron, problems)
    loss = make("train.loss")
    t = recipe.table("train")
    trainer = None
    if loss is not None and t is not None:
        trainer = make("train", epochs=t.epochs, lr=t.lr, device=t.device, loss=loss)
    visualizers = [(recipe.tables[p].kind, make(p)) for p in recipe.paths(BY_NAME["visualizers"])]
    loggers = [(recipe.tables[p].kind, make(p)) for p in recipe.paths(BY_NAME["loggers"])]
    return Components(dataset, encoder, model, loss, trainer, visualizers, factories, loggers)


def _neuron_factory(recipe: Recipe, factories, problems: Problems, make) -> NeuronFactory | None:
    """The ``neuron`` handed to the architecture; ``None`` when a neuron table has a problem.

    ``[model.neuron]`` is the default; each ``[model.neurons.<i>]`` replaces it for spiking layer
    ``i``. Each table is built once here (those that need their layer's shape: with the model),
    so that a bad value is reported before anything runs.
    """
    kind = BY_NAME["neurons"]
    tables: dict[str, NeuronTable] = {}
    layers: dict[int, NeuronTable] = {}
    for path in recipe.paths(kind):
        number = None
        if path != kind.path:
            name = path.rpartition(".")[2]
            number = int(name) if name.isdigit() and not name.startswith("0") else None
            if number is None:
                problems.add(
                    path, f"{path}: not a spiking layer number: spiking layers are numbered 1, 2, ... from the input"
                )
                continue
        kwargs = dict(recipe.tables[path].params)
        if recipe.table(f"{path}.surrogate") is not None:
            kwargs["surrogate"] = make(f"{path}.surrogate")
            if kwargs["surrogate"] is None:
                continue
        if path not in factories or path in problems.tables:
            continue
        table = NeuronTable(factories[path], kwargs, f'neuron "{recipe.tables[path].kind}"', path)
        try:
            table.check()
        except (NeuronError, DataError) as exc:
            problems.add(path, f"{path}: {exc}")
            continue
        except Exception as exc:
            problems.add(path, factory_failure(path, recipe.tables[path].kind, exc))
            continue
        tables[path] = table
        if number is not None:
            layers[number] = table
    if any(path not in tables for path in recipe.paths(kind)) or kind.path not in tables:
        return None
    default = tables[kind.path]
    return NeuronFactory(default.factory, default.kwargs, default.what, path=default.path, layers=layers)


def _check_layer_numbers(recipe: Recipe, neuron: NeuronFactory, problems: Problems) -> None:
    """Every ``[model.neurons.<i>]`` names a spiking layer the architecture built."""
    for number, table in sorted(neuron.layers.items()):
        if number > neuron.calls:
            count = f"{neuron.calls} spiking layer{'s' if neuron.calls != 1 else ''}"
            problems.add(
                table.path,
                f'{table.path}: the network has {count} (architecture "{recipe.tables["model"].kind}"); '
                + (f"per-layer tables are numbered 1 to {neuron.calls}" if neuron.calls else "it builds no neuron"),
            )


def factory_failure(path: str, name: str | None, exc: Exception) -> str:
    """The problem for a factory that raised something other than ``ValueError`` on a recipe's values."""
    if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) or "out of memory" in str(exc):
        return f"{path}: building {name!r} with these values needs more memory than this machine has ({one_line(exc)})"
    return (
        f"{path}: {name!r} could not be built with these values ({type(exc).__name__}: {one_line(exc)}); "
        "check the values, or report it to the plugin's authors if they are valid"
    )


def _modality_mismatch(recipe: Recipe, encoder: Any, info: Any, plugins: Plugins | None) -> str:
    message = (
        f'encoder.kind: encoder "{recipe.tables["encoder"].kind}" takes {encoder.modality} input, but dataset '
        f'"{recipe.data.kind}" yields {info.modality}; choose an encoder for {info.modality}'
    )
    fitting = ", ".join(f'"{name}"' for name in encoders_for(info.modality, plugins)) if plugins else ""
    return f"{message} ({fitting})" if fitting else message


def encoders_for(modality: str, plugins: Plugins) -> list[str]:
    """Names of the registered encoders whose factory declares ``modality`` (a class attribute)."""
    names = []
    for entry in plugins.registry("encoders"):
        try:
            factory = entry.load()
        except PluginError:
            continue
        if getattr(factory, "modality", None) == modality:
            names.append(entry.name)
    return names
