"""``csnn``: the seed's convolutional SNN, ``12C5-MP2-64C5-MP2-FC10`` by default.

Each stage is conv -> max-pool -> neuron; then flatten -> linear -> neuron. The flattened
size follows from the input shape: ``(1, 28, 28) -> 64 * 4 * 4 = 1024``,
``(2, 34, 34) -> 64 * 5 * 5 = 1600``. Built by the ``layers`` architecture's builder: the
network is exactly ``layers`` with ``spec = "12C5-MP2-64C5-MP2-FC10"`` (same modules, same
parameters, drawn in the same order).

Example::

    >>> net = csnn(input_shape=(1, 28, 28), num_classes=10, neuron=lambda: Leaky(beta=0.5))
    >>> net(torch.rand(50, 128, 1, 28, 28)).shape
    torch.Size([50, 128, 10])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from snnframe.builtins.models.layers import FC, Conv, LayerNetwork, Pool, build_network


def csnn(
    *,
    input_shape: Sequence[int],
    num_classes: int,
    neuron: Callable[[], nn.Module],
    channels: Sequence[int] = (12, 64),
    kernel_size: int = 5,
    pool: int = 2,
) -> LayerNetwork:
    """Build the CSNN for ``[T, B, *input_shape]`` input; output spikes ``[T, B, num_classes]``."""
    if len(input_shape) != 3:
        raise ValueError(f"csnn needs image-shaped input (C, H, W), got input_shape {tuple(input_shape)}")
    if not channels or any(c < 1 for c in channels):
        raise ValueError(f"channels must be a non-empty list of positive integers, got {list(channels)}")
    if kernel_size < 1 or pool < 1:
        raise ValueError(f"kernel_size and pool must be at least 1, got {kernel_size} and {pool}")
    _, height, width = input_shape
    for _ in channels:
        height, width = (height - kernel_size + 1) // pool, (width - kernel_size + 1) // pool
        if height < 1 or width < 1:
            raise ValueError(
                f"input {tuple(input_shape)} is too small for {len(channels)} stages of "
                f"{kernel_size}x{kernel_size} convolution and {pool}x{pool} pooling"
            )
    specs: list = []
    for out_channels in channels:
        specs += [Conv(out_channels, kernel_size), Pool("max", pool)]
    return build_network([*specs, FC()], input_shape, num_classes, neuron)
