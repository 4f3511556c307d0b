"""``mnist`` and ``fashion_mnist``: torchvision's data sets, read from ``<root>/<Name>/raw``."""

from __future__ import annotations

import os
from pathlib import Path

from snnframe.builtins.datasets.digits import DIGIT_CLASSES
from snnframe.contracts import DatasetInfo
from snnframe.errors import DataError, one_line

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class MNIST:
    """MNIST handwritten digits, 1x28x28 in [0, 1], 10 classes (torchvision's reader).

    Files are looked up in ``<root>/MNIST/raw/`` (plain or ``.gz``); when they are
    missing and ``download`` is true, torchvision downloads them.
    """

    folder = "MNIST"  # torchvision's class name, which is also its folder name
    title = "MNIST"
    source = "https://ossci-datasets.s3.amazonaws.com/mnist/"
    info = DatasetInfo(modality="image", shape=(1, 28, 28), num_classes=10, classes=DIGIT_CLASSES)

    def __init__(self, *, root: str, download: bool = True):
        self.root = Path(root).expanduser()
        self.download = download

    @property
    def raw_folder(self) -> Path:
        return self.root / self.folder / "raw"

    def splits(self, transform):
        from torchvision import datasets
        from torchvision.transforms import Compose, ToTensor

        self._ensure_files()
        to_sample = Compose([ToTensor(), transform]) if transform is not None else ToTensor()
        cls = getattr(datasets, self.folder)
        return cls(str(self.root), train=True, transform=to_sample), cls(
            str(self.root), train=False, transform=to_sample
        )

    def _missing(self) -> list[str]:
        return [name for name in RAW_FILES if not (self.raw_folder / name).is_file()]

    def _ensure_files(self) -> None:
        from torchvision.datasets.utils import extract_archive

        for name in self._missing():  # torchvision reads only the unpacked files
            packed = self.raw_folder / f"{name}.gz"
            if packed.is_file():
                extract_archive(str(packed), str(self.raw_folder))
        if not self._missing():
            return
        reason = ""
        if self.download:
            from torchvision import datasets

            try:
                getattr(datasets, self.folder)(str(self.root), train=True, download=True)
            except Exception as exc:  # offline, mirror down, bad checksum: one line is enough
                reason = f" Downloading from {self.source} failed ({one_line(exc)})."
            if not self._missing():
                return
        raise DataError(self._missing_message(reason))

    def _missing_message(self, reason: str) -> str:
        names = ", ".join(f"{n}.gz" for n in RAW_FILES)
        return (
            f"{self.title} not found in {self.raw_folder}{os.sep}.{reason} Put the four files {names} "
            f"(gzipped or unpacked) in that folder, or run once with network access and "
            f"data.download = true; to use files elsewhere, set data.root to the folder that contains "
            f"{self.folder}{os.sep}raw."
        )


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST, 1x28x28 in [0, 1], 10 classes; files in ``<root>/FashionMNIST/raw/``."""

    folder = "FashionMNIST"
    title = "Fashion-MNIST"
    source = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    info = DatasetInfo(
        modality="image",
        shape=(1, 28, 28),
        num_classes=10,
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    )
