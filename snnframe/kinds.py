"""The component kinds: the one table that discovery, recipes, injection, defaults and the docs read.

Adding a kind means adding a :class:`Kind` here and its ``register_<name>`` hook in
:mod:`snnframe.hookspecs` (a test checks that the two, and ``docs/plugins.md``, agree).
Import-light: no torch.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Kind:
    """One kind of component.

    ``path`` is where its recipe tables sit: ``"model.neuron"`` (one table), ``"visualize[]"``
    (a list of tables, ``[[visualize]]``, in which a plain string ``"name"`` stands for the
    table ``{kind = "name"}``) or ``"model.neurons.*"`` (a table of tables keyed by name); a
    ``*`` may also stand inside a path (``"model.neurons.*.surrogate"``: the table in each of
    them). ``also`` are further places its tables sit, always optional (the per-layer
    ``[model.neurons.<i>]`` besides ``[model.neuron]``). ``injected`` are the keyword arguments
    the core or the architecture passes to the factory itself (a recipe cannot set them).
    ``optional``: the table at ``path`` may be left out. ``has_default``: when the table at
    ``path``, or the ``kind`` of any of its tables, is left out, the component a plugin
    registered with ``default=True`` is used.
    """

    name: str
    singular: str
    path: str
    summary: str
    injected: tuple[str, ...] = ()
    optional: bool = False
    has_default: bool = False
    also: tuple[str, ...] = ()

    @property
    def hook(self) -> str:
        return f"register_{self.name}"

    @property
    def paths(self) -> tuple[str, ...]:
        """Every place the kind's tables sit: ``path`` first, then ``also``."""
        return (self.path, *self.also)

    @property
    def many(self) -> bool:
        """Whether the recipe holds a list (``[]``) or a table (``*``) of such tables at ``path``."""
        return is_many(self.path)

    @property
    def base(self) -> str:
        """The path without its ``[]`` / ``.*`` suffix."""
        return base_of(self.path)


def is_many(path: str) -> bool:
    """Whether the path pattern names a list (``[]``) or a table (``.*``) of tables."""
    return path.endswith(("[]", ".*"))


def base_of(path: str) -> str:
    """A path pattern without its ``[]`` / ``.*`` suffix."""
    return path.removesuffix("[]").removesuffix(".*")


KINDS: tuple[Kind, ...] = (
    Kind("datasets", "dataset", "data", "data sets: samples and labels, train and test splits", ("root",)),
    Kind("encoders", "encoder", "encoder", "encoders: samples to time-major network input [T, B, ...]"),
    Kind(
        "architectures",
        "architecture",
        "model",
        "networks built from a neuron factory and the data's shape",
        ("input_shape", "num_classes", "neuron"),
    ),
    Kind(
        "neurons",
        "neuron",
        "model.neuron",
        "spiking neuron layers: input current [T, B, ...] to spikes",
        ("surrogate", "shape"),
        optional=True,
        has_default=True,
        also=("model.neurons.*",),  # per spiking layer, numbered from 1: replaces [model.neuron] there
    ),
    Kind(
        "surrogates",
        "surrogate",
        "model.neuron.surrogate",
        "surrogate gradients of the spike non-linearity",
        optional=True,
        also=("model.neurons.*.surrogate",),
    ),
    Kind(
        "trainers",
        "trainer",
        "train",
        "trainers: fit(experiment) -> TrainResult",
        ("epochs", "lr", "device", "loss"),
        optional=True,
        has_default=True,
    ),
    Kind(
        "losses",
        "loss",
        "train.loss",
        "losses on output spikes [T, B, classes] and targets",
        optional=True,
        has_default=True,
    ),
    Kind(
        "loggers",
        "logger",
        "train.loggers[]",
        "loggers: each epoch's metrics to TensorBoard, W&B, MLflow, ...",
        optional=True,
    ),
    Kind(
        "visualizers",
        "visualizer",
        "visualize[]",
        "visualizers, run after training on the trained model",
        optional=True,
    ),
)

BY_NAME = {kind.name: kind for kind in KINDS}
NAMES = tuple(kind.name for kind in KINDS)


def singular(name: str) -> str:
    """``"losses"`` -> ``"loss"``."""
    return BY_NAME[name].singular
