"""Data sets through their real readers: torchvision for MNIST IDX files, tonic for N-MNIST .bin files."""

import inspect
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from helpers.data_files import write_mnist, write_nmnist

from snnframe.builtins.datasets.digits import Digits, load_digits8, split_indices
from snnframe.builtins.datasets.mnist import MNIST, RAW_FILES, FashionMNIST
from snnframe.builtins.datasets.ndigits import NDigits
from snnframe.builtins.datasets.nmnist import NMNIST
from snnframe.builtins.datasets.saccades import simulate
from snnframe.builtins.encoders.frames import Frames, FrameTransform
from snnframe.errors import DataError, RecipeError, SnnframeError

FACTORIES = {"digits": Digits, "ndigits": NDigits, "mnist": MNIST, "fashion_mnist": FashionMNIST, "nmnist": NMNIST}


@pytest.fixture(scope="module")
def ndigits_root(tmp_path_factory):
    """A root holding the generated ndigits recordings (generated once for this module)."""
    root = tmp_path_factory.mktemp("ndigits")
    NDigits(root=str(root), cache=False, augment=False).splits(None)
    return root


@pytest.fixture(scope="module")
def nmnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nmnist")
    return root, write_nmnist(root, per_class_train=2, per_class_test=1)


@dataclass(frozen=True)
class CountingFrames:
    """A frame transform that counts its calls; its repr names its parameters (cacheable)."""

    inner: FrameTransform
    calls: list = field(default_factory=list, repr=False, compare=False)

    def __call__(self, events):
        self.calls.append(1)
        return self.inner(events)


def frames_for(info, **kwargs):
    return Frames(**kwargs).sample_transform(info)


def test_registration_imports_nothing_heavy():
    code = (
        "import sys, snnframe.builtins.datasets as d, snnframe.builtins.encoders as e\n"
        "names = []\n"
        "d.register_datasets(lambda n, f: names.append((n, f)))\n"
        "e.register_encoders(lambda n, f: names.append((n, f)))\n"
        "print([n for n, _ in names], all(isinstance(f, str) for _, f in names),\n"
        "      [m for m in ('torch', 'tonic', 'numpy', 'torchvision') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == (
        "['digits', 'ndigits', 'mnist', 'fashion_mnist', 'nmnist', 'static', 'rate', 'latency', 'delta', 'frames'] "
        "True []"
    )


@pytest.mark.parametrize("name", FACTORIES)
def test_factories_are_cheap_and_keyword_only(name, tmp_path):
    factory = FACTORIES[name]
    for p in inspect.signature(factory).parameters.values():
        assert p.kind is p.KEYWORD_ONLY and p.annotation is not p.empty, p
    dataset = factory(root=str(tmp_path / "absent"))
    assert dataset.info.num_classes == 10 and len(dataset.info.classes) == 10
    assert not (tmp_path / "absent").exists()  # nothing read or written before splits()


def test_digits_split_and_rendering():
    _, labels = load_digits8()
    train_idx, test_idx = split_indices(labels)
    assert (len(train_idx), len(test_idx)) == (1442, 355)
    assert not set(train_idx) & set(test_idx)
    assert np.bincount(labels[test_idx]).min() >= 34  # every class about a fifth
    train, test = Digits(root="unused").splits(None)
    x, y = train[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and y == int(labels[train_idx[0]])
    assert 0 <= x.min() and x.max() <= 1 and x[0, :4].sum() == 0  # 20x20 digit centred, empty border
    assert torch.equal(Digits(root="unused").splits(None)[1][7][0], test[7][0])


def test_digits_augmentation_changes_training_images_only():
    plain_train, plain_test = Digits(root="x").splits(None)
    torch.manual_seed(0)
    train, test = Digits(root="x", augment=True).splits(None)
    assert not torch.equal(train[0][0], plain_train[0][0])
    assert torch.equal(test[0][0], plain_test[0][0])


@pytest.mark.parametrize("factory, folder", [(MNIST, "MNIST"), (FashionMNIST, "FashionMNIST")])
def test_mnist_reads_gzipped_idx_files_through_torchvision(tmp_path, factory, folder):
    written = write_mnist(tmp_path, n_train=30, n_test=12, folder=folder)
    train, test = factory(root=str(tmp_path), download=False).splits(None)
    assert type(train).__module__.startswith("torchvision.datasets")
    assert (len(train), len(test)) == (30, 12)
    x, y = test[5]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x[0], torch.from_numpy(written["t10k-images-idx3-ubyte"][5]).float() / 255)
    assert y == written["t10k-labels-idx1-ubyte"][5]
    scaled, _ = factory(root=str(tmp_path), download=False).splits(lambda img: img * 2)
    assert torch.equal(scaled[0][0], train[0][0] * 2)  # the encoder's transform runs after ToTensor


def test_missing_mnist_says_where_the_files_go(tmp_path):
    with pytest.raises(DataError) as caught:
        MNIST(root=str(tmp_path), download=False).splits(None)
    message = str(caught.value)
    assert isinstance(caught.value, SnnframeError) and caught.value.exit_code == 2
    assert str(tmp_path / "MNIST" / "raw") in message and "\n" not in message
    assert all(f"{name}.gz" in message for name in RAW_FILES)
    assert "data.download" in message and "data.root" in message


def test_nmnist_reads_bin_files_through_tonic(nmnist_root):
    import tonic

    root, written = nmnist_root
    train, test = NMNIST(root=str(root), require_archives=False, augment=False).splits(None)
    assert isinstance(train, tonic.datasets.NMNIST)
    assert (len(train), len(test)) == (20, 10)
    for split, data in (("train", train), ("test", test)):
        for i, (path, (x, y, t, p)) in enumerate(written[split]):
            events, label = data[i]
            assert events.dtype == tonic.datasets.NMNIST.dtype
            assert label == int(path.parent.name)
            for name, values in zip("xytp", (x, y, t, p)):
                assert np.array_equal(events[name], values), (split, i, name)
    first, _ = NMNIST(root=str(root), require_archives=False, first_saccade_only=True, augment=False).splits(None)
    assert 0 < len(first[0][0]) < len(train[0][0]) and first[0][0]["t"].max() < 100_000


def test_missing_nmnist_says_where_the_files_go(nmnist_root, tmp_path):
    root, _ = nmnist_root
    with pytest.raises(DataError) as caught:  # a few extracted files but no archives: tonic would download
        NMNIST(root=str(root), download=False).splits(None)
    message = str(caught.value)
    assert "train.zip missing" in message and "20 .bin files in Train" in message
    assert str(root / "NMNIST" / "Train") in message and "data.require_archives = false" in message
    with pytest.raises(DataError, match="0 .bin files in Test"):
        NMNIST(root=str(tmp_path), require_archives=False).splits(None)


def test_nmnist_frames_are_cached_and_augmented_after_the_cache(nmnist_root, tmp_path):
    root, _ = nmnist_root
    counting = CountingFrames(frames_for(NMNIST.info))
    dataset = NMNIST(root=str(root), require_archives=False, cache_dir=str(tmp_path / "cache"))
    torch.manual_seed(0)
    train, test = dataset.splits(counting)
    first = [test[i][0] for i in range(len(test))]
    [train[i] for i in range(len(train))]
    assert len(counting.calls) == 30
    second = [test[i][0] for i in range(len(test))]
    assert len(counting.calls) == 30  # read from the cache
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    x, y = train[3]
    assert x.dtype == torch.float32 and x.shape[1:] == (2, 34, 34)
    unrotated = NMNIST(root=str(root), require_archives=False, augment=False, cache=False).splits(counting)[0][3][0]
    assert not torch.equal(x, unrotated)  # rotated after the cache
    assert torch.equal(second[0], NMNIST(root=str(root), require_archives=False, cache=False).splits(counting)[1][0][0])
    keys = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("*/key.json")]
    assert sorted(k["split"] for k in keys) == ["test", "train"]
    assert all("FrameTransform(sensor_size=(34, 34, 2), time_window_us=1000" in k["transform"] for k in keys)


def test_a_changed_encoder_gets_a_new_cache(ndigits_root, tmp_path):
    cache = tmp_path / "cache"
    a = NDigits(root=str(ndigits_root), cache_dir=str(cache), augment=False).splits(frames_for(NDigits.info))[1]
    b = NDigits(root=str(ndigits_root), cache_dir=str(cache), augment=False).splits(
        frames_for(NDigits.info, time_window_us=10_000)
    )[1]
    assert a[0][0].shape[0] > 5 * b[0][0].shape[0]  # 1 ms vs 10 ms frames: not a stale read
    assert len(list(cache.glob("test-*"))) == 2


def test_raw_events_cannot_be_rotated(ndigits_root):
    with pytest.raises(RecipeError, match="data.augment"):
        NDigits(root=str(ndigits_root)).splits(None)


def test_ndigits_events_look_like_nmnist(ndigits_root):
    import tonic

    train, test = NDigits(root=str(ndigits_root), augment=False).splits(None)
    _, labels = load_digits8()
    train_idx, test_idx = split_indices(labels)
    assert (len(train), len(test)) == (1442, 355)
    counts = []
    for data, index in ((train, train_idx), (test, test_idx)):
        for i in range(0, len(data), 7):
            events, label = data[i]
            assert events.dtype == tonic.datasets.NMNIST.dtype and label == labels[index[i]]
            assert np.all(np.diff(events["t"]) >= 0)
            assert events["x"].min() >= 0 and events["x"].max() <= 33
            assert events["y"].min() >= 0 and events["y"].max() <= 33
            assert events["t"].min() >= 0 and events["t"].max() < 315_000
            assert set(np.unique(events["p"])) == {0, 1}
            counts.append(len(events))
    assert 2500 < np.mean(counts) < 5500  # N-MNIST: about 4,000 per recording
    first, _ = NDigits(root=str(ndigits_root), first_saccade_only=True, augment=False).splits(None)
    assert first[0][0]["t"].max() < 105_000


def test_ndigits_is_generated_once_and_deterministic(ndigits_root):
    stored = list((ndigits_root / "NDIGITS").glob("ndigits-seed0-*.npz"))
    assert len(stored) == 1
    mtime = stored[0].stat().st_mtime_ns
    NDigits(root=str(ndigits_root), augment=False).splits(None)
    assert stored[0].stat().st_mtime_ns == mtime
    images = np.random.default_rng(0).random((12, 28, 28))
    a, b, c = simulate(images, seed=5), simulate(images, seed=5), simulate(images, seed=6)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[2], c[2])


def test_second_pass_reads_the_cache(ndigits_root, tmp_path):
    counting = CountingFrames(frames_for(NDigits.info, time_window_us=10_000))
    _, test = NDigits(root=str(ndigits_root), cache_dir=str(tmp_path), augment=False).splits(counting)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        for i in range(len(test)):
            test[i]
        times.append(time.perf_counter() - start)
    assert len(counting.calls) == len(test) == 355
    print(f"ndigits test split, 10 ms frames: first pass {times[0]:.2f} s, second (cache) {times[1]:.2f} s")
