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

IMAGES = DatasetInfo(modality="image", shape=(1, 28, 28), num_classes=10)
EVENTS = DatasetInfo(modality="events", shape=(34, 34, 2), num_classes=10)
EVENT_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])


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


@pytest.mark.parametrize("kwargs", [{}, {"n_time_bins": 12}, {"time_window_us": 5000, "denoise_us": 0}])
def test_frame_transform_equals_tonic_denoise_then_to_frame(kwargs):
    from tonic.transforms import Compose, Denoise, ToFrame

    encoder = Frames(**kwargs)
    ours = encoder.sample_transform(EVENTS)
    steps = [Denoise(filter_time=encoder.denoise_us)] if encoder.denoise_us else []
    window = float(encoder.time_window_us) if encoder.time_window_us else None
    theirs = Compose(steps + [ToFrame(sensor_size=(34, 34, 2), time_window=window, n_time_bins=encoder.n_time_bins)])
    events = random_events(np.random.default_rng(1), 3000)
    a, b = ours(events), theirs(events)
    assert a.shape[1:] == (2, 34, 34) and a.dtype == np.int16
    assert np.array_equal(a, b)
    assert ours(events[:0]).shape == ((kwargs.get("n_time_bins") or 1), 2, 34, 34)


def test_frame_transform_repr_names_its_parameters():
    text = repr(Frames(time_window_us=2000, denoise_us=5000).sample_transform(EVENTS))
    assert "time_window_us=2000" in text and "denoise_us=5000" in text and " at 0x" not in text


def test_collation_pads_and_is_time_major():
    samples = [(np.ones((3, 2, 34, 34), np.int16), 4), (torch.full((5, 2, 34, 34), 2.0), 7)]
    x, y = Frames().collate_fn(EVENTS)(samples)
    assert x.shape == (5, 2, 2, 34, 34) and x.dtype == torch.float32
    assert torch.equal(y, torch.tensor([4, 7]))
    assert x[:3, 0].eq(1).all() and x[3:, 0].eq(0).all() and x[:, 1].eq(2).all()
    assert Frames()(x) is not None and Frames()(x).shape == x.shape
