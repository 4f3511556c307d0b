"""The ``frames`` encoder: event recordings to frames ``[T, 2, H, W]`` (the seed's "spike" input).

Framing is per-sample work: :class:`FrameTransform` runs in the data pipeline
(DataLoader workers) and its output is what the datasets' disk cache stores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snnframe.contracts import DatasetInfo


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
class FrameTransform:
    """Events -> optional denoise -> ``int16`` frames ``[T, P, H, W]`` (tonic's ``ToFrame``).

    Its ``repr`` names every parameter: datasets use it as the disk-cache key.
    """

    sensor_size: tuple[int, int, int]  # tonic's (W, H, P)
    time_window_us: int | None = 1000
    n_time_bins: int | None = None
    denoise_us: int = 10000

    def __call__(self, events: np.ndarray) -> np.ndarray:
        from tonic.transforms import ToFrame

        if self.denoise_us and len(events):
            events = denoise(events, self.denoise_us)
        if len(events) == 0:  # tonic's empty frame has W and H swapped; build it here
            width, height, polarities = self.sensor_size
            return np.zeros((self.n_time_bins or 1, polarities, height, width), dtype=np.int16)
        to_frame = ToFrame(
            sensor_size=self.sensor_size,
            time_window=float(self.time_window_us) if self.time_window_us else None,
            n_time_bins=self.n_time_bins,
        )
        return to_frame(events)


class Frames:
    """Accumulate events into frames of ``time_window_us`` (default 1 ms, the seed's)
    or into ``n_time_bins`` equal bins, after tonic's ``Denoise`` with
    ``denoise_us`` (default 10 ms, the seed's; 0 turns it off).

    With ``time_window_us`` the number of frames follows the recording's length;
    batches are padded to the longest recording.
    """

    modality = "events"

    def __init__(self, *, time_window_us: int | None = None, n_time_bins: int | None = None, denoise_us: int = 10000):
        if time_window_us is not None and n_time_bins is not None:
            raise ValueError("set either time_window_us or n_time_bins, not both")
        if time_window_us is None and n_time_bins is None:
            time_window_us = 1000
        if time_window_us is not None and time_window_us <= 0:
            raise ValueError(f"time_window_us must be positive, got {time_window_us}")
        if n_time_bins is not None and n_time_bins <= 0:
            raise ValueError(f"n_time_bins must be positive, got {n_time_bins}")
        if denoise_us < 0:
            raise ValueError(f"denoise_us must be 0 (off) or positive, got {denoise_us}")
        self.time_window_us = time_window_us
        self.n_time_bins = n_time_bins
        self.denoise_us = denoise_us

    def sample_transform(self, info: DatasetInfo) -> FrameTransform:
        return FrameTransform(
            sensor_size=tuple(info.shape),
            time_window_us=self.time_window_us,
            n_time_bins=self.n_time_bins,
            denoise_us=self.denoise_us,
        )

    def collate_fn(self, info: DatasetInfo):
        from tonic.collation import PadTensors

        # pads shorter recordings with empty frames at the end; stacks time-major [T, B, ...]
        return PadTensors(batch_first=False)

    def input_shape(self, info: DatasetInfo) -> tuple[int, ...]:
        width, height, polarities = info.shape
        return (polarities, height, width)

    def __call__(self, frames):
        return frames.float()
