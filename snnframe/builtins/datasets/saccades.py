"""A simulated event camera watching images move in N-MNIST's three saccades.

N-MNIST (Orchard et al. 2015) was recorded by an ATIS camera (34x34 pixels
kept) that moved in three ~100 ms saccades -- a triangle -- in front of a
monitor showing MNIST digits.  Here the image moves instead, along the same
triangle (the path tonic's ``stabilize`` undoes: (0,0) -> (3.5,7) -> (7,0) ->
(0,0) pixels, 105 ms per side), and each pixel behaves like a DVS pixel: it
emits an ON (p=1) or OFF (p=0) event whenever its log intensity has moved by
its contrast threshold from the level at its last event.  Thresholds differ
from pixel to pixel (fixed-pattern noise) and a little background activity is
added.  Not modelled: refractory periods, latency jitter, the monitor's refresh.

The simulation steps all images together in ``step_us`` steps (vectorised
numpy) and places each event at the interpolated time its threshold was
crossed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SENSOR = 34  # pixels, square


@dataclass(frozen=True)
class Camera:
    contrast: float = 0.4  # log-intensity change per event
    mismatch: float = 0.05  # relative standard deviation of each pixel's threshold
    background: float = 0.1  # monitor black relative to white ink (keeps log finite)
    noise_hz: float = 0.1  # background activity per pixel
    saccade_us: int = 105_000
    step_us: int = 1000
    origin: float = -0.5  # sensor position of the image's corner at rest (centres the path)

    def key(self) -> dict:
        return asdict(self)


# The image's displacement (x, y) in pixels at the start of each saccade and at the end.
PATH = np.array([[0.0, 0.0], [3.5, 7.0], [7.0, 0.0], [0.0, 0.0]])
PAD = 9  # canvas margin around the image: covers origin + path + the bilinear neighbour


def displacement(t_us: float, camera: Camera) -> tuple[float, float]:
    """The image's (x, y) shift at time ``t_us``, moving at constant speed along each side."""
    side = min(int(t_us // camera.saccade_us), len(PATH) - 2)
    frac = min(t_us / camera.saccade_us - side, 1.0)
    x, y = PATH[side] + frac * (PATH[side + 1] - PATH[side])
    return float(x), float(y)


def _view(canvas: np.ndarray, shift_x: float, shift_y: float) -> np.ndarray:
    """What the sensor sees: the canvas sampled bilinearly at the shifted sensor pixels."""
    # sensor column u sees image column u - shift_x, i.e. canvas column PAD - shift_x + u
    cx, cy = PAD - shift_x, PAD - shift_y
    ix, iy = int(np.floor(cx)), int(np.floor(cy))
    wx, wy = cx - ix, cy - iy
    a = canvas[:, iy : iy + SENSOR + 1, ix : ix + SENSOR + 1]
    rows = (1 - wy) * a[:, :-1] + wy * a[:, 1:]
    return (1 - wx) * rows[:, :, :-1] + wx * rows[:, :, 1:]


def simulate(images: np.ndarray, seed: int, camera: Camera = Camera(), chunk: int = 128):
    """Events of each image in ``images`` (``[N, 28, 28]`` in [0, 1]).

    Returns ``(x, y, t, p, offsets)``: flat arrays sorted by sample then time,
    sample ``i`` being ``[offsets[i]:offsets[i + 1]]``; ``t`` in microseconds.
    Images are simulated ``chunk`` at a time (the arrays then fit in the CPU cache).
    """
    rng = np.random.default_rng(seed)
    parts = [_simulate_chunk(images[i : i + chunk], rng, camera) for i in range(0, len(images), chunk)]
    sample = np.concatenate([s + i * chunk for i, (s, _, _, _) in enumerate(parts)])
    pix, t, p = (np.concatenate([part[k] for part in parts]) for k in (1, 2, 3))
    y, x = np.divmod(pix, SENSOR)
    order = np.argsort(sample * (t.max(initial=0) + 1) + t, kind="stable")
    offsets = np.zeros(len(images) + 1, dtype=np.int64)
    np.cumsum(np.bincount(sample, minlength=len(images)), out=offsets[1:])
    return x[order].astype(np.uint8), y[order].astype(np.uint8), t[order], p[order].astype(np.uint8), offsets


def _simulate_chunk(images: np.ndarray, rng: np.random.Generator, camera: Camera):
    """``(sample, pixel, t, p)`` of the events of ``images``, unsorted."""
    n, h, w = images.shape
    canvas = np.full((n, h + 2 * PAD, w + 2 * PAD), camera.background, dtype=np.float32)
    canvas[:, PAD : PAD + h, PAD : PAD + w] += (1 - camera.background) * images.astype(np.float32)

    def log_view(t_us: float) -> np.ndarray:  # flat: index = sample * SENSOR**2 + pixel
        sx, sy = displacement(t_us, camera)
        return np.log(_view(canvas, sx + camera.origin, sy + camera.origin)).ravel()

    size = n * SENSOR * SENSOR
    thresholds = {}
    for polarity in (1, 0):
        c = camera.contrast * (1 + camera.mismatch * rng.standard_normal(size, dtype=np.float32))
        thresholds[polarity] = np.maximum(c, camera.contrast / 4)
    previous = log_view(0.0)
    # Pixels start at a random phase between two events, as in a camera that has been running.
    reference = previous + (rng.random(size, dtype=np.float32) - 0.5) * camera.contrast

    duration = camera.saccade_us * (len(PATH) - 1)
    events = []
    for start in range(0, duration, camera.step_us):
        current = log_view(start + camera.step_us)
        delta = current - reference
        for polarity, sign in ((1, 1.0), (0, -1.0)):
            c = thresholds[polarity]
            where = np.flatnonzero(sign * delta >= c)
            if where.size == 0:
                continue
            counts = np.floor(sign * delta[where] / c[where]).astype(np.int64)
            idx = np.repeat(where, counts)
            # the k-th threshold crossing (1-based) of this pixel in this step
            k = np.arange(idx.size) - np.repeat(np.cumsum(counts) - counts, counts) + 1
            level = reference[idx] + sign * k * c[idx]
            before, after = previous[idx], current[idx]
            frac = np.clip((level - before) / np.where(after != before, after - before, 1), 0, 1)
            events.append((idx, start + frac * camera.step_us, np.full(idx.size, polarity)))
            reference[where] += sign * counts * c[where]
        previous = current

    # background activity: uniform in space and time, either polarity
    n_noise = int(rng.poisson(camera.noise_hz * SENSOR * SENSOR * duration * 1e-6 * n))
    events.append((rng.integers(0, size, n_noise), rng.random(n_noise) * duration, rng.integers(0, 2, n_noise)))
    idx, t, p = (np.concatenate([e[k] for e in events]) for k in range(3))
    t = np.minimum(np.round(t), duration - 1).astype(np.int64)
    sample, pix = np.divmod(idx, SENSOR * SENSOR)
    return sample, pix, t, p
