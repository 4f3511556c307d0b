"""Preemption: SIGTERM (what cluster schedulers send before they kill a job) stops training cleanly.

While a :class:`StopRequest` is active, SIGTERM does not end the process: it sets
:attr:`StopRequest.signal`. The training loop finishes the batch it is in, writes a mid-epoch
checkpoint and stops with :class:`~snnframe.errors.Preempted`; ``--resume`` continues from that
batch. SIGINT (Ctrl-C) keeps Python's behaviour (``KeyboardInterrupt``: the run continues from
its last epoch checkpoint). Signal handlers can only be set in the main thread; elsewhere SIGTERM
keeps its default action.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any


class StopRequest:
    """Catches SIGTERM while active (a context manager); :attr:`signal` names it once it came."""

    def __init__(self, log: logging.Logger):
        self.log = log
        self.signal: str | None = None
        self._previous: Any = None
        self._installed = False

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is None:
            self.log.warning("%s received: finishing this batch, then saving a checkpoint", signal.Signals(signum).name)
        self.signal = signal.Signals(signum).name

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
            self._installed = False
