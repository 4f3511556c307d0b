"""The hooks a snnframe plugin can implement.

Each ``register_*`` hook receives a ``register(name, factory)`` callback.
``factory`` is a callable (class or function) whose keyword arguments are the
component's recipe parameters, or a lazy reference ``"package.module:attr"``
that is imported only when a recipe uses the component, so that
``snnframe --help`` and ``snnframe list-plugins`` never import torch.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("snnframe")
hookimpl = pluggy.HookimplMarker("snnframe")


@hookspec
def register_datasets(register):
    """Register datasets: ``register("mnist", "pkg.mod:MNIST")``."""


@hookspec
def register_encoders(register):
    """Register encoders that turn dataset samples into time-major network input."""


@hookspec
def register_neurons(register):
    """Register spiking neuron models (input current ``[T, B, ...]`` to spikes)."""


@hookspec
def register_surrogates(register):
    """Register surrogate gradients for the spike non-linearity."""


@hookspec
def register_architectures(register):
    """Register network architectures built from a neuron factory and the data's shape."""


@hookspec
def register_losses(register):
    """Register losses computed from output spikes ``[T, B, classes]`` and targets."""


@hookspec
def register_trainers(register):
    """Register trainers: objects with ``fit(experiment) -> TrainResult``."""


@hookspec
def register_visualizers(register):
    """Register visualizers, run after training on the trained model."""


@hookspec
def register_commands(cli):
    """Add commands to the ``snnframe`` click group ``cli``."""
