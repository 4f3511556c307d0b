"""What the event data sets share: per-sample framing, the disk cache, augmentation.

Pipeline per sample: raw events -> the encoder's transform (e.g. denoise + frames)
-> disk cache -> float tensor -> training augmentation.  The cache directory is
named after a hash of everything that shapes the cached sample (data set,
split, options, the transform's ``repr``), so a changed encoder never reads a
stale cache -- tonic's ``DiskCachedDataset`` alone cannot know (see its docstring).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tonic import DiskCachedDataset
from tonic.cached_dataset import load_from_disk_cache, save_to_disk_cache

# NMNIST's dtype in tonic: what tonic's transforms and our encoders expect.
EVENT_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
CACHE_FORMAT = 1  # bump when the cached content changes for the same key


def to_float_tensor(sample):
    import torch

    return torch.as_tensor(np.asarray(sample)).float()


class Transformed:
    """A data set with a transform applied to each sample (the no-cache path)."""

    def __init__(self, dataset, transform: Callable):
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        sample, label = self.dataset[index]
        return self.transform(sample), int(label)


class DiskCache(DiskCachedDataset):
    """tonic's ``DiskCachedDataset`` (one copy per sample) that writes each file under a
    temporary name and renames it into place, so that processes filling the same
    entry at once (DataLoader workers, distributed ranks) or a run killed mid-write
    never leave or read a half-written HDF5 file."""

    def __getitem__(self, index):
        path = os.path.join(self.cache_path, f"{index}_0.hdf5")
        try:
            data, target = load_from_disk_cache(path)
        except (FileNotFoundError, OSError):
            data, target = self.dataset[index]
            data = np.asarray(data)
            temporary = f"{path}.{os.getpid()}.tmp"
            save_to_disk_cache(data, target, file_path=temporary, compress=self.compress)
            os.replace(temporary, path)
        if self.transform is not None:
            data = self.transform(data)
        return data, int(target)


def default_cache_dir(root: Path, name: str, cache: bool, cache_dir: str | None) -> Path | None:
    """``cache_dir`` if given, else ``<root>/cache/<name>``; ``None`` when caching is off."""
    if not cache:
        return None
    return Path(cache_dir).expanduser() if cache_dir else Path(root) / "cache" / name


def cache_path(cache_dir: Path, key: dict[str, Any]) -> Path:
    """``<cache_dir>/<split>-<hash of key>``, with the key written beside the files."""
    key = {**key, "format": CACHE_FORMAT}
    text = json.dumps(key, sort_keys=True, default=str)
    path = Path(cache_dir) / f"{key['split']}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "key.json").exists():
        (path / "key.json").write_text(json.dumps(key, indent=2, sort_keys=True, default=str) + "\n")
    return path


def framed_splits(
    train, test, transform: Callable | None, *, cache_dir: Path | None, key: dict[str, Any], augment: bool
):
    """Wrap ``train``/``test`` (which already apply ``transform``) with the cache and augmentation."""
    if transform is None:
        if augment:
            from snnframe.errors import RecipeError

            raise RecipeError(
                [
                    "data.augment: rotation needs framed samples, but the encoder passes raw events on; "
                    "use the frames encoder or set data.augment = false"
                ]
            )
        return train, test
    if cache_dir is not None and " at 0x" in repr(transform):
        warnings.warn(
            f"not caching samples on disk: the encoder's transform {transform!r} has no repr that "
            "names its parameters, so a cache could not tell when it changes",
            stacklevel=2,
        )
        cache_dir = None
    out = []
    for split, data in (("train", train), ("test", test)):
        post = to_float_tensor
        if augment and split == "train":
            from torchvision.transforms import Compose, RandomRotation

            post = Compose([to_float_tensor, RandomRotation([-10, 10])])  # the seed's augmentation
        if cache_dir is None:
            out.append(Transformed(data, post))
        else:
            path = cache_path(cache_dir, {**key, "split": split, "transform": repr(transform)})
            out.append(DiskCache(data, cache_path=str(path), transform=post))
    return tuple(out)
