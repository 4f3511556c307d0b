"""Second pass over a recipe: plugin names, factory arguments, then the components themselves.

Each step adds what it finds to a shared :class:`~snnframe.recipe.Problems`, so that one
:class:`~snnframe.errors.RecipeError` reports every problem of the recipe at once.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import attrs

from snnframe.contracts import INJECTED
from snnframe.errors import DataError, PluginError
from snnframe.params import check_arguments, defaults, factory_parameters
from snnframe.plugins import Plugins
from snnframe.registry import singular
from snnframe.recipe import Problems, Recipe


def resolve(recipe: Recipe, plugins: Plugins, problems: Problems) -> dict[str, Callable[..., Any]]:
    """The factory of every usable component table, by key path; problems with names and keys are collected."""
    factories: dict[str, Callable[..., Any]] = {}
    for kind, path, table in recipe.component_tables():
        if table.kind is None:  # missing: already reported
            continue
        registry = plugins.registry(kind)
        if table.kind not in registry:
            problems.add(path, f"{path}.kind: {registry.unknown_message(table.kind)}")
            continue
        try:
            factory = registry.get(table.kind)
        except PluginError as exc:
            problems.add(path, f"{path}.kind: {exc}")
            continue
        what = f'{singular(kind)} "{table.kind}"'
        problems.add(path, *_missing_injected(factory, _injected(kind, table), path, what))
        problems.add(path, *check_arguments(factory, table.params, INJECTED[kind], path, what))
        factories[path] = factory
    return factories


def _injected(kind: str, table: Any) -> tuple[str, ...]:
    if kind == "neurons" and table.surrogate is None:
        return ()
    return INJECTED[kind]


def _missing_injected(factory: Callable[..., Any], injected: tuple[str, ...], path: str, what: str) -> list[str]:
    params, takes_any = factory_parameters(factory)
    missing = [name for name in injected if name not in params and not takes_any]
    if not missing:
        return []
    return [f"{path}.kind: {what} cannot be used here: its factory does not accept {', '.join(missing)}"]


def with_defaults(recipe: Recipe, factories: dict[str, Callable[..., Any]]) -> Recipe:
    """The recipe with every factory default written out, as saved in ``recipe.toml``."""
    recipe = attrs.evolve(recipe)

    def filled(table: Any, path: str, kind: str) -> Any:
        params = {**defaults(factories[path], INJECTED[kind]), **table.params}
        return attrs.evolve(table, params=params)

    neuron = recipe.model.neuron
    surrogate = neuron.surrogate and filled(neuron.surrogate, "model.neuron.surrogate", "surrogates")
    neuron = attrs.evolve(filled(neuron, "model.neuron", "neurons"), surrogate=surrogate)
    train = filled(recipe.train, "train", "trainers")
    return attrs.evolve(
        recipe,
        data=filled(recipe.data, "data", "datasets"),
        encoder=filled(recipe.encoder, "encoder", "encoders"),
        model=attrs.evolve(filled(recipe.model, "model", "architectures"), neuron=neuron),
        train=attrs.evolve(train, loss=filled(recipe.train.loss, "train.loss", "losses")),
        visualize=[filled(v, f"visualize[{i}]", "visualizers") for i, v in enumerate(recipe.visualize)],
    )


@attrs.define
class Components:
    dataset: Any
    encoder: Any
    model: Any
    loss: Any
    trainer: Any
    visualizers: list[tuple[str, Any]]


def construct(recipe: Recipe, factories: dict[str, Callable[..., Any]], problems: Problems) -> Components:
    """Call the factory of every table without problems; a ``ValueError`` is reported against its table.

    A component whose table (or a table it depends on) has a problem is not built.
    """

    def make(path: str, params: dict[str, Any], **injected: Any) -> Any:
        if path in problems.tables or path not in factories:
            return None
        try:
            return factories[path](**params, **injected)
        except (ValueError, DataError) as exc:
            problems.add(path, f"{path}: {exc}")
            return None

    neuron_table = recipe.model.neuron
    neuron_kwargs = dict(neuron_table.params)
    surrogate_ok = True
    if neuron_table.surrogate is not None:
        neuron_kwargs["surrogate"] = make("model.neuron.surrogate", neuron_table.surrogate.params)
        surrogate_ok = neuron_kwargs["surrogate"] is not None
    neuron = functools.partial(factories.get("model.neuron", _none), **neuron_kwargs)
    neuron_ok = surrogate_ok and make("model.neuron", neuron_kwargs) is not None  # built once to check values

    dataset = make("data", recipe.data.params, root=recipe.data.root)
    encoder = make("encoder", recipe.encoder.params)
    model = None
    if dataset is not None and encoder is not None:
        info = dataset.info
        if encoder.modality != info.modality:
            problems.add(
                "encoder",
                f'encoder.kind: encoder "{recipe.encoder.kind}" takes {encoder.modality} input, but dataset '
                f'"{recipe.data.kind}" yields {info.modality}; choose an encoder for {info.modality}'
                + (' (e.g. "frames")' if info.modality == "events" else ' (e.g. "static" or "rate")'),
            )
        elif neuron_ok:
            input_shape = tuple(encoder.input_shape(info))
            model = make("model", recipe.model.params, input_shape=input_shape, num_classes=info.num_classes,
                         neuron=neuron)
    loss = make("train.loss", recipe.train.loss.params)
    t = recipe.train
    trainer = None
    if loss is not None:
        trainer = make("train", t.params, epochs=t.epochs, lr=t.lr, device=t.device, loss=loss)
    visualizers = [(v.kind, make(f"visualize[{i}]", v.params)) for i, v in enumerate(recipe.visualize)]
    return Components(dataset, encoder, model, loss, trainer, visualizers)


def _none(**kwargs: Any) -> None:
    return None
