"""``tensorboard``: each epoch's scalars and per-layer firing-rate histograms in ``RUN_DIR/tensorboard/``.

Written with ``torch.utils.tensorboard`` (needs the ``tensorboard`` package:
``pip install 'snnframe[tensorboard]'``); view with ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

from snnframe.contracts import EpochReport, LoggerContext

INSTALL_HINT = "pip install 'snnframe[tensorboard]'"
LOG_DIR = "tensorboard"


def scalars(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Every number of a metrics row by tag, nested objects joined with ``/`` (``firing_rates/1:leaky``).

    ``epoch`` (the step) and booleans, strings, ``null`` and non-finite numbers are left out.
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        tag = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(scalars(value, f"{tag}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and tag != "epoch":
            if math.isfinite(value):
                out[tag] = float(value)
    return out


class TensorBoardLogger:
    """Scalars per epoch (every number of the ``metrics.jsonl`` row: losses, accuracies, lr, seconds,
    ``firing_rates/<layer>``) and, with ``histograms``, each spiking layer's per-neuron firing
    rates as a histogram (``firing_rate_per_neuron/<layer>``); the step is the epoch."""

    def __init__(self, *, histograms: bool = True, flush_secs: int = 30):
        if importlib.util.find_spec("tensorboard") is None:
            raise ValueError(f"the tensorboard logger needs the tensorboard package: {INSTALL_HINT}")
        if flush_secs < 1:
            raise ValueError(f"flush_secs must be at least 1, got {flush_secs}")
        self.histograms, self.flush_secs = histograms, flush_secs
        self.writer: Any = None
        self.ctx: LoggerContext | None = None

    def start(self, ctx: LoggerContext) -> None:
        self.ctx = ctx

    def _open(self, first_epoch: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # find_spec saw it, but it does not import (a broken install)
            raise RuntimeError(f"cannot import torch.utils.tensorboard ({exc}); {INSTALL_HINT}") from exc
        log_dir = Path(self.ctx.run_dir) / LOG_DIR
        # a resumed run drops the events of epochs after its checkpoint: they are trained again
        purge = first_epoch if self.ctx.resume else None
        self.writer = SummaryWriter(log_dir=str(log_dir), flush_secs=self.flush_secs, purge_step=purge)

    def log_epoch(self, report: EpochReport) -> None:
        if self.writer is None:
            self._open(report.epoch)
        for tag, value in scalars(report.metrics).items():
            self.writer.add_scalar(tag, value, report.epoch)
        if self.histograms:
            for name, values in report.histograms.items():
                if len(values):
                    self.writer.add_histogram(f"firing_rate_per_neuron/{name}", values, report.epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
