"""The ``digits`` data set: UCI optical digits (8x8, embedded) rendered MNIST-like at 28x28.

The 1,797 images ship in ``digits.npz`` (see ``digits_ATTRIBUTION.txt``).
Split: within each class, in file order, every fifth image (positions 4, 9,
14, ...) is a test image -- 1,442 train, 355 test, the same for every run.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

from snnframe.contracts import DatasetInfo

DIGIT_CLASSES = tuple(f"{i} - {w}" for i, w in enumerate("zero one two three four five six seven eight nine".split()))


@lru_cache(maxsize=1)
def load_digits8() -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [1797, 8, 8] in 0..16, labels uint8 [1797])`` from the embedded file."""
    with resources.files(__package__).joinpath("digits.npz").open("rb") as f, np.load(f) as data:
        return data["images"], data["labels"]


def _bilinear_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``R`` with ``R @ v`` = bilinear resampling of ``v`` onto ``n_out`` pixels covering the
    same extent (pixel centres), with zero beyond ``v``'s edge so strokes fade out
    instead of ending in a hard step."""
    src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5 + 1  # in v padded by one zero each side
    lo = np.floor(src).astype(int)
    w = src - lo
    matrix = np.zeros((n_out, n_in + 2))
    np.add.at(matrix, (np.arange(n_out), lo), 1 - w)
    np.add.at(matrix, (np.arange(n_out), lo + 1), w)
    return matrix[:, 1:-1]


def render_28(images8: np.ndarray) -> np.ndarray:
    """MNIST-like rendering: bilinear upscale 8x8 -> 20x20, centred in 28x28, values in [0, 1]."""
    r = _bilinear_matrix(20, 8)
    big = np.einsum("ij,njk,lk->nil", r, images8.astype(np.float64) / 16.0, r)
    out = np.zeros((len(images8), 28, 28), dtype=np.float32)
    out[:, 4:24, 4:24] = np.clip(big, 0.0, 1.0)
    return out


def split_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified 80/20 split: every fifth image of each class is a test image."""
    is_test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        is_test[members[4::5]] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


class ImageSplit:
    """Map-style images ``[N, C, H, W]`` (a tensor) with labels; per-sample transforms."""

    def __init__(self, images, labels, transform=None, augment=None):
        self.images = images
        self.labels = labels
        self.transform = transform
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        x = self.images[index]
        if self.transform is not None:
            x = self.transform(x)
        if self.augment is not None:
            x = self.augment(x)
        return x, int(self.labels[index])


class Digits:
    """UCI handwritten digits, 1x28x28 in [0, 1], 10 classes; offline, embedded in snnframe.

    ``augment`` adds small random affine distortions (rotation up to 10 degrees,
    shifts up to 2 pixels) to training images.  ``root`` is not used: the data
    ships inside the package.
    """

    info = DatasetInfo(modality="image", shape=(1, 28, 28), num_classes=10, classes=DIGIT_CLASSES)

    def __init__(self, *, root: str, augment: bool = False):
        self.augment = augment

    def splits(self, transform):
        import torch

        images8, labels = load_digits8()
        images = torch.from_numpy(render_28(images8)).unsqueeze(1)
        targets = torch.from_numpy(labels.astype(np.int64))
        train_idx, test_idx = (torch.from_numpy(i) for i in split_indices(labels))
        augment = None
        if self.augment:
            from torchvision.transforms import RandomAffine

            augment = RandomAffine(degrees=10, translate=(2 / 28, 2 / 28))
        train = ImageSplit(images[train_idx], targets[train_idx], transform, augment)
        test = ImageSplit(images[test_idx], targets[test_idx], transform)
        return train, test
