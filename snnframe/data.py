"""Data plumbing shared by every dataset plugin."""

from __future__ import annotations

from typing import Any


def keep_every(dataset: Any, k: int) -> Any:
    """Keep samples ``0, k, 2k, ...`` (deterministic, like the seed's ``data.subset``)."""
    if k == 1:
        return dataset
    from torch.utils.data import Subset

    return Subset(dataset, range(0, len(dataset), k))
