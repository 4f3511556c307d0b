"""``shd``: the Spiking Heidelberg Digits (Cramer et al. 2022), spoken digits as cochlea spikes.

tonic's layout: ``<root>/SHD/shd_train.h5`` and ``shd_test.h5`` beside the archives tonic
downloads (``shd_train.h5.zip``, ``shd_test.h5.zip``). Each HDF5 file holds, per recording,
``spikes/times`` (seconds, 16-bit floats) and ``spikes/units`` (channel 0..699) as
variable-length arrays, ``labels`` (0..19), and ``extra/keys`` / ``extra/speaker``.

The events are tonic's ``SHD`` events (``t = times * 1e6`` truncated to microseconds,
``x`` = channel) with ``y = p = 0`` on a ``700 x 1 x 1`` sensor, so the ``frames`` encoder gives
``[T, B, 1, 1, 700]``. tonic's class opens the file for every recording; here it is opened
once per process (the same values, tests compare them with tonic's).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from snnframe.contracts import DatasetInfo
from snnframe.errors import DataError, one_line

# extra/keys of the files: labels 0-9 are the English digits, 10-19 the German ones
SHD_CLASSES = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "null",
    "eins",
    "zwei",
    "drei",
    "vier",
    "fuenf",
    "sechs",
    "sieben",
    "acht",
    "neun",
)
FILES = {"train": "shd_train.h5", "test": "shd_test.h5"}
LAYOUT = ("spikes/times", "spikes/units", "labels")


class HDF5Recordings:
    """Map-style ``(events, label)`` read from one SHD file (opened lazily, once per process)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file, self._pid = None, None
        self.length = self._check()

    def _open(self):
        import h5py

        if self._file is None or self._pid != os.getpid():  # HDF5 handles do not survive a fork
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._file

    def _check(self) -> int:
        try:
            f = self._open()
            missing = [name for name in LAYOUT if name not in f]
            lengths = {len(f[name]) for name in LAYOUT if name in f}
        except OSError as exc:
            raise DataError(
                f"cannot read {self.path} ({one_line(exc)}): it is not a complete HDF5 file. "
                f"Replace it, or delete it and download it again."
            ) from None
        if missing or len(lengths) != 1:
            found = "missing " + ", ".join(missing) if missing else f"lengths {sorted(lengths)}"
            raise DataError(
                f"{self.path} is not an SHD file: it needs {', '.join(LAYOUT)} of equal length "
                f"({found}). Replace it with the file from https://zenkelab.org/datasets/."
            )
        return lengths.pop()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        from snnframe.events import make_events

        f = self._open()
        units = np.asarray(f["spikes/units"][index])
        times = np.asarray(f["spikes/times"][index]).astype(np.float64) * 1e6  # as tonic: float16 seconds
        return make_events(units, 0, times.astype(np.int64), 0), int(f["labels"][index])

    def __getstate__(self):
        return {**self.__dict__, "_file": None, "_pid": None}


class SHD:
    """Spiking Heidelberg Digits: 700 channels, 20 classes (digits 0-9 spoken in English and German).

    ``augment`` (off by default) jitters spike times by ``time_jitter_us`` and drops a
    ``drop_events`` fraction of the spikes of training recordings. The encoder's events are
    cached in ``cache_dir`` (default ``<root>/cache/shd``). Files as for ``nmnist``:
    ``download`` lets tonic fetch missing ones; ``require_archives = false`` reads the
    ``.h5`` files without tonic's ``.zip`` archives beside them.
    """

    info = DatasetInfo(modality="events", shape=(700, 1, 1), num_classes=20, classes=SHD_CLASSES)

    def __init__(
        self,
        *,
        root: str,
        augment: bool = False,
        time_jitter_us: float = 0.0,
        drop_events: float = 0.0,
        cache: bool = True,
        cache_dir: str | None = None,
        download: bool = True,
        require_archives: bool = True,
    ):
        from snnframe.builtins.datasets._augment import augmentation

        self.root = Path(root).expanduser()
        self.location = self.root / "SHD"
        self.augment = augmentation(augment, self.info.shape, time_jitter_us=time_jitter_us, drop_events=drop_events)
        self.cache, self.cache_dir = cache, cache_dir
        self.download = download
        self.require_archives = require_archives

    def splits(self, transform):
        from snnframe.builtins.datasets._events import Source, dataset_splits

        paths = {split: self._ensure(split) for split in FILES}
        sources = [Source(HDF5Recordings(paths[split]), str(paths[split])) for split in FILES]
        key = {"dataset": "shd", "files": {split: _identity(path) for split, path in paths.items()}}
        return dataset_splits(self, sources, transform, key, "SHD")

    def _ensure(self, split: str) -> Path:
        """The split's ``.h5`` file, downloaded by tonic when missing and allowed."""
        import tonic

        from snnframe.builtins.datasets._download import download_with_tonic

        path, archive = self.location / FILES[split], self.location / f"{FILES[split]}.zip"
        present = path.is_file() and (archive.is_file() or not self.require_archives)
        if present:
            return path
        if not self.download:
            raise DataError(self._missing_message(split))
        try:
            download_with_tonic(
                lambda save_to: tonic.datasets.SHD(save_to=save_to, train=split == "train"), self.root, "SHD"
            )
        except Exception as exc:  # offline, server down, bad checksum
            raise DataError(self._missing_message(split, f" Downloading failed ({one_line(exc)}).")) from None
        return path

    def _missing_message(self, split: str, reason: str = "") -> str:
        loc = self.location
        found = ", ".join(
            f"{name} {'present' if (loc / name).is_file() else 'missing'}"
            for f in FILES.values()
            for name in (f, f"{f}.zip")
        )
        return (
            f"SHD {split} set not found in {loc}{os.sep} ({found}).{reason} tonic looks for shd_train.h5 and "
            f"shd_test.h5 there, each beside the .zip archive it was extracted from "
            f"(https://zenkelab.org/datasets/): put them there, or run once with network access and "
            f"data.download = true to let tonic download them. If you have the .h5 files "
            f"without the archives, set data.require_archives = false."
        )


def _identity(path: Path) -> dict:
    """What tells a replaced file from the one a cache was built from."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
