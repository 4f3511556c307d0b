"""The ``frames`` encoder: event recordings to event-count frames ``[T, B, P, H, W]`` (the seed's "spike" input).

Three places, so that the per-sample work is small and the dense work happens once per batch:

- :class:`Denoise`, the sample transform, runs before the data sets' disk cache: the cache
  stores denoised *events* (compact), and augmentation moves events afterwards;
- the collation (:class:`snnframe.events.EventCollate`, DataLoader workers) assigns each event
  its frame with tonic's ``ToFrame`` slicing rules;
- :meth:`Frames.__call__` bins the whole batch with one scatter-add on the training device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snnframe.contracts import DatasetInfo
from snnframe.events import EventBatch, EventCollate, EventTransform, FrameSlicing


def denoise(events: np.ndarray, filter_time: float) -> np.ndarray:
    """``tonic.transforms.Denoise(filter_time)`` without its per-event Python loop.

    Keeps an event when one of its 4 neighbouring pixels (inside the box spanned
    by the recording) last fired less than ``filter_time`` before it, counting
    pixels that have not fired yet as having fired at 0 -- exactly tonic's rule
    (tests compare the two); about 7x faster on N-MNIST-sized recordings.
    """
    n = len(events)
    if n == 0:
        return events[:0].copy()
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    t = events["t"]
    width, height = int(x.max()) + 1, int(y.max()) + 1
    index = np.arange(n)
    pixel = x * height + y
    # Events sorted by (pixel, index): a search finds, for each event, the last
    # earlier event at a given pixel.
    order = np.lexsort((index, pixel))
    keys = pixel[order] * n + order
    keep = np.zeros(n, dtype=bool)
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nx, ny = x + dx, y + dy
        inside = (nx >= 0) & (nx < width) & (ny >= 0) & (ny < height)
        neighbour = nx * height + ny
        pos = np.searchsorted(keys, neighbour * n + index) - 1
        previous = order[np.maximum(pos, 0)]
        fired = (pos >= 0) & (pixel[previous] == neighbour)
        last = np.where(fired, t[previous], 0)
        keep |= inside & (last + filter_time > t)
    return events[keep]


@dataclass(frozen=True)
class Denoise(EventTransform):
    """tonic's ``Denoise(filter_time=denoise_us)`` on a recording (0: the recording unchanged).

    An event-to-event transform: data sets cache its output. Its ``repr`` names its parameter
    (the cache key).
    """

    denoise_us: int = 10000

    def __call__(self, events: np.ndarray) -> np.ndarray:
        if self.denoise_us and len(events):
            return denoise(events, self.denoise_us)
        return events


class Frames:
    """Event-count frames of ``time_window_us`` (default 1 ms, the seed's), of ``event_count``
    events, or ``n_time_bins`` / ``n_event_bins`` frames per recording -- tonic's ``ToFrame``
    modes, with its ``overlap`` (microseconds, events, or a fraction of a bin) and
    ``include_incomplete`` -- after tonic's ``Denoise`` with ``denoise_us`` (default 10 ms,
    the seed's; 0 turns it off).

    With ``time_window_us`` or ``event_count`` the number of frames follows the recording;
    a batch is padded with empty frames to its longest recording.
    """

    modality = "events"

    def __init__(
        self,
        *,
        time_window_us: int | None = None,
        n_time_bins: int | None = None,
        event_count: int | None = None,
        n_event_bins: int | None = None,
        overlap: float = 0,
        include_incomplete: bool = False,
        denoise_us: int = 10000,
    ):
        sizes = {
            "time_window_us": time_window_us,
            "n_time_bins": n_time_bins,
            "event_count": event_count,
            "n_event_bins": n_event_bins,
        }
        chosen = [name for name, value in sizes.items() if value is not None]
        if len(chosen) > 1:
            raise ValueError(
                f"set either time_window_us, n_time_bins, event_count or n_event_bins, not {' and '.join(chosen)}"
            )
        if not chosen:
            time_window_us = 1000
        for name, value in sizes.items():
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if denoise_us < 0:
            raise ValueError(f"denoise_us must be 0 (off) or positive, got {denoise_us}")
        self.time_window_us = time_window_us
        self.n_time_bins = n_time_bins
        self.event_count = event_count
        self.n_event_bins = n_event_bins
        self.denoise_us = denoise_us
        self.slicing = FrameSlicing(  # raises ValueError for an overlap that does not fit
            time_window=time_window_us,
            event_count=event_count,
            n_time_bins=n_time_bins,
            n_event_bins=n_event_bins,
            overlap=overlap,
            include_incomplete=include_incomplete,
        )

    def sample_transform(self, info: DatasetInfo) -> Denoise:
        return Denoise(denoise_us=self.denoise_us)

    def collate_fn(self, info: DatasetInfo) -> EventCollate:
        return EventCollate(self.slicing, tuple(info.shape))

    def input_shape(self, info: DatasetInfo) -> tuple[int, ...]:
        width, height, polarities = info.shape
        return (polarities, height, width)

    def __call__(self, batch: EventBatch):
        return batch.frames()
