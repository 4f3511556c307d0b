"""Data sets through their real readers: torchvision for MNIST IDX files, tonic for N-MNIST .bin files."""

import inspect
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.data_files import write_dvs_gesture, write_mnist, write_nmnist, write_shd

from snnframe.builtins.datasets.digits import Digits, load_digits8, split_indices
from snnframe.builtins.datasets.dvs_gesture import DVSGesture
from snnframe.builtins.datasets.mnist import MNIST, RAW_FILES, FashionMNIST
from snnframe.builtins.datasets.ndigits import NDigits
from snnframe.builtins.datasets.nmnist import NMNIST
from snnframe.builtins.datasets.saccades import simulate
from snnframe.builtins.datasets.shd import SHD
from snnframe.builtins.encoders.frames import Denoise, Frames
from snnframe.errors import DataError, SnnframeError
from snnframe.events import EventTransform

FACTORIES = {
    "digits": Digits,
    "ndigits": NDigits,
    "mnist": MNIST,
    "fashion_mnist": FashionMNIST,
    "nmnist": NMNIST,
    "shd": SHD,
    "dvs_gesture": DVSGesture,
}
CLASSES = {"shd": 20, "dvs_gesture": 11}


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
class CountingDenoise(EventTransform):
    """The frames encoder's transform, counting its calls; its repr names its parameters (cacheable)."""

    inner: Denoise
    calls: list = field(default_factory=list, repr=False, compare=False)

    def __call__(self, events):
        self.calls.append(1)
        return self.inner(events)


def transform_for(info, **kwargs):
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
        "['digits', 'ndigits', 'mnist', 'fashion_mnist', 'nmnist', 'shd', 'dvs_gesture', "
        "'static', 'rate', 'latency', 'delta', 'frames'] "
        "True []"
    )


@pytest.mark.parametrize("name", FACTORIES)
def test_factories_are_cheap_and_keyword_only(name, tmp_path):
    factory = FACTORIES[name]
    for p in inspect.signature(factory).parameters.values():
        assert p.kind is p.KEYWORD_ONLY and p.annotation is not p.empty, p
    dataset = factory(root=str(tmp_path / "absent"))
    classes = CLASSES.get(name, 10)
    assert dataset.info.num_classes == classes and len(dataset.info.classes) == classes
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
    assert isinstance(train.source.dataset, tonic.datasets.NMNIST)  # tonic's class and reader
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


def test_nmnist_events_are_cached_and_augmented_after_the_cache(nmnist_root, tmp_path):
    import tonic

    root, _ = nmnist_root
    counting = CountingDenoise(transform_for(NMNIST.info))
    dataset = NMNIST(root=str(root), require_archives=False, cache_dir=str(tmp_path / "cache"))
    torch.manual_seed(0)
    train, test = dataset.splits(counting)
    assert len(counting.calls) == 30  # every recording denoised once, when the cache was built
    first = [test[i][0] for i in range(len(test))]
    [train[i] for i in range(len(train))]
    second = [test[i][0] for i in range(len(test))]
    assert len(counting.calls) == 30  # later reads come from the cache
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    uncached_train, uncached_test = NMNIST(root=str(root), require_archives=False, augment=False, cache=False).splits(
        counting
    )
    assert all(np.array_equal(a, uncached_test[i][0]) for i, a in enumerate(first))  # the cache returns what it stored
    events, label = train[3]
    unrotated = uncached_train[3][0]
    assert events.dtype == tonic.datasets.NMNIST.dtype and label == uncached_train[3][1]
    draws = [events] + [train[3][0] for _ in range(4)]
    rotated = [not np.array_equal(d, unrotated) for d in draws]  # a tiny angle may move no event
    assert sum(rotated) >= 3  # rotated after the cache, differently each time
    assert len({d.tobytes() for d in draws}) >= 3
    keys = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("*/key.json")]
    assert sorted(k["split"] for k in keys) == ["test", "train"]
    assert all(k["transform"] == "CountingDenoise(inner=Denoise(denoise_us=10000))" and k["format"] == 2 for k in keys)
    assert sorted(p.name for p in next((tmp_path / "cache").glob("test-*")).iterdir()) == [
        "events.bin",
        "index.npz",
        "key.json",
    ]


def test_a_changed_denoise_gets_a_new_cache(ndigits_root, tmp_path):
    cache = tmp_path / "cache"
    a = NDigits(root=str(ndigits_root), cache_dir=str(cache), augment=False).splits(transform_for(NDigits.info))[1]
    b = NDigits(root=str(ndigits_root), cache_dir=str(cache), augment=False).splits(
        transform_for(NDigits.info, denoise_us=2000)
    )[1]
    assert len(b[0][0]) < len(a[0][0])  # a stricter filter keeps fewer events: not a stale read
    assert len(list(cache.glob("test-*"))) == 2
    c = NDigits(root=str(ndigits_root), cache_dir=str(cache), augment=False).splits(
        transform_for(NDigits.info, time_window_us=10_000)
    )[1]
    assert np.array_equal(c[0][0], a[0][0]) and len(list(cache.glob("test-*"))) == 2  # framing is not cached


def test_old_frame_caches_are_never_read(ndigits_root, tmp_path):
    """A format-1 cache (tonic's DiskCachedDataset HDF5 frames) under the same cache_dir is left alone."""
    from tonic.cached_dataset import save_to_disk_cache

    cache = tmp_path / "cache"
    expected = NDigits(root=str(ndigits_root), cache=False, augment=False).splits(transform_for(NDigits.info))[1]
    for split in ("train", "test"):
        old = cache / f"{split}-0123456789ab"
        old.mkdir(parents=True)
        (old / "key.json").write_text(json.dumps({"split": split, "format": 1}))
        save_to_disk_cache(np.ones((3, 2, 34, 34), np.int16), 0, file_path=str(old / "0_0.hdf5"))
    test = NDigits(root=str(ndigits_root), cache_dir=str(cache), augment=False).splits(transform_for(NDigits.info))[1]
    assert all(np.array_equal(test[i][0], expected[i][0]) for i in (0, 100, 354))
    assert len(list(cache.glob("test-*"))) == 2 and (cache / "test-0123456789ab" / "0_0.hdf5").is_file()


def test_a_partial_cache_is_rebuilt_not_misread(ndigits_root, tmp_path):
    cache = tmp_path / "cache"
    transform = transform_for(NDigits.info)
    first = NDigits(root=str(ndigits_root), cache_dir=str(cache), augment=False).splits(transform)[1]
    expected = [first[i][0] for i in (0, 354)]
    path = next(cache.glob("test-*"))
    data = (path / "events.bin").read_bytes()
    (path / "events.bin").write_bytes(data[: len(data) // 2])  # e.g. copied by a tool that gave up halfway
    test = NDigits(root=str(ndigits_root), cache_dir=str(cache), augment=False).splits(transform)[1]
    assert (path / "events.bin").stat().st_size == len(data)  # built again
    assert all(np.array_equal(test[i][0], e) for i, e in zip((0, 354), expected))


def test_raw_events_are_rotated_too(ndigits_root):
    torch.manual_seed(0)
    rotated = NDigits(root=str(ndigits_root)).splits(None)[0]
    plain = NDigits(root=str(ndigits_root), augment=False).splits(None)[0]
    events, label = rotated[0]
    assert label == plain[0][1] and not np.array_equal(events, plain[0][0])
    assert 0.8 * len(plain[0][0]) < len(events) <= len(plain[0][0])  # only events rotated off the sensor are lost


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
    counting = CountingDenoise(transform_for(NDigits.info))
    start = time.perf_counter()
    train, test = NDigits(root=str(ndigits_root), cache_dir=str(tmp_path), augment=False).splits(counting)
    build = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(len(test)):
        test[i]
    read = time.perf_counter() - start
    assert len(counting.calls) == len(train) + len(test) == 1797
    print(f"ndigits: denoising and caching both splits {build:.2f} s, reading the test split back {read:.2f} s")


def files_in(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_corrupt_nmnist_file_is_a_data_error_naming_it(tmp_path):
    write_nmnist(tmp_path, per_class_train=1, per_class_test=1)
    bad = sorted((tmp_path / "NMNIST" / "Train").glob("*/*.bin"))[3]
    bad.write_bytes(bytes([200, 3, 1, 2, 3]) * 20)  # x = 200 on a 34-pixel sensor
    before = files_in(tmp_path)
    with pytest.raises(DataError) as caught:
        NMNIST(root=str(tmp_path), require_archives=False).splits(Frames().sample_transform(NMNIST.info))
    message = str(caught.value)
    assert str(bad) in message and "34x34x2" in message and "\n" not in message
    assert files_in(tmp_path) == before  # no cache directory, no partial file left behind


def test_shd_reads_the_published_layout_like_tonic(tmp_path):
    import tonic

    written = write_shd(tmp_path, per_class_train=1, per_class_test=1, archives=True)
    train, test = SHD(root=str(tmp_path), augment=False).splits(None)
    assert (len(train), len(test)) == (20, 20)
    theirs = tonic.datasets.SHD(str(tmp_path), train=False)
    for i in (0, 7, 19):
        events, label = test[i]
        reference, target = theirs[i]
        assert label == int(target) == written["test"][i][2]
        assert np.array_equal(events["x"], reference["x"]) and np.array_equal(events["t"], reference["t"])
        assert not events["y"].any() and not events["p"].any()


def test_shd_frames_are_tonics_on_a_700_channel_sensor(tmp_path):
    import tonic
    from tonic.transforms import ToFrame

    write_shd(tmp_path, per_class_train=1, per_class_test=1, archives=True)
    encoder = Frames(time_window_us=10_000, denoise_us=0)
    dataset = SHD(root=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    _, test = dataset.splits(encoder.sample_transform(dataset.info))
    batch, _ = encoder.collate_fn(dataset.info)([test[i] for i in range(4)])
    frames = encoder(batch)
    assert encoder.input_shape(dataset.info) == (1, 1, 700) and frames.shape[1:] == (4, 1, 1, 700)
    theirs = tonic.datasets.SHD(str(tmp_path), train=False)
    for b in range(4):
        reference = ToFrame(sensor_size=(700, 1, 1), time_window=10_000.0)(theirs[b][0])
        assert np.array_equal(frames[: len(reference), b, :, 0].numpy(), reference)
    assert sorted(p.name for p in (tmp_path / "SHD").iterdir()) == [
        "shd_test.h5",
        "shd_test.h5.zip",
        "shd_train.h5",
        "shd_train.h5.zip",
    ]  # nothing written beside the data


def test_missing_shd_says_where_the_files_go(tmp_path):
    with pytest.raises(DataError) as caught:
        SHD(root=str(tmp_path), download=False).splits(None)
    message = str(caught.value)
    assert str(tmp_path / "SHD") in message and "shd_train.h5 missing" in message and "\n" not in message
    write_shd(tmp_path, per_class_train=1, per_class_test=1)  # the .h5 files without tonic's archives
    with pytest.raises(DataError, match="shd_train.h5.zip missing.*data.require_archives = false"):
        SHD(root=str(tmp_path), download=False).splits(None)
    assert len(SHD(root=str(tmp_path), require_archives=False, augment=False).splits(None)[0]) == 20


@pytest.mark.parametrize("damage", ["truncated", "not hdf5", "no labels"])
def test_corrupt_shd_is_a_data_error_naming_the_file(tmp_path, damage):
    import h5py

    write_shd(tmp_path, per_class_train=1, per_class_test=1)
    path = tmp_path / "SHD" / "shd_test.h5"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:3000])
    elif damage == "not hdf5":
        path.write_text("not an HDF5 file")
    else:
        with h5py.File(path, "a") as f:
            del f["labels"]
    before = files_in(tmp_path)
    with pytest.raises(DataError) as caught:
        SHD(root=str(tmp_path), require_archives=False).splits(Frames(denoise_us=0).sample_transform(SHD.info))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert files_in(tmp_path) == before


def test_a_failed_download_leaves_nothing_in_the_data_folder(tmp_path, monkeypatch):
    """tonic opens the archive before it connects: offline it leaves a 0-byte file where it downloads."""
    import tonic.dataset

    def offline(url, download_root, filename=None, md5=None, **kwargs):
        Path(download_root).mkdir(parents=True, exist_ok=True)
        (Path(download_root) / filename).write_bytes(b"")
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", offline)
    for factory in (SHD, DVSGesture, NMNIST):
        with pytest.raises(DataError, match="Downloading failed .*Name or service not known"):
            factory(root=str(tmp_path)).splits(None)
    assert files_in(tmp_path) == []


def test_dvs_gesture_reads_tonics_tree_in_sorted_order(tmp_path):
    import tonic

    written = write_dvs_gesture(tmp_path)
    train, test = DVSGesture(root=str(tmp_path), require_archives=False).splits(None)
    assert isinstance(train.source.dataset.dataset, tonic.datasets.DVSGesture)  # tonic's class and reader
    assert (len(train), len(test)) == (22, 11)
    for data, split in ((train, "train"), (test, "test")):
        for i in (0, 5, len(data) - 1):
            events, label = data[i]
            path, columns, target = written[split][i]
            assert label == target == int(path.stem)
            assert np.array_equal(np.column_stack([events[f] for f in "xyp"]), columns[:, :3])
            assert np.array_equal(events["t"], columns[:, 3] * 1000)  # ms -> us, as tonic


def test_dvs_gesture_downsampling_and_frames(tmp_path):
    written = write_dvs_gesture(tmp_path, train_folders=("user01_led",), test_folders=("user24_led",))
    dataset = DVSGesture(root=str(tmp_path), require_archives=False, downsample=4, cache_dir=str(tmp_path / "c"))
    assert dataset.info.shape == (32, 32, 2) and dataset.info.num_classes == 11
    encoder = Frames(n_time_bins=20)
    _, test = dataset.splits(encoder.sample_transform(dataset.info))
    plain = DVSGesture(root=str(tmp_path), require_archives=False, downsample=4, cache=False).splits(None)[1]
    events = plain[2][0]
    assert np.array_equal(events["x"], written["test"][2][1][:, 0] // 4) and events["y"].max() < 32
    frames = encoder(encoder.collate_fn(dataset.info)([test[i] for i in range(3)])[0])
    assert frames.shape == (20, 3, 2, 32, 32)
    with pytest.raises(ValueError, match="downsample must divide 128"):
        DVSGesture(root=str(tmp_path), downsample=3)


@pytest.mark.parametrize("damage", ["truncated", "three columns", "outside the sensor"])
def test_corrupt_dvs_gesture_file_is_a_data_error_naming_it(tmp_path, damage):
    write_dvs_gesture(tmp_path, train_folders=("user01_led",), test_folders=("user24_led",))
    path = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user01_led" / "4.npy"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    elif damage == "three columns":
        np.save(path, np.zeros((10, 3), np.int64))
    else:
        np.save(path, np.array([[130, 5, 1, 10]]))
    before = files_in(tmp_path)
    with pytest.raises(DataError) as caught:
        DVSGesture(root=str(tmp_path), require_archives=False).splits(
            Frames().sample_transform(DVSGesture(root="x").info)
        )
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert files_in(tmp_path) == before


def test_missing_dvs_gesture_says_where_the_files_go(tmp_path):
    with pytest.raises(DataError) as caught:
        DVSGesture(root=str(tmp_path), download=False).splits(None)
    message = str(caught.value)
    assert "ibmGestureTrain.tar.gz missing" in message and str(tmp_path / "DVSGesture") in message
    assert "data.require_archives = false" in message and "\n" not in message
