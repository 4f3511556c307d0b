"""Event plumbing: augmentation on event coordinates, batches that cross process boundaries."""

import pickle

import numpy as np
import pytest
import torch
from helpers.data_files import write_nmnist

from snnframe.builtins.datasets._augment import EventAugmentation, augmentation, rotate
from snnframe.builtins.datasets.ndigits import NDigits
from snnframe.builtins.datasets.nmnist import NMNIST
from snnframe.builtins.encoders.frames import Frames
from snnframe.events import EVENT_DTYPE, EventBatch, FrameSlicing, make_events

SENSOR = (34, 34, 2)


@pytest.fixture(scope="module")
def nmnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nmnist")
    write_nmnist(root, per_class_train=1, per_class_test=1)
    return root


@pytest.fixture(scope="module")
def recording(nmnist_root):
    """A denoised N-MNIST-format recording (time-sorted, ~3,500 events)."""
    dataset = NMNIST(root=str(nmnist_root), require_archives=False, cache=False, augment=False)
    return dataset.splits(Frames().sample_transform(NMNIST.info))[1][0][0]


def count_map(events, size=SENSOR):
    counts = np.zeros(size[:2][::-1])
    np.add.at(counts, (events["y"], events["x"]), 1)
    return counts


def test_rotation_turns_the_way_torchvision_rotates_frames():
    from torchvision.transforms.functional import InterpolationMode
    from torchvision.transforms.functional import rotate as rotate_frame

    frame = torch.zeros(1, 34, 34)
    frame[0, 17, 30] = 1  # y = 17, x = 30: right of the centre
    for angle in (90, -90, 180):
        turned = rotate_frame(frame, angle, interpolation=InterpolationMode.NEAREST)
        y, x = np.argwhere(turned[0].numpy())[0]
        rx, ry = rotate(np.array([30.0]), np.array([17.0]), angle, 34, 34)
        assert (round(rx[0]), round(ry[0])) == (x, y), angle


def test_event_rotation_keeps_every_event_where_frame_rotation_resamples(recording):
    """Rotating events moves each event to its nearest pixel; torchvision rotates the frame by
    sampling each output pixel from one input pixel, so counts are duplicated or lost."""
    from torchvision.transforms.functional import InterpolationMode
    from torchvision.transforms.functional import rotate as rotate_frame

    angle = 10.0
    x, y = rotate(recording["x"].astype(float), recording["y"].astype(float), angle, 34, 34)
    rotated = make_events(np.rint(x), np.rint(y), recording["t"], recording["p"])
    assert rotated["x"].min() >= 0 and rotated["x"].max() < 34 and len(rotated) == len(recording)
    ours = count_map(rotated)
    theirs = rotate_frame(torch.from_numpy(count_map(recording))[None], angle, interpolation=InterpolationMode.NEAREST)[
        0
    ].numpy()
    assert ours.sum() == len(recording) != theirs.sum()  # the frame rotation does not keep the count
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.9  # but both turn the digit alike


def test_augmentations_do_what_they_say(recording):
    rng = np.random.default_rng(0)
    n = len(recording)
    dropped = EventAugmentation(SENSOR, drop_events=0.25)(recording, rng)
    assert len(dropped) == n - int(0.25 * n + 0.5) and np.all(np.diff(dropped["t"]) >= 0)
    flipped = EventAugmentation(SENSOR, flip_lr=1.0, flip_ud=1.0, flip_polarity=1.0)(recording, rng)
    assert np.array_equal(flipped["x"], 33 - recording["x"]) and np.array_equal(flipped["y"], 33 - recording["y"])
    assert np.array_equal(flipped["p"], 1 - recording["p"]) and np.array_equal(flipped["t"], recording["t"])
    jittered = EventAugmentation(SENSOR, spatial_jitter=1.5, time_jitter_us=2000)(recording, rng)
    assert 0.9 * n < len(jittered) <= n and jittered["x"].max() < 34 and jittered["y"].min() >= 0
    assert jittered["t"].min() >= 0 and np.all(np.diff(jittered["t"]) >= 0)  # sorted again for framing
    assert not np.array_equal(np.sort(jittered["t"]), np.sort(recording["t"][: len(jittered)]))
    assert jittered.dtype == EVENT_DTYPE and recording.dtype == EVENT_DTYPE  # the input is untouched
    assert np.array_equal(EventAugmentation(SENSOR)(recording, rng), recording)


def test_augmentation_draws_from_torchs_generator(recording):
    augment = EventAugmentation(SENSOR, rotation_deg=10, drop_events=0.1)
    torch.manual_seed(3)
    a = augment(recording)
    torch.manual_seed(3)
    b = augment(recording)
    c = augment(recording)
    assert np.array_equal(a, b) and not np.array_equal(b, c)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"drop_events": 1.0}, "drop_events"),
        ({"flip_lr": 1.5}, "flip_lr"),
        ({"rotation_deg": -1}, "rotation_deg"),
        ({"time_jitter_us": -5}, "time_jitter_us"),
    ],
)
def test_bad_augmentation_values_are_value_errors(kwargs, words):
    with pytest.raises(ValueError, match=words):
        EventAugmentation(SENSOR, **kwargs)
    with pytest.raises(ValueError, match=words):
        NDigits(root="unused", augment=False, **kwargs)  # checked even when off: validate catches it
    with pytest.raises(ValueError, match="two-dimensional"):
        EventAugmentation((700, 1, 1), rotation_deg=10)


def test_augmentation_is_none_when_off_or_empty():
    assert augmentation(False, SENSOR, rotation_deg=10) is None
    assert augmentation(True, SENSOR, rotation_deg=0) is None
    assert augmentation(True, SENSOR, rotation_deg=10).rotation_deg == 10


def test_slicing_needs_exactly_one_frame_size():
    for kwargs in ({}, {"time_window": 1000, "event_count": 10}, {"n_time_bins": 0}):
        with pytest.raises(ValueError):
            FrameSlicing(**kwargs)


def test_batches_and_caches_cross_worker_processes(tmp_path, nmnist_root, recording):
    """DataLoader workers receive the collation and the memory-mapped cache pickled (spawn)."""
    from torch.utils.data import DataLoader

    encoder = Frames()
    dataset = NMNIST(root=str(nmnist_root), require_archives=False, cache_dir=str(tmp_path / "cache"), augment=False)
    _, test = dataset.splits(encoder.sample_transform(dataset.info))
    test[0]  # maps the events file: the pickled copy must not carry it
    state = pickle.loads(pickle.dumps(test))
    assert state._events is None and np.array_equal(state[0][0], recording)
    collate = pickle.loads(pickle.dumps(encoder.collate_fn(dataset.info)))
    loader = DataLoader(test, batch_size=5, collate_fn=collate, num_workers=1, multiprocessing_context="spawn")
    batch, labels = next(iter(loader))
    assert isinstance(batch, EventBatch) and batch.shape[1:] == (5, 2, 34, 34) and labels.shape == (5,)
    direct, _ = encoder.collate_fn(dataset.info)([test[i] for i in range(5)])
    assert torch.equal(encoder(batch), encoder(direct))
