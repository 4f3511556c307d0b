"""What the event data sets share: checking recordings, the event disk cache, augmentation order.

Per split: raw recordings (tonic's readers) -> checked against the sensor -> the encoder's
event transform (e.g. denoise) -> disk cache of compact events -> training augmentation on
event coordinates -> the encoder's collation. The dense frames are made per batch by the
encoder, never stored.

The cache of a split is one directory named after a hash of everything that shapes its
events (data set, split, options, the transform's ``repr``, :data:`CACHE_FORMAT`), so a
changed encoder or an old cache (format 1 stored framed samples as HDF5) is never read:

    key.json       what the hash covers, readable
    events.bin     every recording's events back to back, packed records (see RECORD)
    index.npz      offsets, first time stamps and labels per recording; written last
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snnframe.errors import DataError, one_line
from snnframe.events import EVENT_DTYPE, EventTransform, make_events
from snnframe.io import atomic_write, atomic_writer

CACHE_FORMAT = 2  # 1: framed samples in tonic's DiskCachedDataset (HDF5); 2: compact events
MAX_SPAN_US = 2**32 - 1  # times are stored relative to a recording's first event, as uint32


def record_dtype(sensor_size: tuple[int, int, int]) -> np.dtype:
    """The packed record of one cached event: the smallest integers that hold the sensor."""
    width, height, _ = sensor_size
    coordinate = np.uint8 if max(width, height) <= 256 else np.uint16
    return np.dtype([("x", coordinate), ("y", coordinate), ("p", np.uint8), ("t", np.uint32)])


class Source:
    """A split's raw recordings: ``dataset[i]`` is ``(events, label)``; ``where`` names the file
    of each recording (a list) or the one file holding them all (for error messages)."""

    def __init__(self, dataset, where: Sequence[str] | str):
        self.dataset = dataset
        self.where = where

    def __len__(self) -> int:
        return len(self.dataset)

    def describe(self, index: int) -> str:
        if isinstance(self.where, (str, Path)):
            return f"recording {index} of {self.where}"
        return str(self.where[index])

    def read(self, index: int, sensor_size) -> tuple[np.ndarray, int]:
        """Recording ``index`` as :data:`EVENT_DTYPE`, in time order, checked against the sensor."""
        try:
            events, label = self.dataset[index]
            events = _as_events(np.asarray(events))
        except DataError:
            raise
        except Exception as exc:  # a truncated or foreign file: name it, no traceback
            raise DataError(
                f"cannot read {self.describe(index)} ({type(exc).__name__}: {one_line(exc)}); "
                "the file may be incomplete or corrupt: replace it, or delete it and download again."
            ) from None
        check_events(events, sensor_size, self.describe(index))
        if len(events) > 1 and np.any(np.diff(events["t"]) < 0):
            events = events[np.argsort(events["t"], kind="stable")]  # frames are cut in time order
        return events, int(label)


def _as_events(events: np.ndarray) -> np.ndarray:
    if events.dtype == EVENT_DTYPE:
        return events
    names = events.dtype.names or ()
    missing = [name for name in "xtp" if name not in names]
    if missing:
        raise ValueError(f"the events have no field(s) {', '.join(missing)}")
    return make_events(events["x"], events["y"] if "y" in names else 0, events["t"], events["p"])


def check_events(events: np.ndarray, sensor_size, where: str) -> None:
    """A :class:`DataError` naming ``where`` when an event lies outside the sensor or before time 0."""
    width, height, polarities = sensor_size
    problems = []
    for name, size in (("x", width), ("y", height), ("p", max(polarities, 2))):
        values = events[name]
        if len(values) and (values.min() < 0 or values.max() >= size):
            problems.append(f"{name} from {values.min()} to {values.max()} (the sensor has {size})")
    if len(events) and events["t"].min() < 0:
        problems.append(f"times from {events['t'].min()} us")
    if problems:
        raise DataError(
            f"{where} does not hold events of a {width}x{height}x{polarities} sensor: "
            f"{'; '.join(problems)}. The file is corrupt or belongs to another data set: replace it."
        )


class CachedRecordings:
    """Map-style ``(events, label)`` read from a cache directory (memory-mapped, opened lazily,
    so DataLoader workers share the page cache and pickling it copies no events)."""

    def __init__(self, path: Path, offsets: np.ndarray, starts: np.ndarray, labels: np.ndarray, record: np.dtype):
        self.path = Path(path)
        self.offsets, self.starts, self.labels, self.record = offsets, starts, labels, record
        self._events = None

    @classmethod
    def open(cls, path: Path) -> CachedRecordings | None:
        """The cache in ``path``, or ``None`` if it is missing, incomplete or of another format."""
        try:
            with np.load(path / "index.npz", allow_pickle=False) as index:
                meta = json.loads(str(index["meta"]))
                offsets, starts, labels = index["offsets"], index["starts"], index["labels"]
            if meta.get("format") != CACHE_FORMAT:
                return None
            record = np.dtype([tuple(field) for field in meta["record"]])
            if (path / "events.bin").stat().st_size != int(offsets[-1]) * record.itemsize:
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return cls(path, offsets, starts, labels, record)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def events(self) -> np.ndarray:
        if self._events is None:
            count = int(self.offsets[-1])
            self._events = (
                np.memmap(self.path / "events.bin", dtype=self.record, mode="r", shape=(count,))
                if count
                else np.zeros(0, self.record)
            )
        return self._events

    def __getitem__(self, index: int):
        packed = self.events[self.offsets[index] : self.offsets[index + 1]]
        events = np.empty(len(packed), EVENT_DTYPE)
        events["x"], events["y"], events["p"] = packed["x"], packed["y"], packed["p"]
        events["t"] = packed["t"].astype(np.int64) + self.starts[index]
        return events, int(self.labels[index])

    def __getstate__(self):
        return {**self.__dict__, "_events": None}


def build_cache(
    path: Path, key: dict[str, Any], source: Source, transform: Callable | None, sensor_size, title: str
) -> None:
    """Read every recording of ``source``, apply ``transform`` and store the result in ``path``.

    Each file is written under a temporary name and renamed into place (``snnframe.io``), and
    ``index.npz`` comes last, so an interrupted build leaves no cache that :meth:`CachedRecordings.open`
    accepts. A build that fails (a corrupt file) removes the directories it created.
    """
    from tqdm import tqdm

    created = [folder for folder in (path, *path.parents) if not folder.exists()]  # removed again on failure
    path.mkdir(parents=True, exist_ok=True)
    record = record_dtype(sensor_size)
    offsets = np.zeros(len(source) + 1, np.int64)
    starts = np.zeros(len(source), np.int64)
    labels = np.zeros(len(source), np.int64)
    try:
        with atomic_writer(path / "events.bin") as out:
            for i in tqdm(range(len(source)), desc=f"caching {title}", unit="recording", leave=False, disable=None):
                events, labels[i] = source.read(i, sensor_size)
                if transform is not None:
                    events = transform(events)
                start = int(events["t"].min()) if len(events) else 0
                if len(events) and events["t"].max() - start > MAX_SPAN_US:
                    raise DataError(
                        f"{source.describe(i)} spans more than {MAX_SPAN_US} us, longer than the event "
                        "cache holds; set data.cache = false"
                    )
                packed = np.empty(len(events), record)
                packed["x"], packed["y"], packed["p"] = events["x"], events["y"], events["p"]
                packed["t"] = events["t"] - start
                out.write(packed.tobytes())
                starts[i], offsets[i + 1] = start, offsets[i] + len(events)
        meta = {
            "format": CACHE_FORMAT,
            "record": [[name, record[name].str] for name in record.names],
            "sensor_size": list(sensor_size),
        }
        with atomic_writer(path / "index.npz") as out:
            np.savez(out, offsets=offsets, starts=starts, labels=labels, meta=np.array(json.dumps(meta)))
        atomic_write(path / "key.json", json.dumps(key, indent=2, sort_keys=True, default=str) + "\n")
    except BaseException:
        if created:
            shutil.rmtree(path, ignore_errors=True)
            for folder in created[1:]:
                with contextlib.suppress(OSError):  # not empty: another run's cache is there now
                    folder.rmdir()
        raise


def default_cache_dir(root: Path, name: str, cache: bool, cache_dir: str | None) -> Path | None:
    """``cache_dir`` if given, else ``<root>/cache/<name>``; ``None`` when caching is off."""
    if not cache:
        return None
    return Path(cache_dir).expanduser() if cache_dir else Path(root) / "cache" / name


def dataset_splits(
    dataset: Any, sources: Sequence[Source], transform: Callable | None, key: dict[str, Any], title: str
):
    """:func:`event_splits` for an event data set with ``root``, ``info``, ``augment``, ``cache`` and ``cache_dir``
    (the built-ins); its cache folder is named after ``key["dataset"]``."""
    return event_splits(
        sources,
        transform,
        sensor_size=dataset.info.shape,
        cache_dir=default_cache_dir(dataset.root, key["dataset"], dataset.cache, dataset.cache_dir),
        key=key,
        augment=dataset.augment,
        title=title,
    )


def cache_path(cache_dir: Path, key: dict[str, Any]) -> Path:
    """``<cache_dir>/<split>-<hash of key>`` (``key`` includes :data:`CACHE_FORMAT`)."""
    text = json.dumps(key, sort_keys=True, default=str)
    return Path(cache_dir) / f"{key['split']}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"


class UncachedRecordings:
    """Map-style ``(events, label)`` of a split without a cache: each recording read, checked and
    transformed when asked for."""

    def __init__(self, source: Source, sensor_size, transform: Callable | None):
        self.source, self.sensor_size, self.transform = source, sensor_size, transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        events, label = self.source.read(index, self.sensor_size)
        if self.transform is not None:
            events = self.transform(events)
        return events, label


class Augmented:
    """``(augment(events), label)`` of a split, then the encoder's per-sample transform (if any)."""

    def __init__(self, split, augment: Callable | None, transform: Callable | None = None):
        self.split, self.augment, self.transform = split, augment, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int):
        events, label = self.split[index]
        if self.augment is not None:
            events = self.augment(events)
        if self.transform is not None:
            events = self.transform(events)
        return events, label


def event_splits(
    sources: Sequence[Source],
    transform: Callable | None,
    *,
    sensor_size,
    cache_dir: Path | None,
    key: dict[str, Any],
    augment: Callable | None,
    title: str,
):
    """``(train, test)`` for a data set's ``splits(transform)`` from its two raw :class:`Source` s.

    An :class:`~snnframe.events.EventTransform` (the ``frames`` encoder's denoise) runs before
    the cache and the augmentation; any other transform cannot be cached (its output is not
    events) and runs on every sample after the augmentation. ``augment`` applies to training
    recordings only.
    """
    cacheable = transform is None or isinstance(transform, EventTransform)
    if cache_dir is not None and transform is not None and not cacheable:
        warnings.warn(
            f"not caching samples on disk: the encoder's transform {transform!r} does not return events "
            "(an snnframe.events.EventTransform does)",
            stacklevel=3,
        )
    use_cache = cache_dir is not None and transform is not None and cacheable
    out = []
    for split, source in zip(("train", "test"), sources):
        early = transform if cacheable else None
        if use_cache:
            split_key = {**key, "split": split, "transform": repr(transform), "format": CACHE_FORMAT}
            path = cache_path(cache_dir, split_key)
            data = CachedRecordings.open(path)
            if data is None:
                with _cache_errors(path):
                    build_cache(path, split_key, source, early, sensor_size, f"{title} {split}")
                data = CachedRecordings.open(path)
                if data is None:
                    raise DataError(
                        f"the event cache {path} could not be read back after writing it; "
                        "check the disk, or set data.cache = false"
                    )
        else:
            data = UncachedRecordings(source, sensor_size, early)
        later = None if cacheable else transform
        train_augment = augment if split == "train" else None
        out.append(data if train_augment is None and later is None else Augmented(data, train_augment, later))
    return tuple(out)


@contextlib.contextmanager
def _cache_errors(path: Path):
    try:
        yield
    except OSError as exc:  # disk full, no permission: say where, no traceback
        raise DataError(
            f"cannot write the event cache in {path} ({one_line(exc)}); free space there, set "
            "data.cache_dir to another folder, or set data.cache = false"
        ) from None
