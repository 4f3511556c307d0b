"""Multi-step execution of a layer stack over time-major input ``[T, B, ...]``.

:class:`SpikingSequential` splits its layers into *segments* of stateless layers (conv, pool,
linear, flatten, dropout, norm) separated by neurons:

* a segment runs once on time folded into the batch, ``[T * B, ...]`` (in chunks of
  ``fold_chunk`` samples on CPU, so that full-size intermediates such as a convolution's output
  before pooling never exist at once; the speed is the same);
* a neuron receives the whole sequence ``[T, B, ...]`` and runs its own fused time loop;
* input that is constant over time (the ``static`` encoder's ``x.unsqueeze(0).expand(T, ...)``,
  stride 0 along T) runs the segment before the first neuron once on ``[B, ...]``; the result
  is handed on as an expanded view (no T copies) and its gradient is summed over T once
  (a dropout layer there draws one mask for all steps).

4-d activations entering a segment with a convolution are kept channels-last, the layout in
which PyTorch's CPU convolutions and max-pooling are fastest; neurons keep the layout.

Example::

    >>> net = SpikingSequential(nn.Conv2d(1, 12, 5), nn.MaxPool2d(2), Leaky(beta=0.5),
    ...                         nn.Flatten(), nn.Linear(12 * 12 * 12, 10), Leaky(beta=0.5))
    >>> image = torch.rand(128, 1, 28, 28)
    >>> spikes = net(image.unsqueeze(0).expand(50, -1, -1, -1, -1))   # [50, 128, 10]
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from snnframe.engine import compact, sparse_conv, sparse_linear
from snnframe.engine.neuron import SpikingNeuron

DEFAULT_CPU_FOLD_CHUNK = 256


def is_static(x: torch.Tensor) -> bool:
    """Whether ``x [T, B, ...]`` is one tensor repeated over time (an expanded view)."""
    return x.dim() >= 2 and x.shape[0] > 1 and x.stride(0) == 0


class SpikingSequential(nn.Sequential):
    """``nn.Sequential`` for time-major input; see the module docstring.

    Args:
        layers: the modules, in order.
        neurons: indices of the layers that are neurons (time-major, stateful); by default the
            layers that are :class:`SpikingNeuron` instances. A neuron whose ``binary_spikes``
            attribute is ``True`` (any module, not only a ``SpikingNeuron``) lets the layers after
            it save its spikes as ``uint8``.
        fold_chunk: samples per chunk when running folded segments; ``None`` means the
            default (256 on CPU, unchunked on other devices), 0 means never chunk.
        compact_saves: let stateless layers save compact tensors for backward (:mod:`compact`)
            and run event-driven convolutions and linear layers on sparse input or spikes
            (:mod:`sparse_conv`, :mod:`sparse_linear`).
    """

    def __init__(
        self,
        *layers: nn.Module,
        neurons: Iterable[int] | None = None,
        fold_chunk: int | None = None,
        compact_saves: bool = True,
    ):
        for i, layer in enumerate(layers):
            if not isinstance(layer, nn.Module):
                raise ValueError(f"layer {i} is a {type(layer).__name__}, not a torch.nn.Module")
        super().__init__(*layers)
        if neurons is None:
            neurons = [i for i, layer in enumerate(layers) if isinstance(layer, SpikingNeuron)]
        self.neuron_indices = tuple(sorted(neurons))
        self.fold_chunk = fold_chunk
        self.compact_saves = compact_saves

    def segments(self) -> list[tuple[str, list[nn.Module]]]:
        """``("stateless", [layers])`` and ``("neuron", [layer])`` groups, in order."""
        groups: list[tuple[str, list[nn.Module]]] = []
        for i, layer in enumerate(self):
            if i in self.neuron_indices:
                groups.append(("neuron", [layer]))
            elif groups and groups[-1][0] == "stateless":
                groups[-1][1].append(layer)
            else:
                groups.append(("stateless", [layer]))
        return groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"expected time-major input [T, B, ...], got shape {tuple(x.shape)}")
        steps = x.shape[0]
        static = is_static(x)
        h = x[0] if static else x
        binary = False  # whether h holds 0/1 spikes of a neuron that declares binary_spikes
        for kind, layers in self.segments():
            if kind == "neuron":
                if static:  # the first neuron sees the hoisted activation as an expanded view
                    h, static = h.unsqueeze(0).expand(steps, *h.shape), False
                h = layers[0](h)
                binary = getattr(layers[0], "binary_spikes", False) is True
            elif static:
                h = run_layers(layers, h, binary, self.compact_saves)
            else:
                h = self._folded(layers, h, binary)
        if static:
            h = h.unsqueeze(0).expand(steps, *h.shape)
        return h

    def _folded(self, layers: list[nn.Module], x: torch.Tensor, binary: bool) -> torch.Tensor:
        steps, batch = x.shape[:2]
        flat = x.reshape(steps * batch, *x.shape[2:])
        chunk = self.fold_chunk
        if chunk is None:
            chunk = DEFAULT_CPU_FOLD_CHUNK if x.device.type == "cpu" else 0
        first = None
        if self.compact_saves and len(layers) > 1:
            first = sparse_conv.applicable(layers[0], layers[1], flat, binary)
        if chunk <= 0 or flat.shape[0] <= chunk or not has_intermediate(layers if first is None else layers[2:]):
            out = run_layers(layers, flat, binary, self.compact_saves, first)
        else:
            out = torch.cat([run_layers(layers, part, binary, self.compact_saves, first) for part in flat.split(chunk)])
        return out.unflatten(0, (steps, batch))


def has_intermediate(layers: list[nn.Module]) -> bool:
    """Whether a convolution or linear layer feeds another layer of the segment (a conv before its pool).

    Only such intermediates are bounded by chunking; without one, chunks would only add the
    concatenation of their outputs (and of their input gradients).
    """
    return any(isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) for layer in layers[:-1])


_UNDECIDED = -1


def run_layers(
    layers: list[nn.Module],
    x: torch.Tensor,
    binary: bool = False,
    save_compact: bool = True,
    first_pool: int | None = _UNDECIDED,
):
    """Apply stateless ``layers`` to a batch (``binary``: ``x`` holds 0/1 spikes).

    Convolutions compute on channels-last activations; with ``save_compact``, layers save
    compact tensors for their backward pass while training (see :mod:`compact`), and a
    convolution + max-pool on sparse input runs as one event-driven kernel (:mod:`sparse_conv`;
    ``first_pool``: :func:`sparse_conv.applicable` for the first two layers, if already known),
    and so does a linear layer on sparse rows (:mod:`sparse_linear`).
    """
    i = 0
    while i < len(layers):
        layer = layers[i]
        pool = None
        if i == 0 and first_pool != _UNDECIDED:
            pool = first_pool
        elif save_compact and i + 1 < len(layers):
            pool = sparse_conv.applicable(layer, layers[i + 1], x, binary)
        if pool is not None:  # sparse input (event frames, hidden spikes): event-driven conv fused with the max-pool
            x, i, binary = sparse_conv.conv_pool(layer, pool, x, binary), i + 2, False
            continue
        if save_compact and sparse_linear.applicable(layer, x, binary):  # sparse rows: event-driven linear
            x = sparse_linear.linear(layer, x, binary)
        elif save_compact:
            x = compact.apply(layer, x, binary)
        else:
            x = layer(x.contiguous(memory_format=torch.channels_last) if compact.is_conv2d(layer, x) else x)
        binary = binary and compact.keeps_binary(layer)
        i += 1
    return x
