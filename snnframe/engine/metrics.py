"""Measures of a network's output that trainers, visualizers and commands share."""

from __future__ import annotations

import torch


def correct_count(spikes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Number of samples whose most-spiking output (argmax of counts over ``T``) is the target.

    ``spikes`` is ``[T, B, classes]``, ``targets`` ``[B]``; ties go to the lower class index
    (``argmax``), so a silent output counts as class 0.
    """
    return (spikes.sum(0).argmax(-1) == targets).sum()
