"""Errors a training run can stop with.

They derive from the core's ``snnframe.errors.TrainingError``, so the CLI
prints their message without a traceback (and from ``RuntimeError`` for code
that catches that). No torch import here: the CLI may import this cheaply.
"""

from snnframe import errors


class TrainingError(errors.TrainingError, RuntimeError):
    """A training run could not go on; the message says why and what to do."""


class TrainingDiverged(TrainingError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class ResumeError(TrainingError):
    """``--resume`` could not load the run's ``checkpoints/last.pt``."""


class DeviceUnavailable(TrainingError):
    """``train.device`` names a device this machine does not have."""
