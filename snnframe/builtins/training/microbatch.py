"""One optimizer step over a batch whose forward and backward passes run in pieces.

Backpropagation through time keeps every step's activations until the backward pass, so a
training step's memory grows with ``T x B``: for ``csnn_spike`` (T ~ 300 frames, batch 128)
that is 38,400 folded samples of convolution outputs, gradients and saved spikes. When the
loss of a batch is the mean of its samples' losses, the batch's gradient is the sum of its
pieces' gradients, each piece's loss weighted by its share of the samples: backpropagating
the pieces one after another gives the whole batch's gradient (up to float summation order)
while only one piece's activations exist at a time. The optimizer still steps once per batch.

A piece may only be split off when the samples of a batch do not interact:

- the loss declares ``sample_mean = True`` (the built-in losses do): its value on a batch is the
  mean over the batch's samples of a per-sample loss;
- the model holds no batch normalisation (its statistics in training mode span the batch).

``train.micro_batch = "auto"`` (the default) splits on CPU only, a batch of more than
:data:`AUTO_SPLIT_ABOVE` folded samples (``T x B``) into pieces of at most
:data:`AUTO_FOLDED_SAMPLES` (4,800 // T samples); an integer sets the piece size (``0``: never
split).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from snnframe.errors import RecipeError

# "auto" on CPU: batches of more than AUTO_SPLIT_ABOVE folded samples (T x samples) train in
# pieces of at most AUTO_FOLDED_SAMPLES. Measured (docs/benchmarks.md): csnn_spike (batch 128,
# T ~ 300) peaks at 5.39 GiB whole, 2.49 GiB in pieces of 32, 2.08 GiB in pieces of 16 (~4,800
# folded), its epochs equally fast (within 5 %); csnn_static (batch 128, T = 50: 6,400 folded,
# ~1 GiB) is 6 % slower in two pieces, so it trains whole.
AUTO_SPLIT_ABOVE = 9600
AUTO_FOLDED_SAMPLES = 4800


def couples_samples(model: nn.Module) -> list[str]:
    """Names of the model's layers whose training-mode output depends on other samples of the batch."""
    norms = nn.modules.batchnorm._BatchNorm  # BatchNorm1d/2d/3d, SyncBatchNorm, lazy ones
    return [name or type(model).__name__ for name, m in model.named_modules() if isinstance(m, norms)]


def allowed(setting: int | str, loss, model: nn.Module) -> bool:
    """Whether batches may train in pieces; ``RecipeError`` when an explicit ``train.micro_batch`` cannot.

    Decided once per run: the loss's ``sample_mean`` and the model's layers do not change.
    """
    sample_mean = getattr(loss, "sample_mean", False) is True
    coupled = couples_samples(model)
    if setting in ("auto", 0):
        return setting == "auto" and sample_mean and not coupled
    if not sample_mean:
        raise RecipeError(
            [
                f"train.micro_batch = {setting}: the loss ({type(loss).__name__}) does not declare "
                "sample_mean = True (its value on a batch is the mean of per-sample losses), so pieces of a "
                "batch would not add up to its gradient; use a built-in loss or set train.micro_batch = 0"
            ]
        )
    if coupled:
        raise RecipeError(
            [
                f"train.micro_batch = {setting}: the model's batch normalisation ({', '.join(coupled[:3])}) "
                "computes statistics over the whole batch, so pieces would train differently; "
                "set train.micro_batch = 0"
            ]
        )
    return True


def piece_size(setting: int | str, x, batch: int, device: torch.device, may_split: bool) -> int:
    """Samples per piece of a batch of ``batch`` samples whose encoded input is ``x`` (``batch``: no split).

    ``may_split``: what :func:`allowed` said for this run.
    """
    if not may_split or not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[1] != batch:
        return batch
    if setting == "auto":
        if device.type != "cpu" or x.shape[0] * batch <= AUTO_SPLIT_ABOVE:
            return batch
        size = max(1, AUTO_FOLDED_SAMPLES // x.shape[0])
    else:
        size = int(setting)
    if size >= batch:
        return batch
    return math.ceil(batch / math.ceil(batch / size))  # as even as allowed: 128 in pieces of <= 40 -> 4 x 32


def pieces(batch: int, size: int) -> list[tuple[slice, float]]:
    """Each piece of a batch in pieces of ``size``: its samples and its share of the batch (its loss's weight)."""
    return [
        (slice(start, min(batch, start + size)), (min(batch, start + size) - start) / batch)
        for start in range(0, batch, size)
    ]
