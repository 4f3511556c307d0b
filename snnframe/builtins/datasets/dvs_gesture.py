"""``dvs_gesture``: IBM's DVS128 Gesture (Amir et al. 2017), 11 hand and arm gestures, 128x128 events.

tonic's layout (its preprocessed version, each recording already cut into one file per
gesture, times in milliseconds):

    <root>/DVSGesture/ibmGestureTrain.tar.gz, ibmGestureTest.tar.gz      tonic's archives
    <root>/DVSGesture/ibmGestureTrain/user01_fluorescent/<label>.npy     one recording per file
    <root>/DVSGesture/ibmGestureTest/user24_led/<label>.npy              ...

Each ``.npy`` is an ``[N, 4]`` array of columns x, y, p, t (ms); tonic's ``DVSGesture``
reads it (times to microseconds). Files are taken in sorted path order (tonic lists them
in the order the file system returns). ``downsample = k`` divides coordinates by ``k``
(integer division, tonic's ``Downsample(spatial_factor=1/k)``) before the cache, e.g. 4 for
32x32 input as in several papers.
"""

from __future__ import annotations

import os
from pathlib import Path

from snnframe.contracts import DatasetInfo
from snnframe.errors import DataError, one_line

SENSOR = 128
FOLDERS = {"train": "ibmGestureTrain", "test": "ibmGestureTest"}
ARCHIVES = {split: f"{folder}.tar.gz" for split, folder in FOLDERS.items()}
TONIC_MIN_FILES = 100  # tonic.datasets.DVSGesture._check_exists
GESTURE_CLASSES = (
    "hand clapping",
    "right hand wave",
    "left hand wave",
    "right arm clockwise",
    "right arm counter-clockwise",
    "left arm clockwise",
    "left arm counter-clockwise",
    "arm roll",
    "air drums",
    "air guitar",
    "other gestures",
)


def _npy_files(folder: Path) -> int:
    return sum(1 for _ in folder.glob("**/*.npy")) if folder.is_dir() else 0


class GestureFiles:
    """Map-style ``(events, label)``: tonic's reader on the files in sorted order, downsampled."""

    def __init__(self, dataset, factor: int):
        order = sorted(range(len(dataset.data)), key=lambda i: dataset.data[i])
        self.dataset, self.order, self.factor = dataset, order, factor
        self.paths = [dataset.data[i] for i in order]

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int):
        from snnframe.events import make_events

        events, label = self.dataset[self.order[index]]
        x, y = events["x"].astype("int64"), events["y"].astype("int64")
        if self.factor > 1:
            x, y = x // self.factor, y // self.factor
        return make_events(x, y, events["t"], events["p"]), int(label)


class DVSGesture:
    """DVS128 Gesture: 128x128 sensor (or ``128 / downsample``), 2 polarities, 11 classes.

    ``augment`` (off by default; papers mostly train without) applies the augmentation keys
    to training recordings on event coordinates; mirroring (``flip_lr``) swaps left- and
    right-hand gestures, so it stays 0 unless you also remap labels. Events are cached in
    ``cache_dir`` (default ``<root>/cache/dvs_gesture``); files as for ``nmnist``
    (``download``, ``require_archives``).
    """

    def __init__(
        self,
        *,
        root: str,
        downsample: int = 1,
        augment: bool = False,
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

        if downsample < 1 or SENSOR % downsample:
            raise ValueError(f"downsample must divide {SENSOR} (1, 2, 4, 8, ...), got {downsample}")
        size = SENSOR // downsample
        self.info = DatasetInfo(modality="events", shape=(size, size, 2), num_classes=11, classes=GESTURE_CLASSES)
        self.root = Path(root).expanduser()
        self.location = self.root / "DVSGesture"
        self.downsample = downsample
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

        files = [GestureFiles(self._split(split), self.downsample) for split in FOLDERS]
        key = {
            "dataset": "dvs_gesture",
            "root": str(self.root.resolve()),
            "downsample": self.downsample,
            "files": [len(f) for f in files],
        }
        return dataset_splits(self, [Source(f, f.paths) for f in files], transform, key, "DVS Gesture")

    def _split(self, split: str):
        import tonic

        from snnframe.builtins.datasets._download import download_with_tonic
        from snnframe.builtins.datasets._tonic_readers import ExtractedDVSGesture

        train = split == "train"
        files = _npy_files(self.location / FOLDERS[split])
        if not self.require_archives:
            if files == 0:
                raise DataError(self._missing_message(split))
            return ExtractedDVSGesture(save_to=str(self.root), train=train)
        if not ((self.location / ARCHIVES[split]).is_file() and files >= TONIC_MIN_FILES):
            if not self.download:
                raise DataError(self._missing_message(split))
            try:
                download_with_tonic(
                    lambda save_to: tonic.datasets.DVSGesture(save_to=save_to, train=train), self.root, "DVSGesture"
                )
            except Exception as exc:
                raise DataError(self._missing_message(split, f" Downloading failed ({one_line(exc)}).")) from None
        return tonic.datasets.DVSGesture(save_to=str(self.root), train=train)

    def _missing_message(self, split: str, reason: str = "") -> str:
        loc = self.location
        found = ", ".join(
            f"{ARCHIVES[s]} {'present' if (loc / ARCHIVES[s]).is_file() else 'missing'}, "
            f"{_npy_files(loc / FOLDERS[s])} .npy files in {FOLDERS[s]}{os.sep}"
            for s in FOLDERS
        )
        return (
            f"DVS Gesture {split} set not found in {loc}{os.sep} ({found}).{reason} tonic looks for "
            f"ibmGestureTrain.tar.gz and ibmGestureTest.tar.gz there together with their extracted folders "
            f"{loc / 'ibmGestureTrain'}{os.sep}user<NN>_<lighting>{os.sep}<label>.npy and "
            f"{loc / 'ibmGestureTest'}{os.sep}..., at least {TONIC_MIN_FILES} .npy files each: put them there, "
            f"or run once with network access and data.download = true to let tonic download them. If you "
            f"only have the extracted folders, set data.require_archives = false."
        )
