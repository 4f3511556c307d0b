"""``mnist`` and ``fashion_mnist``: torchvision's data sets, read from ``<root>/<Name>/raw``."""

from __future__ import annotations

import contextlib
import gzip
import os
import struct
import zlib
from pathlib import Path

from snnframe.builtins.datasets.digits import DIGIT_CLASSES
from snnframe.contracts import DatasetInfo
from snnframe.errors import DataError, one_line
from snnframe.io import WriteError, atomic_writer

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
        """The four unpacked IDX files in ``raw_folder``, checked; unpacked from ``.gz`` where needed.

        A ``.gz`` is unpacked through a temporary file that is renamed only once it holds a whole,
        valid IDX file, so a corrupt archive never leaves a 0-byte or partial file behind (an
        unpacked file that is damaged is replaced from its ``.gz``). A failed download removes what
        it wrote. Anything that cannot be read is a ``DataError`` naming the file.
        """
        for name in RAW_FILES:  # torchvision reads only the unpacked files
            target, packed = self.raw_folder / name, self.raw_folder / f"{name}.gz"
            if packed.is_file() and (
                not target.is_file()
                or packed.stat().st_mtime > target.stat().st_mtime  # a replaced archive
                or idx_problem(target, name) is not None
            ):
                unpack(packed, target)
        reason = self._download() if self._missing() and self.download else ""
        if self._missing():
            raise DataError(self._missing_message(reason))
        check_raw_files(self.raw_folder)

    def _download(self) -> str:
        """Let torchvision download the files; why it failed (``""`` if it did not)."""
        from torchvision import datasets

        before = set(os.listdir(self.raw_folder)) if self.raw_folder.is_dir() else set()
        try:
            getattr(datasets, self.folder)(str(self.root), train=True, download=True)
        except Exception as exc:  # offline, mirror down, bad checksum: one line is enough
            # what a failed download wrote is partial: remove it, the next run starts clean
            for name in set(os.listdir(self.raw_folder)) - before if self.raw_folder.is_dir() else ():
                with contextlib.suppress(OSError):
                    (self.raw_folder / name).unlink()
            return f" Downloading from {self.source} failed ({one_line(exc)})."
        return ""

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


# (dimensions, the sizes after the count) of each file: images N x 28 x 28, labels N
IDX_SHAPES = {name: (3, (28, 28)) if "images" in name else (1, ()) for name in RAW_FILES}


def idx_problem(path: Path, name: str) -> str | None:
    """Why the unpacked IDX file ``path`` (one of :data:`RAW_FILES`) cannot be read, or ``None``."""
    ndim, rest = IDX_SHAPES[name]
    size = path.stat().st_size
    header_size = 4 + 4 * ndim
    with open(path, "rb") as f:
        header = f.read(header_size)
    if len(header) < header_size:
        return f"is {size} bytes long, too short for an IDX file (a cut-short unpacking or download?)"
    if header[:4] != bytes([0, 0, 0x08, ndim]):
        return f"is not an IDX file of unsigned bytes with {ndim} dimension(s) (its header is {header[:4].hex()})"
    dims = struct.unpack(f">{ndim}I", header[4:])
    if dims[1:] != rest:
        return f"holds items of shape {dims[1:]}, not {rest}"
    expected = header_size + int(dims[0]) * max(1, 28 * 28 if rest else 1)
    if size != expected:
        return f"is {size} bytes long, but its header announces {dims[0]} items ({expected} bytes): it is truncated"
    return None


def unpack(packed: Path, target: Path) -> None:
    """Unpack ``packed`` (``.gz``) to ``target`` atomically; a corrupt archive is a ``DataError`` and leaves nothing."""
    try:
        with gzip.open(packed, "rb") as source, atomic_writer(target) as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
            out.flush()
            problem = idx_problem(Path(out.name), target.name)
            if problem is not None:
                raise DataError(f"{packed} unpacks to a file that {problem}; download it again (or delete it)")
    except WriteError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        what = "is not a complete gzip file" if not isinstance(exc, PermissionError) else "cannot be unpacked"
        raise DataError(f"{packed} {what} ({one_line(exc)}); download it again (or delete it)") from None


def check_raw_files(raw: Path) -> None:
    """Each unpacked file readable, and as many labels as images (a ``DataError`` naming the file if not)."""
    counts = {}
    for name in RAW_FILES:
        path = raw / name
        problem = idx_problem(path, name)
        if problem is not None:
            packed = "" if (raw / f"{name}.gz").is_file() else f" (or put {name}.gz beside it)"
            raise DataError(f"{path} {problem}; delete it to have it unpacked or downloaded again{packed}")
        with open(path, "rb") as f:
            counts[name] = struct.unpack(">I", f.read(8)[4:])[0]
    for split in ("train", "t10k"):
        images, labels = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
        if counts[images] != counts[labels]:
            raise DataError(
                f"{raw / labels} holds {counts[labels]} labels but {raw / images} holds {counts[images]} images: "
                "the two files do not belong together; replace them with a matching pair"
            )
        top = max((raw / labels).read_bytes()[8:], default=0)
        if top > 9:
            raise DataError(f"{raw / labels} holds label {top}; labels are 0-9: the file is damaged or not MNIST's")
