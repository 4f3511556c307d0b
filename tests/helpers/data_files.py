"""Write small data sets in the real on-disk formats, for loading through the real readers.

- :func:`write_mnist`: gzipped IDX files (the four standard names) in
  ``<root>/MNIST/raw/`` (or ``FashionMNIST``), read by torchvision.
- :func:`write_nmnist`: N-MNIST ``.bin`` files (40-bit events) in
  ``<root>/NMNIST/Train/<digit>/`` and ``Test/<digit>/``, read by tonic.  Load
  them with ``data.require_archives = false`` (tonic itself wants the zip
  archives and 10,000 files).

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
