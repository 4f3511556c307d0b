"""Data plumbing shared by dataset plugins, trainers and visualizers (torch imported lazily)."""

from __future__ import annotations

from typing import Any


def keep_every(dataset: Any, k: int) -> Any:
    """Keep samples ``0, k, 2k, ...`` (deterministic, like the seed's ``data.subset``)."""
    if k == 1:
        return dataset
    from torch.utils.data import Subset

    return Subset(dataset, range(0, len(dataset), k))


def to_device(obj: Any, device: Any, non_blocking: bool = False) -> Any:
    """``obj`` with every tensor inside (tuples, lists, dicts) moved to ``device``; other objects
    with a ``to(device, non_blocking=...)`` method (e.g. ``snnframe.events.EventBatch``) move themselves."""
    import torch

    if isinstance(obj, torch.Tensor) or callable(getattr(obj, "to", None)):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(item, device, non_blocking) for item in obj)
    if isinstance(obj, dict):
        return {key: to_device(value, device, non_blocking) for key, value in obj.items()}
    return obj


def split_batch(batch: Any, device: Any, non_blocking: bool = False) -> tuple[Any, Any]:
    """A collated ``(inputs, targets)`` batch on ``device``."""
    inputs, targets = batch[0], batch[1]
    return to_device(inputs, device, non_blocking), targets.to(device, non_blocking=non_blocking)


def prepared_splits(dataset: Any, encoder: Any, subset: int = 1, test_subset: int = 1) -> tuple[Any, Any]:
    """``dataset``'s train and test sets with ``encoder``'s sample transform, every ``subset``-th sample."""
    train, test = dataset.splits(encoder.sample_transform(dataset.info))
    return keep_every(train, subset), keep_every(test, test_subset)
