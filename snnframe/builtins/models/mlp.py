"""``mlp``: a fully connected spiking network, ``flatten -> (linear -> neuron) x N``.

Example::

    >>> net = mlp(input_shape=(1, 28, 28), num_classes=10, neuron=lambda: Leaky(beta=0.9), hidden=[256, 128])
    >>> net(torch.rand(25, 64, 1, 28, 28)).shape
    torch.Size([25, 64, 10])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import nn

from snnframe.builtins.models.layers import call_neuron
from snnframe.engine.sequential import SpikingSequential


def mlp(
    *,
    input_shape: Sequence[int],
    num_classes: int,
    neuron: Callable[[], nn.Module],
    hidden: Sequence[int] = (128,),
) -> SpikingSequential:
    """Build the MLP for ``[T, B, *input_shape]`` input; output spikes ``[T, B, num_classes]``."""
    if any(h < 1 for h in hidden):
        raise ValueError(f"hidden sizes must be positive integers, got {list(hidden)}")
    layers: list[nn.Module] = [nn.Flatten()]
    neurons: list[int] = []
    size = math.prod(input_shape)
    for width in [*hidden, num_classes]:
        layers.append(nn.Linear(size, width))
        neurons.append(len(layers))
        layers.append(call_neuron(neuron, (width,)))
        size = width
    return SpikingSequential(*layers, neurons=neurons)
