"""Event recordings as data: the event dtype, and batches of recordings binned into frames.

Shared by the event data sets (which yield recordings) and the encoders that frame them, so
neither imports the other. A recording is a structured numpy array with fields ``x``, ``y``,
``t`` (microseconds) and ``p``, in time order. A batch of recordings is turned into frames in
two steps:

1. :func:`collate_events` (DataLoader workers, numpy): decides which frame each event falls
   in -- tonic's ``ToFrame`` slicing rules, see :class:`FrameSlicing` -- and computes each
   event's cell in the padded, time-major frame tensor ``[T, B, P, H, W]``;
2. :meth:`EventBatch.frames` (the training device, torch): one scatter-add of ones into that
   tensor, for the whole batch.

Import-light: torch is imported inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# tonic's N-MNIST dtype: what tonic's transforms expect, and what every data set here yields.
EVENT_DTYPE = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])


def make_events(x, y, t, p) -> np.ndarray:
    """A recording with :data:`EVENT_DTYPE` from four equally long arrays (or scalars after the first)."""
    x = np.asarray(x)
    events = np.empty(len(x), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    return events


class EventTransform:
    """Base class of per-sample transforms from a recording to a recording (e.g. a denoise filter).

    A data set may cache what such a transform returns (compact events, see the data sets' disk
    cache) and augment it afterwards; any other transform runs on every sample, after the
    augmentation. Subclasses must have a ``repr`` that names all their parameters (a frozen
    dataclass does): the cache is keyed on it.
    """

    def __call__(self, events: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class FrameSlicing:
    """How a recording is cut into frames: exactly one of ``time_window`` (microseconds),
    ``event_count``, ``n_time_bins`` or ``n_event_bins``, with tonic's ``ToFrame`` meaning of
    each and of ``overlap`` (microseconds, events, or a fraction of a bin) and
    ``include_incomplete`` (keep a last, shorter frame; windows and counts only).

    :meth:`slices` reproduces ``tonic.slicers`` line by line (tests compare the frames with
    ``tonic.transforms.ToFrame``). Like tonic, it expects events in time order; frames start
    at the first event.
    """

    time_window: float | None = None
    event_count: int | None = None
    n_time_bins: int | None = None
    n_event_bins: int | None = None
    overlap: float = 0
    include_incomplete: bool = False

    def __post_init__(self):
        chosen = [self.time_window, self.event_count, self.n_time_bins, self.n_event_bins]
        if sum(v is not None for v in chosen) != 1:
            raise ValueError("set exactly one of time_window, event_count, n_time_bins and n_event_bins")
        if any(v is not None and v <= 0 for v in chosen):
            raise ValueError("the frame size (time window, event count or number of bins) must be positive")
        if self.overlap < 0:
            raise ValueError(f"overlap must be 0 or positive, got {self.overlap}")
        if self.time_window is not None and self.overlap >= self.time_window:
            raise ValueError(
                f"overlap ({self.overlap} us) must be shorter than the time window ({self.time_window} us)"
            )
        if self.event_count is not None and self.overlap >= self.event_count:
            raise ValueError(
                f"overlap ({self.overlap} events) must be smaller than the event count ({self.event_count})"
            )
        if (self.n_time_bins or self.n_event_bins) and self.overlap >= 1:
            raise ValueError(f"with a number of bins, overlap is a fraction of a bin below 1, got {self.overlap}")
        if self.include_incomplete and (self.n_time_bins or self.n_event_bins):
            raise ValueError("include_incomplete applies to time windows and event counts, not to a number of bins")

    def slices(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(start, end)`` event indices of each frame of a recording with times ``t``."""
        n_events = len(t)
        if n_events == 0:  # tonic: one empty frame, or the number of bins
            frames = self.n_time_bins or self.n_event_bins or 1
            return np.zeros(frames, np.int64), np.zeros(frames, np.int64)
        if self.time_window is not None:  # SliceByTime
            stride = self.time_window - self.overlap
            duration = t[-1] - t[0]
            rounding = np.ceil if self.include_incomplete else np.floor
            n = max(int(rounding((duration - self.time_window) / stride) + 1), 1)
            starts = np.arange(n) * stride + t[0]
            return np.searchsorted(t, starts), np.searchsorted(t, starts + self.time_window)
        if self.event_count is not None:  # SliceByEventCount
            count = min(self.event_count, n_events)
            stride = self.event_count - self.overlap
            rounding = np.ceil if self.include_incomplete else np.floor
            n = int(rounding((n_events - count) / stride) + 1)
            starts = (np.arange(n) * stride).astype(np.int64)
            return starts, starts + count
        if self.n_time_bins is not None:  # SliceByTimeBins
            window = (t[-1] - t[0]) // self.n_time_bins * (1 + self.overlap)
            starts = np.arange(self.n_time_bins) * (window * (1 - self.overlap)) + t[0]
            return np.searchsorted(t, starts), np.searchsorted(t, starts + window)
        count = int(n_events // self.n_event_bins * (1 + self.overlap))  # SliceByEventBins
        starts = np.arange(self.n_event_bins) * int(count * (1 - self.overlap))
        return starts, starts + count


@dataclass
class EventBatch:
    """A batch of recordings, each event already assigned its cell of the frame tensor.

    ``cells`` (int64, one per event and frame it falls in) index the flattened frame tensor of
    ``shape`` ``(T, B, P, H, W)``: time-major, padded with empty frames to the batch's longest
    recording; ``lengths`` holds each recording's own number of frames. The DataLoader and the
    trainer move it with :meth:`to` / :meth:`pin_memory`; :meth:`frames` makes the tensor.
    """

    cells: Any  # torch.Tensor [M], int64
    shape: tuple[int, int, int, int, int]
    lengths: Any  # torch.Tensor [B], int64

    def to(self, device, non_blocking: bool = False) -> EventBatch:
        return EventBatch(
            self.cells.to(device, non_blocking=non_blocking),
            self.shape,
            self.lengths.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> EventBatch:
        return EventBatch(self.cells.pin_memory(), self.shape, self.lengths.pin_memory())

    @property
    def device(self):
        return self.cells.device

    def frames(self, dtype=None):
        """Event counts ``[T, B, P, H, W]`` on the batch's device (float32 unless ``dtype``)."""
        import torch

        dtype = dtype or torch.float32
        out = torch.zeros(int(np.prod(self.shape)), dtype=dtype, device=self.cells.device)
        # accumulate=True adds repeated cells (several events in one pixel and frame) instead of
        # keeping one; counts stay exact in float32 (< 2**24 events per cell)
        out.index_put_(
            (self.cells,), torch.ones((), dtype=dtype, device=out.device).expand(len(self.cells)), accumulate=True
        )
        return out.view(self.shape)


def frame_cells(
    recordings: Sequence[np.ndarray], slicing: FrameSlicing, sensor_size: tuple[int, int, int]
) -> tuple[np.ndarray, tuple[int, ...], np.ndarray]:
    """``(cells, shape, lengths)`` of :class:`EventBatch` for ``recordings`` (numpy)."""
    width, height, polarities = sensor_size
    batch = len(recordings)
    parts, lengths = [], np.zeros(batch, np.int64)
    for b, events in enumerate(recordings):
        starts, ends = slicing.slices(events["t"])
        lengths[b] = len(starts)
        # python slicing (tonic's events[start:end]) clips at the end of the recording
        starts, ends = np.minimum(starts, len(events)), np.minimum(ends, len(events))
        sizes = np.maximum(ends - starts, 0)
        total = int(sizes.sum())
        if total == 0:
            continue
        # event index and frame of every (event, frame) pair: the frames' index ranges laid end to end
        first = np.cumsum(sizes) - sizes
        index = np.repeat(starts - first, sizes) + np.arange(total)
        frame = np.repeat(np.arange(len(starts)), sizes)
        pixel = events["y"][index] * width + events["x"][index]
        if polarities > 1:  # tonic: a single-polarity sensor has polarity 0
            pixel += events["p"][index] * (height * width)
        parts.append((frame * batch + b) * (polarities * height * width) + pixel)
    steps = int(lengths.max(initial=1))
    cells = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return cells.astype(np.int64, copy=False), (steps, batch, polarities, height, width), lengths


@dataclass(frozen=True)
class EventCollate:
    """DataLoader ``collate_fn`` for ``(recording, label)`` samples -> ``(EventBatch, labels)``.

    A picklable object (not a closure), so DataLoader workers started with ``spawn`` can use it.
    """

    slicing: FrameSlicing
    sensor_size: tuple[int, int, int]  # tonic's (W, H, P)

    def __call__(self, samples):
        import torch

        recordings = [np.asarray(events) for events, _ in samples]
        cells, shape, lengths = frame_cells(recordings, self.slicing, self.sensor_size)
        labels = torch.tensor([int(label) for _, label in samples], dtype=torch.int64)
        return EventBatch(torch.from_numpy(cells), shape, torch.from_numpy(lengths)), labels


def collate_events(samples, slicing: FrameSlicing, sensor_size: tuple[int, int, int]):
    """``EventCollate(slicing, sensor_size)(samples)``."""
    return EventCollate(slicing, sensor_size)(samples)
