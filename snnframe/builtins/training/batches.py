"""Moving collated batches to the device and running them through encoder and model."""

from typing import Any

import torch


def to_device(obj: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """``obj`` with every tensor inside (tuples, lists, dicts) moved to ``device``; other objects
    with a ``to(device, non_blocking=...)`` method (e.g. ``snnframe.events.EventBatch``) move themselves."""
    if isinstance(obj, torch.Tensor) or callable(getattr(obj, "to", None)):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(item, device, non_blocking) for item in obj)
    if isinstance(obj, dict):
        return {key: to_device(value, device, non_blocking) for key, value in obj.items()}
    return obj


def split_batch(batch: Any, device: torch.device, non_blocking: bool = False) -> tuple[Any, torch.Tensor]:
    """A collated ``(inputs, targets)`` batch on ``device``."""
    inputs, targets = batch[0], batch[1]
    return to_device(inputs, device, non_blocking), targets.to(device, non_blocking=non_blocking)
