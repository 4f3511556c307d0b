"""The hooks a snnframe plugin can implement: the plugin author's reference.

A plugin is a module (declared under the ``snnframe`` entry-point group) with functions
decorated ``@snnframe.hookimpl`` whose names are the hooks below. Each ``register_*`` hook
receives a :class:`Register` callback and calls it once per component::

    @snnframe.hookimpl
    def register_neurons(register):
        register("izhikevich", "snnframe_izhikevich.neuron:Izhikevich")

``factory`` is a callable (class or function) whose keyword arguments are the component's
recipe parameters, or a lazy reference ``"package.module:attr"`` that is imported only when a
recipe uses the component, so that ``snnframe --help`` and ``snnframe list-plugins`` never
import torch. Before anything runs, recipes are checked against the factory's signature
(unknown keys, missing required ones, values against the annotations); a factory raises
``ValueError`` for a bad value, and must be cheap (``snnframe validate`` calls it).

Some keyword arguments are injected by snnframe instead of coming from the recipe; they are
listed per hook and in :data:`snnframe.kinds.KINDS`. The objects factories receive and return
are described in :mod:`snnframe.contracts` and, for model code, :mod:`snnframe.engine`.
Tensors are time-major: ``[T, B, ...]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pluggy

hookspec = pluggy.HookspecMarker("snnframe")
hookimpl = pluggy.HookimplMarker("snnframe")


class Register(Protocol):
    def __call__(self, name: str, factory: Callable[..., Any] | str, *, default: bool = False) -> None:
        """Register ``factory`` as the component ``name`` (what recipes write as ``kind = "name"``).

        Names are unique per kind: a name two plugins register is an error naming both.
        ``default=True`` offers the component as the kind's default, used when a recipe leaves
        the table or its ``kind`` out (neurons, trainers and losses only; with two offers the
        recipe must name one).
        """


@hookspec
def register_datasets(register: Register) -> None:
    """Register data sets (recipe table ``[data]``; injected: ``root``, the recipe's ``data.root``).

    The factory returns a :class:`~snnframe.contracts.Dataset`: ``info`` (a ``DatasetInfo``)
    and ``splits(transform) -> (train, test)``, map-style data sets of ``(sample, label)``.
    The core keys ``root``, ``batch_size``, ``subset``, ``test_subset`` and ``num_workers`` are
    handled by snnframe; the table's other keys go to the factory. Reading files happens in
    ``splits``; a missing or unreadable data set raises ``snnframe.errors.DataError``.
    """


@hookspec
def register_encoders(register: Register) -> None:
    """Register encoders (recipe table ``[encoder]``): samples to network input ``[T, B, ...]``.

    The factory returns a :class:`~snnframe.contracts.Encoder`: ``modality``,
    ``sample_transform(info)``, ``collate_fn(info)``, ``input_shape(info)`` and
    ``__call__(batch)``. Input constant over time should be an expanded view (stride 0 along T).
    """


@hookspec
def register_architectures(register: Register) -> None:
    """Register networks (recipe table ``[model]``; injected: ``input_shape``, ``num_classes``, ``neuron``).

    ``neuron`` is a :class:`~snnframe.contracts.NeuronFactory`: call it once per spiking layer,
    from the input on, as ``neuron(shape=...)`` with the shape of one step of one sample of the
    layer's input (``neuron()`` works too, for neurons that need no shape); the ``i``-th call
    builds from ``[model.neurons.<i>]`` where the recipe has it. The factory returns an
    ``nn.Module`` mapping ``[T, B, *input_shape]`` to output spikes ``[T, B, num_classes]``,
    usually a :class:`snnframe.engine.SpikingSequential`. Raise
    :class:`~snnframe.errors.ParameterError` to report a bad value at its key (``model.spec``).
    """


@hookspec
def register_neurons(register: Register) -> None:
    """Register spiking neurons (recipe tables ``[model.neuron]`` and ``[model.neurons.<i>]``).

    Injected: ``surrogate``, ``shape``.
    ``surrogate`` is passed only when the table has a ``surrogate`` sub-table; ``shape`` (the
    layer's, from the architecture) only to a factory with a ``shape`` parameter. The
    factory returns an ``nn.Module``, normally a :class:`snnframe.engine.SpikingNeuron`: input
    current ``[T, B, ...]`` to spikes of the same shape from a fresh state on every call, and
    ``(spikes, mem)`` with ``return_mem=True``.
    """


@hookspec
def register_surrogates(register: Register) -> None:
    """Register surrogate gradients (recipe table ``[model.neuron.surrogate]``).

    The factory returns a :class:`snnframe.engine.Surrogate`: ``surrogate(x)`` is the Heaviside
    step with the surrogate gradient, ``derivative(x)`` the gradient itself, and optionally
    ``kernel_form()`` the inline form compiled kernels use.
    """


@hookspec
def register_trainers(register: Register) -> None:
    """Register trainers (recipe table ``[train]``; injected: ``epochs``, ``lr``, ``device``, ``loss``).

    The factory returns an object with ``fit(experiment: Experiment) -> TrainResult``.
    """


@hookspec
def register_losses(register: Register) -> None:
    """Register losses (recipe table ``[train.loss]``): ``loss(spikes [T, B, C], targets [B]) -> scalar``.

    A loss that is the mean over the batch of a per-sample loss declares ``sample_mean = True``;
    the ``bptt`` trainer may then train a batch in pieces (``train.micro_batch``).
    """


@hookspec
def register_loggers(register: Register) -> None:
    """Register loggers (recipe ``[train] loggers = ["name", ...]``, or ``[[train.loggers]]`` tables with options).

    The factory returns a :class:`~snnframe.contracts.Logger`: ``start(ctx: LoggerContext)``
    before training, ``log_epoch(report: EpochReport)`` after every epoch (its
    ``metrics.jsonl`` row and per-layer histograms of firing rates), ``close()`` at the end.
    Called on the main process only; a logger that raises is reported and switched off, and
    training goes on. A factory whose package is missing raises ``ValueError`` naming what to
    install, so that ``snnframe validate`` reports it.
    """


@hookspec
def register_visualizers(register: Register) -> None:
    """Register visualizers (recipe tables ``[[visualize]]``): ``visualizer(ctx: VisualContext) -> list[Path]``.

    Called after training on the main process; writes files into ``ctx.run_dir``.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``snnframe`` command line with ``@cli.command()``.

    ``cli`` is a ``click.Group`` whose commands join ``snnframe``'s when the hook returns; a hook
    that raises adds none, and its plugin is skipped with its components.

    Import heavy modules inside the command function, not at module level, so that
    ``snnframe --help`` stays fast.
    """
