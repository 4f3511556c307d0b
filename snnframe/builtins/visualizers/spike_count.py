"""``spike_count_gif``: cumulative output spike counts per class, animated over time.

The look of snnTorch's ``spikeplot.spike_count``: one horizontal bar per class
growing with its spike count, a shaded grid and an orange line scanning the
time axis. Frames are drawn by updating the artists in place and written with
matplotlib's Pillow writer (no ffmpeg).
"""

from pathlib import Path

import numpy as np
import torch
from matplotlib.animation import PillowWriter
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from snnframe.builtins.visualizers.samples import class_names, run_samples
from snnframe.contracts import VisualContext
from snnframe.io import atomic_path

INK = "#333F4B"
BAR = "#007ACC"


class SpikeCountGif:
    """``spike_count_<i>_target<label>.gif`` for the first ``samples`` test inputs."""

    def __init__(
        self, *, samples: int = 5, max_frames: int = 25, fps: int = 10, hold_seconds: float = 1.0, dpi: int = 80
    ):
        if samples < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        if max_frames < 2:
            raise ValueError(f"max_frames must be at least 2, got {max_frames}")
        if fps < 1:
            raise ValueError(f"fps must be at least 1, got {fps}")
        if hold_seconds < 0:
            raise ValueError(f"hold_seconds must be >= 0, got {hold_seconds}")
        if dpi < 10:
            raise ValueError(f"dpi must be at least 10, got {dpi}")
        self.samples, self.max_frames, self.fps, self.hold_seconds, self.dpi = (
            samples,
            max_frames,
            fps,
            hold_seconds,
            dpi,
        )

    def __call__(self, ctx: VisualContext) -> list[Path]:
        spikes, targets = run_samples(ctx, range(min(self.samples, len(ctx.test_set))))
        labels = class_names(ctx)
        paths = []
        for i in range(spikes.shape[1]):
            target = int(targets[i])
            path = Path(ctx.run_dir) / f"spike_count_{i}_target{target}.gif"
            self._animate(spikes[:, i], labels, labels[target] if target < len(labels) else str(target), path)
            paths.append(path)
        return paths

    def frame_steps(self, steps: int) -> list[int]:
        """Time steps shown (spikes counted up to and including each), at most ``max_frames``."""
        shown = np.linspace(0, steps, min(steps, self.max_frames) + 1).round().astype(int)
        return sorted(set(shown.tolist()))

    def _animate(self, spikes: torch.Tensor, labels: list[str], target: str, path: Path) -> None:
        steps, classes = spikes.shape
        cumulative = torch.cat([torch.zeros(1, classes), spikes.cumsum(0)]).numpy()  # row t: first t steps
        rows = np.arange(1, classes + 1)

        fig = Figure(figsize=(6.4, 0.4 * classes + 1.6), facecolor="white")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.set_xlim(0, steps)
        ax.set_ylim(0.4, classes + 0.6)
        ax.set_yticks(rows, labels)
        ax.set_xlabel("Time step", fontweight="bold", color=INK)
        ax.set_ylabel("Labels", fontweight="bold", color=INK)
        ax.tick_params(colors=INK)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.spines["bottom"].set_position(("axes", -0.04))
        ticks = [t for t in ax.get_xticks() if 0 <= t <= steps]
        edges = [0.0, *ticks, float(steps)]
        for start, end in zip(edges[1::2], edges[2::2]):  # snnTorch's grid shader
            ax.axvspan(start, end, facecolor="lightgrey", alpha=0.7, zorder=0)
        bars = ax.hlines(rows, 0, cumulative[0], color=BAR, alpha=0.5, linewidth=8)
        (dots,) = ax.plot(cumulative[0], rows, "o", markersize=8, color=BAR, alpha=0.6)
        scanner = ax.axvline(0, color="tab:orange", linewidth=3)
        prediction = labels[int(np.argmax(cumulative[-1]))] if cumulative[-1].any() else "none"
        ax.set_title(f"target {target}, prediction {prediction}", color=INK)
        fig.tight_layout()

        writer = PillowWriter(fps=self.fps)
        with atomic_path(path) as tmp, writer.saving(fig, str(tmp), dpi=self.dpi):
            for t in self.frame_steps(steps):
                counts = cumulative[t]
                bars.set_segments([[(0, row), (count, row)] for row, count in zip(rows, counts)])
                dots.set_data(counts, rows)
                scanner.set_xdata([t, t])
                writer.grab_frame()
            # hold the final counts before the GIF loops (Pillow merges the identical frames)
            for _ in range(round(self.hold_seconds * self.fps)):
                writer.grab_frame()
