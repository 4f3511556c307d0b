"""Training augmentation on event coordinates (the event data sets' ``augment`` keys).

Each recording is moved as a whole, before it is framed: about a thousand coordinates
instead of hundreds of dense frames. The transformations are tonic's (``DropEvent``,
``RandomFlipLR``/``UD``, ``RandomFlipPolarity``, ``SpatialJitter``, ``TimeJitter``) plus a
rotation about the sensor centre like torchvision's ``RandomRotation`` on frames (the seed's
±10°). Random numbers come from torch's generator, which the trainer seeds per process and
DataLoader worker, so runs repeat and workers differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from snnframe.events import EVENT_DTYPE


@dataclass(frozen=True)
class EventAugmentation:
    """Random changes to one recording, in this order (each off at its default):

    - ``drop_events``: drop this fraction of the events, chosen at random (tonic's ``DropEvent(p)``);
    - ``flip_lr`` / ``flip_ud`` / ``flip_polarity``: the probability of mirroring the recording
      left-right / upside down, or of swapping its polarities;
    - ``rotation_deg``: rotate by an angle drawn uniformly from ±``rotation_deg`` degrees
      (counter-clockwise as displayed, like torchvision) about the sensor centre; each event
      moves to the pixel nearest its rotated position, events leaving the sensor are dropped;
    - ``spatial_jitter``: move each event by Gaussian noise of this standard deviation in
      pixels, rounded; events leaving the sensor are dropped (tonic's ``clip_outliers``);
    - ``time_jitter_us``: shift each event's time by Gaussian noise of this standard deviation;
      events before 0 are dropped and the recording is sorted again.
    """

    sensor_size: tuple[int, int, int]  # tonic's (W, H, P)
    rotation_deg: float = 0.0
    spatial_jitter: float = 0.0
    time_jitter_us: float = 0.0
    drop_events: float = 0.0
    flip_lr: float = 0.0
    flip_ud: float = 0.0
    flip_polarity: float = 0.0

    def __post_init__(self):
        for name in ("rotation_deg", "spatial_jitter", "time_jitter_us"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (off) or positive, got {getattr(self, name)}")
        if self.rotation_deg > 180:
            raise ValueError(f"rotation_deg must be at most 180, got {self.rotation_deg}")
        if not 0 <= self.drop_events < 1:
            raise ValueError(f"drop_events is a fraction in [0, 1), got {self.drop_events}")
        for name in ("flip_lr", "flip_ud", "flip_polarity"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.sensor_size[1] == 1 and (self.rotation_deg or self.flip_ud or self.spatial_jitter):
            raise ValueError("rotation_deg, flip_ud and spatial_jitter need a two-dimensional sensor")

    @property
    def active(self) -> bool:
        return any(
            (
                self.rotation_deg,
                self.spatial_jitter,
                self.time_jitter_us,
                self.drop_events,
                self.flip_lr,
                self.flip_ud,
                self.flip_polarity,
            )
        )

    def __call__(self, events: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if rng is None:
            import torch

            rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        width, height, _ = self.sensor_size
        events = events.copy()
        if self.drop_events:
            dropped = rng.choice(len(events), int(self.drop_events * len(events) + 0.5), replace=False)
            events = np.delete(events, dropped)
        if self.flip_lr and rng.random() < self.flip_lr:
            events["x"] = width - 1 - events["x"]
        if self.flip_ud and rng.random() < self.flip_ud:
            events["y"] = height - 1 - events["y"]
        if self.flip_polarity and rng.random() < self.flip_polarity:
            events["p"] = 1 - events["p"]
        if self.rotation_deg or self.spatial_jitter:
            x, y = events["x"].astype(np.float64), events["y"].astype(np.float64)
            if self.rotation_deg:
                x, y = rotate(x, y, rng.uniform(-self.rotation_deg, self.rotation_deg), width, height)
            if self.spatial_jitter:
                x = x + rng.normal(0.0, self.spatial_jitter, len(x))
                y = y + rng.normal(0.0, self.spatial_jitter, len(y))
            x, y = np.rint(x), np.rint(y)
            inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            events = events[inside]
            events["x"], events["y"] = x[inside], y[inside]
        if self.time_jitter_us:
            t = np.rint(events["t"] + rng.normal(0.0, self.time_jitter_us, len(events)))
            keep = t >= 0
            events, t = events[keep], t[keep]
            events["t"] = t
            events = events[np.argsort(events["t"], kind="stable")]
        return events.astype(EVENT_DTYPE, copy=False)


def rotate(x: np.ndarray, y: np.ndarray, degrees: float, width: int, height: int):
    """Pixel coordinates rotated by ``degrees`` about the sensor centre, counter-clockwise as
    displayed (y pointing down), the direction of ``torchvision.transforms.functional.rotate``."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    dx, dy = x - cx, y - cy
    return cx + dx * cos + dy * sin, cy - dx * sin + dy * cos


def augmentation(augment: bool, sensor_size, **amounts) -> EventAugmentation | None:
    """The data set's augmentation when ``augment`` is on and does anything, else ``None``
    (the amounts are checked either way, so a bad value fails in ``snnframe validate``)."""
    built = EventAugmentation(tuple(sensor_size), **amounts)
    return built if augment and built.active else None
