"""Encoders: same results as snntorch.spikegen / tonic, the static view, parameter checks."""

import inspect

import numpy as np
import pytest
import torch
from snntorch import spikegen

from snnframe.builtins.encoders.frames import Frames, denoise
from snnframe.builtins.encoders.spikegen import Delta, Latency, Rate
from snnframe.builtins.encoders.static import Static
from snnframe.contracts import DatasetInfo
from snnframe.events import EventBatch, EventTransform

IMAGES = DatasetInfo(modality="image", shape=(1, 28, 28), num_classes=10)
EVENTS = DatasetInfo(modality="events", shape=(34, 34, 2), num_classes=10)
EVENT_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])  # tonic NMNIST


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.rand(4, 1, 28, 28)


def random_events(rng, n, width=34, height=34, duration=300_000):
    events = np.zeros(n, EVENT_DTYPE)
    events["x"] = rng.integers(0, width, n)
    events["y"] = rng.integers(0, height, n)
    events["t"] = np.sort(rng.integers(0, duration, n))
    events["p"] = rng.integers(0, 2, n)
    return events


@pytest.mark.parametrize("factory", [Static, Rate, Latency, Delta, Frames])
def test_factories_take_annotated_keyword_only_parameters(factory):
    for p in inspect.signature(factory).parameters.values():
        assert p.kind is p.KEYWORD_ONLY and p.annotation is not p.empty, p


def test_modalities_and_shapes():
    for encoder in (Static(), Rate(), Latency(), Delta()):
        assert encoder.modality == "image"
        assert encoder.sample_transform(IMAGES) is None and encoder.collate_fn(IMAGES) is None
        assert encoder.input_shape(IMAGES) == (1, 28, 28)
    frames = Frames()
    assert frames.modality == "events"
    assert frames.input_shape(DatasetInfo("events", (40, 30, 2), 10)) == (2, 30, 40)


def test_static_is_a_view_without_copies(images):
    x = Static(num_steps=50)(images)
    assert x.shape == (50, 4, 1, 28, 28)
    assert x.stride(0) == 0
    assert x.untyped_storage().data_ptr() == images.untyped_storage().data_ptr()
    assert x.untyped_storage().nbytes() == images.untyped_storage().nbytes()
    assert torch.equal(x[17], images)


def test_rate_equals_spikegen_for_the_same_seed(images):
    torch.manual_seed(3)
    ours = Rate(num_steps=20, gain=0.8, offset=0.05, first_spike_time=2)(images)
    torch.manual_seed(3)
    theirs = spikegen.rate(images, num_steps=20, gain=0.8, offset=0.05, first_spike_time=2)
    assert torch.equal(ours, theirs)
    assert ours.shape == (20, 4, 1, 28, 28) and not ours[:2].any()


def test_rate_fires_with_the_intensity_as_probability():
    torch.manual_seed(0)
    p = torch.linspace(0, 1, 11).reshape(1, 11)
    spikes = Rate(num_steps=4000)(p)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(spikes.mean(0), p, atol=0.03)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"linear": True, "normalize": True},
        {"tau": 5.0, "threshold": 0.05, "normalize": True, "clip": True},
        {"linear": True, "tau": 10.0, "first_spike_time": 3},
        {"interpolate": True, "normalize": True},
        {"on_target": 0.9, "off_target": 0.1, "linear": True, "tau": 20.0},
    ],
)
def test_latency_equals_spikegen(images, kwargs):
    ours = Latency(num_steps=30, **kwargs)(images)
    theirs = spikegen.latency(images, num_steps=30, **kwargs)
    assert ours.shape == (30, 4, 1, 28, 28)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("kwargs", [{}, {"off_spike": True, "threshold": 0.3}])
def test_delta_equals_spikegen_on_the_held_image(images, kwargs):
    ours = Delta(num_steps=6, **kwargs)(images)
    theirs = spikegen.delta(images.unsqueeze(0).repeat(6, 1, 1, 1, 1), **kwargs)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("num_steps", [20, 24, 26, 30])
@pytest.mark.parametrize("tau", [1.0, 1.7, 2.216, 3.0])
@pytest.mark.parametrize("threshold", [0.01, 0.1])
def test_latency_rejects_exactly_what_spikegen_would(num_steps, tau, threshold):
    # the boundary is where snnTorch's float32 spike times leave [0, num_steps - 1]
    kwargs = dict(num_steps=num_steps, tau=tau, threshold=threshold)
    try:
        spikegen.latency(torch.linspace(0, 1, 2001), **kwargs)  # images have black pixels
    except Exception:
        with pytest.raises(ValueError, match="latest spike falls after the last step"):
            Latency(**kwargs)
    else:
        Latency(**kwargs)


@pytest.mark.parametrize(
    "factory, kwargs, words",
    [
        (Static, {"num_steps": 0}, "num_steps"),
        (Rate, {"num_steps": 5, "first_spike_time": 5}, "first_spike_time"),
        (Latency, {"threshold": 1.5}, "threshold"),
        (Latency, {"tau": 0.0}, "tau"),
        (Latency, {"num_steps": 10, "tau": 5.0}, "normalize"),
        (Frames, {"time_window_us": 1000, "n_time_bins": 10}, "either"),
        (Frames, {"n_time_bins": 0}, "n_time_bins"),
        (Frames, {"denoise_us": -1}, "denoise_us"),
        (Frames, {"event_count": 100, "n_event_bins": 10}, "either"),
        (Frames, {"time_window_us": 1000, "overlap": 1000}, "overlap"),
        (Frames, {"event_count": 100, "overlap": -1}, "overlap"),
        (Frames, {"n_time_bins": 10, "overlap": 1.0}, "overlap"),
        (Frames, {"n_time_bins": 10, "include_incomplete": True}, "include_incomplete"),
    ],
)
def test_bad_parameters_are_value_errors(factory, kwargs, words):
    with pytest.raises(ValueError, match=words):
        factory(**kwargs)


def test_denoise_equals_tonics():
    from tonic.functional import denoise_numpy

    rng = np.random.default_rng(0)
    for trial in range(60):
        events = random_events(rng, int(rng.integers(1, 2000)), int(rng.integers(1, 34)), int(rng.integers(1, 34)))
        if trial % 3 == 0:
            rng.shuffle(events)  # tonic goes by order, not by time
        filter_time = float(rng.choice([10, 1000, 10000, 50000]))
        assert np.array_equal(denoise(events, filter_time), denoise_numpy(events, filter_time))
    assert len(denoise(np.zeros(0, EVENT_DTYPE), 10000)) == 0


FRAME_MODES = [
    {},
    {"n_time_bins": 12},
    {"time_window_us": 5000, "denoise_us": 0},
    {"time_window_us": 7000, "include_incomplete": True},
    {"time_window_us": 3000, "overlap": 1000, "include_incomplete": True},
    {"event_count": 500},
    {"event_count": 400, "overlap": 150, "include_incomplete": True},
    {"n_time_bins": 10, "overlap": 0.25},
    {"n_event_bins": 7, "overlap": 0.5, "denoise_us": 0},
]


def tonic_frames(encoder, events, sensor_size=(34, 34, 2)):
    """tonic's own pipeline for one recording: Denoise then ToFrame with the encoder's settings."""
    from tonic.transforms import Denoise, ToFrame

    if encoder.denoise_us:
        events = Denoise(filter_time=encoder.denoise_us)(events)
    window = float(encoder.time_window_us) if encoder.time_window_us else None
    to_frame = ToFrame(
        sensor_size=sensor_size,
        time_window=window,
        event_count=encoder.event_count,
        n_time_bins=encoder.n_time_bins,
        n_event_bins=encoder.n_event_bins,
        overlap=encoder.slicing.overlap,
        include_incomplete=encoder.slicing.include_incomplete,
    )
    return to_frame(events)


def encode(encoder, recordings, info=EVENTS, labels=None):
    """The pipeline as the trainer runs it: sample transform, collation, encoder on the batch."""
    transform = encoder.sample_transform(info)
    labels = labels or list(range(len(recordings)))
    batch, targets = encoder.collate_fn(info)([(transform(e), y) for e, y in zip(recordings, labels)])
    return encoder(batch), batch, targets


@pytest.mark.parametrize("kwargs", FRAME_MODES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
def test_batched_frames_equal_tonic_denoise_then_to_frame(kwargs):
    encoder = Frames(**kwargs)
    rng = np.random.default_rng(1)
    recordings = [
        random_events(rng, n, duration=d) for n, d in ((3000, 300_000), (800, 120_000), (5, 900), (1500, 64_000))
    ]
    frames, batch, _ = encode(encoder, recordings)
    assert frames.dtype == torch.float32 and frames.shape[1:] == (4, 2, 34, 34)
    lengths = []
    for b, events in enumerate(recordings):
        theirs = tonic_frames(encoder, events)
        lengths.append(len(theirs))
        assert np.array_equal(frames[: len(theirs), b].numpy(), theirs), b
        assert not frames[len(theirs) :, b].any()  # padded with empty frames at the end
    assert frames.shape[0] == max(lengths) and batch.lengths.tolist() == lengths


def test_empty_recordings_give_empty_frames_like_tonic():
    empty = np.zeros(0, EVENT_DTYPE)
    frames, batch, _ = encode(Frames(), [empty, random_events(np.random.default_rng(2), 50, duration=4500)])
    assert frames.shape == (4, 2, 2, 34, 34) and batch.lengths.tolist() == [1, 4] and not frames[:, 0].any()
    frames, _, _ = encode(Frames(n_time_bins=6), [empty])
    assert frames.shape == (6, 1, 2, 34, 34) and not frames.any()


def test_one_dimensional_sensor_frames_equal_tonic():
    """SHD-like input: 700 channels, one polarity, events without y; frames [T, B, 1, 1, 700]."""
    from tonic.transforms import ToFrame

    info = DatasetInfo("events", (700, 1, 1), 20)
    rng = np.random.default_rng(3)
    tonic_events = np.zeros(2000, np.dtype([("t", int), ("x", int), ("p", int)]))
    tonic_events["t"] = np.sort(rng.integers(0, 1_000_000, 2000))
    tonic_events["x"] = rng.integers(0, 700, 2000)
    tonic_events["p"] = 1
    theirs = ToFrame(sensor_size=(700, 1, 1), time_window=10_000.0)(tonic_events.copy())
    ours = np.zeros(2000, EVENT_DTYPE)
    ours["t"], ours["x"] = tonic_events["t"], tonic_events["x"]
    encoder = Frames(time_window_us=10_000, denoise_us=0)
    frames, _, _ = encode(encoder, [ours], info)
    assert encoder.input_shape(info) == (1, 1, 700) and frames.shape == (len(theirs), 1, 1, 1, 700)
    assert np.array_equal(frames[:, 0, :, 0].numpy(), theirs)


def test_denoise_transform_is_an_event_transform_whose_repr_names_its_parameter():
    transform = Frames(time_window_us=2000, denoise_us=5000).sample_transform(EVENTS)
    assert isinstance(transform, EventTransform)
    assert repr(transform) == "Denoise(denoise_us=5000)"
    events = random_events(np.random.default_rng(4), 500)
    assert np.array_equal(transform(events), denoise(events, 5000))
    assert Frames(denoise_us=0).sample_transform(EVENTS)(events) is events


def test_collation_pads_and_is_time_major():
    rng = np.random.default_rng(5)
    short, long = random_events(rng, 100, duration=2500), random_events(rng, 400, duration=9000)
    short["t"][[0, -1]], long["t"][[0, -1]] = (0, 2999), (0, 9000)  # 2 and 9 whole 1 ms frames (tonic's rule)
    frames, batch, targets = encode(Frames(denoise_us=0), [short, long], labels=[4, 7])
    assert isinstance(batch, EventBatch) and batch.shape == (9, 2, 2, 34, 34) and batch.lengths.tolist() == [2, 9]
    assert frames.shape == (9, 2, 2, 34, 34) and torch.equal(targets, torch.tensor([4, 7]))
    assert frames[:, 0].sum() == np.count_nonzero(short["t"] < 2000) and not frames[2:, 0].any()
    assert frames[:, 1].sum() == np.count_nonzero(long["t"] < 9000)


def test_event_batches_move_like_tensors():
    from snnframe.data import split_batch

    batch = encode(Frames(), [random_events(np.random.default_rng(6), 300)])[1]
    inputs, targets = split_batch((batch, torch.tensor([3])), torch.device("cpu"))
    assert isinstance(inputs, EventBatch) and inputs.shape == batch.shape
    assert torch.equal(inputs.frames(), batch.frames()) and targets.tolist() == [3]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_frames_binned_on_the_gpu_equal_the_cpus():
    batch = encode(Frames(), [random_events(np.random.default_rng(7), n) for n in (3000, 1000)])[1]
    on_gpu = Frames()(batch.pin_memory().to("cuda", non_blocking=True))
    assert on_gpu.device.type == "cuda" and torch.equal(on_gpu.cpu(), Frames()(batch))
