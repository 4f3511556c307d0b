"""Running a few test samples through the trained model for plots."""

from collections.abc import Sequence

import torch
from torch.utils.data import default_collate

from snnframe.contracts import VisualContext
from snnframe.data import split_batch


def run_samples(ctx: VisualContext, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Output spikes ``[T, n, C]`` and targets ``[n]`` (on the CPU) of the test samples at ``indices``."""
    if len(ctx.test_set) == 0:
        raise ValueError("the test set is empty: nothing to plot")
    collate = ctx.encoder.collate_fn(ctx.info) or default_collate
    batch = collate([ctx.test_set[i] for i in indices])
    inputs, targets = split_batch(batch, ctx.device)
    model = ctx.model
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            spikes = model(ctx.encoder(inputs))
    finally:
        model.train(was_training)
    return spikes.float().cpu(), targets.cpu()


def class_names(ctx: VisualContext) -> list[str]:
    names = list(ctx.info.classes)
    return names if len(names) == ctx.info.num_classes else [str(i) for i in range(ctx.info.num_classes)]
