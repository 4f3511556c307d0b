"""Write small data sets in the real on-disk formats, for loading through the real readers.

- :func:`write_mnist`: gzipped IDX files (the four standard names) in
  ``<root>/MNIST/raw/`` (or ``FashionMNIST``), read by torchvision.
- :func:`write_nmnist`: N-MNIST ``.bin`` files (40-bit events) in
  ``<root>/NMNIST/Train/<digit>/`` and ``Test/<digit>/``, read by tonic.  Load
  them with ``data.require_archives = false`` (tonic itself wants the zip
  archives and 10,000 files).
- :func:`write_shd`: ``<root>/SHD/shd_train.h5`` and ``shd_test.h5`` in the published layout
  (variable-length ``spikes/times`` as float16 seconds and ``spikes/units``, ``labels``,
  ``extra/keys``, ``extra/speaker``); each class fires its own band of the 700 channels.
- :func:`write_dvs_gesture`: tonic's DVS Gesture tree,
  ``<root>/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy`` (``[N, 4]`` int64
  columns x, y, p, t in ms) and ``ibmGestureTest``; each class is a blob moving its own way.

The images are the embedded UCI digits, and the N-MNIST events are their
simulated saccade recordings, so the files are small but learnable. E.g.::

    root = tmp_path / "data"
    write_mnist(root, n_train=200, n_test=50)
    write_nmnist(root, per_class_train=4, per_class_test=2)
    # snnframe run recipes/csnn_spike.toml --set data.root=... --set data.require_archives=false ...
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

IDX_UBYTE = 0x08


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic (0, 0, 0x08, ndim), big-endian dims, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, IDX_UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def digit_images(n: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` MNIST-like uint8 28x28 digit images and labels (cycling through the embedded set)."""
    from snnframe.builtins.datasets.digits import load_digits8, render_28

    images8, labels = load_digits8()
    index = (np.arange(n) + offset) % len(labels)
    return np.round(render_28(images8[index]) * 255).astype(np.uint8), labels[index].astype(np.uint8)


def write_mnist(root, n_train: int = 60, n_test: int = 20, folder: str = "MNIST") -> dict[str, np.ndarray]:
    """Write gzipped IDX files to ``<root>/<folder>/raw``; returns the arrays written."""
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    train_x, train_y = digit_images(n_train)
    test_x, test_y = digit_images(n_test, offset=n_train)
    arrays = {
        "train-images-idx3-ubyte": train_x,
        "train-labels-idx1-ubyte": train_y,
        "t10k-images-idx3-ubyte": test_x,
        "t10k-labels-idx1-ubyte": test_y,
    }
    for name, array in arrays.items():
        with gzip.open(raw / f"{name}.gz", "wb") as f:
            f.write(idx_bytes(array))
    return arrays


def nmnist_bytes(x, y, t, p) -> bytes:
    """Events in N-MNIST's 40-bit format: x (8 bits), y (8), polarity (1) + timestamp (23, in us)."""
    x, y, t, p = (np.asarray(a, dtype=np.uint32) for a in (x, y, t, p))
    if len(t) and t.max() >= 1 << 23:
        raise ValueError("timestamps must fit in 23 bits")
    raw = np.empty((len(t), 5), dtype=np.uint8)
    raw[:, 0] = x
    raw[:, 1] = y
    raw[:, 2] = (p << 7) | ((t >> 16) & 0x7F)
    raw[:, 3] = (t >> 8) & 0xFF
    raw[:, 4] = t & 0xFF
    return raw.tobytes()


def write_nmnist(root, per_class_train: int = 2, per_class_test: int = 1, seed: int = 0) -> dict[str, list]:
    """Write ``.bin`` recordings to ``<root>/NMNIST/{Train,Test}/<digit>/<n>.bin``.

    Returns ``{"train": [(path, events), ...], "test": [...]}`` with each file's
    events as ``(x, y, t, p)`` arrays, in the order tonic lists the files.
    """
    from snnframe.builtins.datasets.digits import load_digits8, render_28
    from snnframe.builtins.datasets.saccades import simulate

    images8, labels = load_digits8()
    written: dict[str, list] = {}
    for split, folder, per_class, skip in (
        ("train", "Train", per_class_train, 0),
        ("test", "Test", per_class_test, per_class_train),
    ):
        chosen = [np.flatnonzero(labels == d)[skip : skip + per_class] for d in range(10)]
        index = np.concatenate(chosen)
        x, y, t, p, offsets = simulate(render_28(images8[index]), seed)
        written[split] = []
        for k, i in enumerate(index):
            part = slice(offsets[k], offsets[k + 1])
            events = (x[part], y[part], t[part], p[part])
            path = Path(root) / "NMNIST" / folder / str(labels[i]) / f"{i:05d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(nmnist_bytes(*events))
            written[split].append((path, events))
        written[split].sort(key=lambda item: str(item[0]))  # tonic walks sorted folders and files
    return written


SHD_KEYS = [
    b"zero",
    b"one",
    b"two",
    b"three",
    b"four",
    b"five",
    b"six",
    b"seven",
    b"eight",
    b"nine",
    b"null",
    b"eins",
    b"zwei",
    b"drei",
    b"vier",
    b"fuenf",
    b"sechs",
    b"sieben",
    b"acht",
    b"neun",
]


def shd_recording(rng: np.random.Generator, label: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """``(times float16 seconds, units uint16)``: a band of channels around ``35 * label + 17`` plus noise."""
    units = np.concatenate([rng.normal(35 * label + 17, 6, n - n // 10).round(), rng.integers(0, 700, n // 10)])
    times = rng.uniform(0.0, 0.8, n)
    order = np.argsort(times)
    return times[order].astype(np.float16), np.clip(units[order], 0, 699).astype(np.uint16)


def write_shd(
    root, per_class_train: int = 2, per_class_test: int = 1, seed: int = 0, archives: bool = False, classes: int = 20
) -> dict[str, list]:
    """Write ``<root>/SHD/shd_{train,test}.h5``; returns ``{"train": [(times, units, label), ...], "test": ...}``.

    ``archives`` also writes (empty) ``.zip`` files beside them, which is what tonic checks for.
    """
    import h5py

    rng = np.random.default_rng(seed)
    folder = Path(root) / "SHD"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, per_class in (("train", per_class_train), ("test", per_class_test)):
        labels = np.tile(np.arange(classes), per_class)
        recordings = [(*shd_recording(rng, int(label)), int(label)) for label in labels]
        with h5py.File(folder / f"shd_{split}.h5", "w") as f:
            times = f.create_dataset("spikes/times", (len(labels),), dtype=h5py.vlen_dtype(np.float16))
            units = f.create_dataset("spikes/units", (len(labels),), dtype=h5py.vlen_dtype(np.uint16))
            for i, (t, u, _) in enumerate(recordings):
                times[i], units[i] = t, u
            f.create_dataset("labels", data=labels.astype(np.uint16))
            f.create_dataset("extra/keys", data=np.array(SHD_KEYS))
            f.create_dataset("extra/speaker", data=rng.integers(0, 12, len(labels)).astype(np.uint16))
        if archives:
            (folder / f"shd_{split}.h5.zip").write_bytes(b"")
        written[split] = recordings
    return written


GESTURE_SENSOR = 128


def gesture_recording(rng: np.random.Generator, label: int, n: int = 8000, duration_ms: int = 1500) -> np.ndarray:
    """``[n, 4]`` int64 events (x, y, p, t in ms): a blob starting at a label's place, moving its way."""
    angle = 2 * np.pi * label / 11
    start = 64 + 30 * np.array([np.cos(angle), np.sin(angle)])
    velocity = 40 * np.array([np.cos(angle + 1.0), np.sin(angle + 1.0)]) / duration_ms
    t = np.sort(rng.integers(0, duration_ms, n))
    centre = start + velocity * t[:, None]
    xy = np.clip(np.round(centre + rng.normal(0, 4, (n, 2))), 0, GESTURE_SENSOR - 1)
    return np.column_stack([xy[:, 0], xy[:, 1], rng.integers(0, 2, n), t]).astype(np.int64)


def write_dvs_gesture(
    root,
    train_folders=("user01_fluorescent", "user02_led"),
    test_folders=("user24_natural",),
    seed: int = 0,
    classes: int = 11,
) -> dict[str, list]:
    """Write tonic's DVS Gesture tree; returns ``{"train": [(path, events [N, 4], label), ...], "test": ...}``
    in sorted path order."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, folder, users in (("train", "ibmGestureTrain", train_folders), ("test", "ibmGestureTest", test_folders)):
        written[split] = []
        for user in users:
            directory = Path(root) / "DVSGesture" / folder / user
            directory.mkdir(parents=True, exist_ok=True)
            for label in range(classes):
                events = gesture_recording(rng, label)
                np.save(directory / f"{label}.npy", events)
                written[split].append((directory / f"{label}.npy", events, label))
        written[split].sort(key=lambda item: str(item[0]))
    return written
