"""``nmnist``: N-MNIST (Orchard et al. 2015) through tonic, cached as events and augmented.

tonic looks for ``<root>/NMNIST/train.zip`` and ``test.zip`` beside the
extracted ``Train/<digit>/*.bin`` and ``Test/<digit>/*.bin`` folders and
downloads when its check fails.  ``require_archives = false`` reads an
extracted tree alone (e.g. after deleting the 1 GB of archives, or a few files
written by the tests) through the same tonic class and reader.
"""

from __future__ import annotations

import os
from pathlib import Path

from snnframe.builtins.datasets.digits import DIGIT_CLASSES
from snnframe.contracts import DatasetInfo
from snnframe.errors import DataError, one_line

FOLDERS = {"train": "Train", "test": "Test"}
ARCHIVES = {"train": "train.zip", "test": "test.zip"}
TONIC_MIN_FILES = 10000  # tonic.datasets.NMNIST._check_exists


def _bin_files(folder: Path) -> int:
    return sum(1 for _ in folder.glob("**/*.bin")) if folder.is_dir() else 0


EVENT_BYTES = 5  # N-MNIST's 40-bit events


def check_bin_sizes(folder: Path) -> None:
    """A ``DataError`` naming the first ``.bin`` file cut short (not a whole number of 5-byte events).

    Only sizes are read (one ``stat`` per file), so a truncated download is caught before training
    instead of as a reader error in the middle of an epoch.
    """
    if not folder.is_dir():
        return
    bad = [(p, size) for p in sorted(folder.glob("**/*.bin")) if (size := p.stat().st_size) % EVENT_BYTES]
    if bad:
        (path, size), more = bad[0], len(bad) - 1
        others = f" ({more} more such file{'s' if more > 1 else ''} in {folder})" if more else ""
        raise DataError(
            f"{path} is truncated: {size} bytes is not a whole number of {EVENT_BYTES}-byte events{others}; "
            "extract it again from its archive or download the data set again"
        )


class NMNIST:
    """N-MNIST recordings (34x34 sensor, 2 polarities, three saccades), 10 classes.

    ``first_saccade_only`` keeps events before 100 ms (tonic's option). With ``augment``,
    training recordings are rotated by up to ``rotation_deg`` (10, the seed's) and changed by
    the other augmentation keys (off by default), on event coordinates after the cache. The
    encoder's denoised events are cached in ``cache_dir`` (default ``<root>/cache/nmnist``);
    ``cache = false`` reads and denoises every file every epoch.
    """

    info = DatasetInfo(modality="events", shape=(34, 34, 2), num_classes=10, classes=DIGIT_CLASSES)

    def __init__(
        self,
        *,
        root: str,
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
        download: bool = True,
        require_archives: bool = True,
    ):
        from snnframe.builtins.datasets._augment import augmentation

        self.root = Path(root).expanduser()
        self.location = self.root / "NMNIST"
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
        self.download = download
        self.require_archives = require_archives

    def splits(self, transform):
        from snnframe.builtins.datasets._events import Source, dataset_splits

        train, test = (self._split(split) for split in ("train", "test"))
        key = {
            "dataset": "nmnist",
            "root": str(self.root.resolve()),
            "first_saccade_only": self.first_saccade_only,
            "files": [len(train), len(test)],
        }
        sources = [Source(data, data.data) for data in (train, test)]
        return dataset_splits(self, sources, transform, key, "N-MNIST")

    def _split(self, split: str):
        import tonic

        from snnframe.builtins.datasets._download import download_with_tonic
        from snnframe.builtins.datasets._tonic_readers import ExtractedNMNIST

        train = split == "train"
        files = _bin_files(self.location / FOLDERS[split])
        if not self.require_archives:
            if files == 0:
                raise DataError(self._missing_message(split))
            check_bin_sizes(self.location / FOLDERS[split])
            return ExtractedNMNIST(save_to=str(self.root), train=train, first_saccade_only=self.first_saccade_only)
        tonic_finds_it = (self.location / ARCHIVES[split]).is_file() and files >= TONIC_MIN_FILES
        if not tonic_finds_it:
            if not self.download:
                raise DataError(self._missing_message(split))
            try:
                download_with_tonic(
                    lambda save_to: tonic.datasets.NMNIST(save_to=save_to, train=train), self.root, "NMNIST"
                )
            except Exception as exc:
                raise DataError(self._missing_message(split, f" Downloading failed ({one_line(exc)}).")) from None
        check_bin_sizes(self.location / FOLDERS[split])
        return tonic.datasets.NMNIST(save_to=str(self.root), train=train, first_saccade_only=self.first_saccade_only)

    def _missing_message(self, split: str, reason: str = "") -> str:
        loc = self.location
        found = ", ".join(
            f"{ARCHIVES[s]} {'present' if (loc / ARCHIVES[s]).is_file() else 'missing'}, "
            f"{_bin_files(loc / FOLDERS[s])} .bin files in {FOLDERS[s]}{os.sep}"
            for s in ("train", "test")
        )
        return (
            f"N-MNIST {split} set not found in {loc}{os.sep} ({found}).{reason} tonic looks for "
            f"train.zip and test.zip (from https://www.garrickorchard.com/datasets/n-mnist) there together "
            f"with their extracted folders {loc / 'Train'}{os.sep}<digit>{os.sep}*.bin and "
            f"{loc / 'Test'}{os.sep}<digit>{os.sep}*.bin, at least {TONIC_MIN_FILES} .bin files each: put them "
            f"there, or run once with network access and data.download = true to let tonic download them "
            f"(about 1 GB). If you only have the extracted folders, set data.require_archives = false."
        )
