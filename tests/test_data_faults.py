"""Damaged data files: a DataError that names the file, before training, and never a 0-byte or partial file
left in the user's data folder."""

import gzip
import os

import numpy as np
import pytest
from helpers.data_files import idx_bytes, write_mnist, write_nmnist

from snnframe.builtins.datasets.mnist import MNIST, RAW_FILES
from snnframe.builtins.datasets.nmnist import NMNIST
from snnframe.errors import DataError


@pytest.fixture
def raw(tmp_path):
    write_mnist(tmp_path, n_train=30, n_test=10)
    return tmp_path / "MNIST" / "raw"


def splits(raw):
    return MNIST(root=str(raw.parents[1]), download=False).splits(None)


def sizes(raw):
    return {p.name: p.stat().st_size for p in raw.iterdir()}


def assert_no_empty_or_temporary_file(raw):
    for name, size in sizes(raw).items():
        assert size > 0 and ".tmp" not in name, (name, size)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda gz: gz.write_bytes(os.urandom(300)), "is not a complete gzip file (Not a gzipped file"),
        (lambda gz: gz.write_bytes(gz.read_bytes()[:-40]), "is not a complete gzip file (Compressed file ended"),
        (
            lambda gz: gz.write_bytes(gzip.compress(b"\0\0\x08\x03" + b"\0" * 30)),
            "unpacks to a file that holds items of shape (0, 0), not (28, 28)",
        ),
    ],
    ids=["garbage", "truncated", "not IDX inside"],
)
def test_a_corrupt_archive_is_named_and_leaves_no_unpacked_file(raw, damage, message):
    packed = raw / "t10k-images-idx3-ubyte.gz"
    damage(packed)
    with pytest.raises(DataError) as caught:
        splits(raw)
    assert str(caught.value).startswith(f"{packed} {message}") and "download it again" in str(caught.value)
    assert "t10k-images-idx3-ubyte" not in sizes(raw)
    assert_no_empty_or_temporary_file(raw)


def test_a_label_file_with_the_wrong_count_is_named(raw):
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(29, dtype=np.uint8)))
    )  # 29 labels, 30 images
    with pytest.raises(
        DataError, match=r"train-labels-idx1-ubyte holds 29 labels but .*train-images-idx3-ubyte holds 30"
    ):
        splits(raw)


def test_a_label_out_of_range_is_named(raw):
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(10, 12, dtype=np.uint8))))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte holds label 12; labels are 0-9"):
        splits(raw)


def test_an_empty_unpacked_file_left_by_an_old_run_is_unpacked_again(raw):
    splits(raw)
    (raw / "train-images-idx3-ubyte").write_bytes(b"")  # what torchvision's extract_archive left on a bad archive
    train, _ = splits(raw)
    assert len(train) == 30 and sizes(raw)["train-images-idx3-ubyte"] == 16 + 30 * 28 * 28


def test_a_replaced_archive_is_unpacked_again(raw):
    splits(raw)
    packed = raw / "t10k-labels-idx1-ubyte.gz"
    packed.write_bytes(gzip.compress(idx_bytes(np.zeros(9, dtype=np.uint8))))  # a new (wrong) pair member
    os.utime(packed, (os.path.getmtime(packed) + 10,) * 2)
    with pytest.raises(DataError, match="holds 9 labels but"):
        splits(raw)


def test_a_truncated_unpacked_file_without_its_archive_is_named(raw):
    splits(raw)
    (raw / "train-images-idx3-ubyte.gz").unlink()
    target = raw / "train-images-idx3-ubyte"
    os.truncate(target, 1000)
    with pytest.raises(DataError) as caught:
        splits(raw)
    assert str(caught.value) == (
        f"{target} is 1000 bytes long, but its header announces 30 items (23536 bytes): it is truncated; delete it "
        "to have it unpacked or downloaded again (or put train-images-idx3-ubyte.gz beside it)"
    )
    assert target.stat().st_size == 1000  # the user's own file is not deleted


def test_a_failed_download_removes_what_it_wrote(tmp_path, monkeypatch):
    import torchvision.datasets

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "mine.txt").write_text("kept\n")

    def download(root, train=True, download=False):  # the connection drops during the second file
        (raw / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + b"\0" * 100)
        (raw / "train-images-idx3-ubyte").write_bytes(b"")
        raise RuntimeError("Error downloading train-labels-idx1-ubyte.gz:\nTried https://..., got: timed out")

    monkeypatch.setattr(torchvision.datasets, "MNIST", download)
    with pytest.raises(DataError, match=r"Downloading from .* failed \(Tried https://\.\.\., got: timed out\)"):
        MNIST(root=str(tmp_path), download=True).splits(None)
    assert sorted(os.listdir(raw)) == ["mine.txt"]


def test_the_four_files_unpacked_are_the_four_files_read(raw):
    train, test = splits(raw)
    assert (len(train), len(test)) == (30, 10)
    assert set(RAW_FILES) <= set(sizes(raw))


def test_a_truncated_nmnist_recording_is_named_before_training(tmp_path):
    written = write_nmnist(tmp_path, per_class_train=1, per_class_test=1)
    path, _ = written["test"][3]
    os.truncate(path, path.stat().st_size - 2)  # cut inside an event
    with pytest.raises(DataError) as caught:
        NMNIST(root=str(tmp_path), require_archives=False, augment=False).splits(None)
    assert str(caught.value).startswith(f"{path} is truncated: {path.stat().st_size} bytes is not a whole number")
