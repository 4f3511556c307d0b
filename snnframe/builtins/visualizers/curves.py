"""``curves``: the seed's ``train_loss.png`` and ``test_acc.png``, one point per epoch."""

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from snnframe.contracts import VisualContext
from snnframe.io import atomic_path


class Curves:
    """Loss and accuracy per epoch from ``metrics.jsonl``'s rows (train and test)."""

    def __init__(self, *, dpi: int = 120):
        if dpi < 10:
            raise ValueError(f"dpi must be at least 10, got {dpi}")
        self.dpi = dpi

    def __call__(self, ctx: VisualContext) -> list[Path]:
        if not ctx.history:
            raise ValueError("no epochs in the history: nothing to plot")
        loss = self._plot(ctx, "train_loss", "test_loss", "Loss", "Training loss", 1.0)
        acc = self._plot(ctx, "test_acc", "train_acc", "Accuracy (%)", "Test accuracy", 100.0)
        return [
            self._save(loss, Path(ctx.run_dir) / "train_loss.png"),
            self._save(acc, Path(ctx.run_dir) / "test_acc.png"),
        ]

    def _plot(self, ctx: VisualContext, main: str, other: str, ylabel: str, title: str, scale: float) -> Figure:
        fig = Figure(figsize=(6, 4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for key, style in ((main, "o-"), (other, "s--")):
            points = [(row["epoch"], row[key] * scale) for row in ctx.history if row.get(key) is not None]
            if points:
                epochs, values = zip(*points)
                ax.plot(epochs, values, style, label=key.replace("_", " "), alpha=1.0 if key == main else 0.6)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        return fig

    def _save(self, fig: Figure, path: Path) -> Path:
        with atomic_path(path) as tmp:  # a full disk leaves the old plot, not a 0-byte one
            fig.savefig(tmp, dpi=self.dpi)
        return path
