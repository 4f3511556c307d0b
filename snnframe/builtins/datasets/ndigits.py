"""The ``ndigits`` data set: the ``digits`` images recorded by a simulated event camera.

Made the way N-MNIST was (see ``saccades.py``): 34x34 sensor, two polarities,
three 105 ms saccades; samples are tonic-style structured arrays with N-MNIST's
dtype (``x, y, t`` in microseconds, ``p``), so the ``frames`` encoder and the
N-MNIST recipe settings apply.  Same train/test split as ``digits``.

The recordings are generated once per ``seed`` (a few seconds) and stored in
``<root>/NDIGITS/ndigits-seed<seed>-<version>.npz``; the encoder's denoised events are
cached like N-MNIST's under ``cache_dir`` (default ``<root>/cache/ndigits``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from snnframe.builtins.datasets.digits import DIGIT_CLASSES, load_digits8, render_28, split_indices
from snnframe.contracts import DatasetInfo
from snnframe.io import atomic_writer

GENERATOR_VERSION = 1  # bump when the simulation changes: it renames the stored file


class Recordings:
    """Map-style ``(events, label)`` for the recordings ``indices`` of a stored set."""

    def __init__(self, store, indices, first_saccade_only: bool, saccade_us: int):
        self.store = store
        self.indices = indices
        self.first_saccade_only = first_saccade_only
        self.saccade_us = saccade_us

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        from snnframe.events import EVENT_DTYPE

        i = self.indices[index]
        part = slice(self.store["offsets"][i], self.store["offsets"][i + 1])
        events = np.empty(part.stop - part.start, dtype=EVENT_DTYPE)
        for field in "xytp":
            events[field] = self.store[field][part]
        if self.first_saccade_only:
            events = events[events["t"] < self.saccade_us]
        return events, int(self.store["labels"][i])


def _store_name(seed: int, camera_key: dict) -> str:
    text = json.dumps({"version": GENERATOR_VERSION, "camera": camera_key}, sort_keys=True)
    return f"ndigits-seed{seed}-{hashlib.sha1(text.encode()).hexdigest()[:8]}.npz"


def load_or_generate(path: Path, seed: int, camera) -> dict[str, np.ndarray]:
    """The recordings stored at ``path``, simulating and storing them on first use."""
    from snnframe.builtins.datasets.saccades import simulate

    if not path.exists():
        images8, labels = load_digits8()
        x, y, t, p, offsets = simulate(render_28(images8), seed, camera)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(path) as f:  # written whole, then renamed: concurrent runs are safe
            np.savez_compressed(f, x=x, y=y, t=t.astype(np.uint32), p=p, offsets=offsets, labels=labels)
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


class NDigits:
    """Simulated event-camera recordings of the UCI digits (N-MNIST style), 10 classes.

    ``seed`` fixes the recordings (the data set's own seed, not the experiment's).
    ``first_saccade_only`` keeps the first 105 ms.  ``augment`` rotates training
    recordings by up to ``rotation_deg`` (10, the seed's N-MNIST augmentation) and applies
    the other augmentation keys, on event coordinates after the cache.
    ``cache = false`` denoises every recording anew each epoch.
    """

    info = DatasetInfo(modality="events", shape=(34, 34, 2), num_classes=10, classes=DIGIT_CLASSES)

    def __init__(
        self,
        *,
        root: str,
        seed: int = 0,
        first_saccade_only: bool = False,
        augment: bool = True,
        rotation_deg: float = 10.0,
        spatial_jitter: float = 0.0,
        time_jitter_us: float = 0.0,
        drop_events: float = 0.0,
        flip_lr: float = 0.0,
        flip_ud: float = 0.0,
        flip_polarity: float = 0.0,
        cache: bool = True,
        cache_dir: str | None = None,
    ):
        from snnframe.builtins.datasets._augment import augmentation

        if seed < 0:
            raise ValueError(f"seed must be 0 or positive, got {seed}")
        self.root = Path(root).expanduser()
        self.seed = seed
        self.first_saccade_only = first_saccade_only
        self.augment = augmentation(
            augment,
            self.info.shape,
            rotation_deg=rotation_deg,
            spatial_jitter=spatial_jitter,
            time_jitter_us=time_jitter_us,
            drop_events=drop_events,
            flip_lr=flip_lr,
            flip_ud=flip_ud,
            flip_polarity=flip_polarity,
        )
        self.cache, self.cache_dir = cache, cache_dir

    def splits(self, transform):
        from snnframe.builtins.datasets._events import Source, dataset_splits
        from snnframe.builtins.datasets.saccades import Camera

        camera = Camera()
        name = _store_name(self.seed, camera.key())
        path = self.root / "NDIGITS" / name
        store = load_or_generate(path, self.seed, camera)
        sources = [
            Source(Recordings(store, idx, self.first_saccade_only, camera.saccade_us), str(path))
            for idx in split_indices(store["labels"])
        ]
        key = {"dataset": "ndigits", "recordings": name, "first_saccade_only": self.first_saccade_only}
        return dataset_splits(self, sources, transform, key, "ndigits")
