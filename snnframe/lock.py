"""One writer per run directory: an exclusive lock held for a run's whole life.

A run holds an OS file lock (``flock`` through the ``filelock`` package) on
``<run_dir>/.snnframe-lock`` from before it writes anything until it ends. The lock belongs to
the process: when it exits, however it exits (even ``kill -9``), the operating system releases
it, so a crashed run never blocks the next one. Beside it the holder records who it is in
``.snnframe-owner`` (process id, host, command, start time), so that a second ``run`` or
``--resume`` of the directory can say which process has it.

Under torchrun only rank 0 writes the run directory, so only rank 0 takes the lock.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from snnframe.errors import RunDirError
from snnframe.io import atomic_write, os_cause

LOCK_FILE = ".snnframe-lock"
OWNER_FILE = ".snnframe-owner"
FILES = (LOCK_FILE, OWNER_FILE)


def _owner_text(run_dir: Path) -> str:
    """Who holds ``run_dir``'s lock, from the record it left (``process 123 on host h (...)``)."""
    try:
        owner = json.loads((run_dir / OWNER_FILE).read_text(encoding="utf-8"))
        text = f"process {int(owner['pid'])} on host {owner['host']}"
        details = [str(owner[k]) for k in ("command", "started") if owner.get(k)]
        return text + (f" ({', started '.join(details)})" if details else "")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not recorded its id yet)"


def _in_use_message(run_dir: Path) -> str:
    owner = _owner_text(run_dir)
    pid = owner.split()[1] if owner.startswith("process ") else None
    stop = f", or stop it (kill {pid}; it saves a checkpoint first)" if pid else ""
    return (
        f"{run_dir} is in use by {owner}: a run directory has one writer at a time, so nothing was changed. "
        f"Wait for that run to end{stop}, or start a new run with --set experiment.name={run_dir.name}-2"
    )


class RunLock:
    """The exclusive lock on a run directory (which must exist): :meth:`acquire` or refuse at once."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._lock: Any = None

    @property
    def held(self) -> bool:
        return self._lock is not None

    def acquire(self) -> None:
        """Take the lock without waiting; :class:`RunDirError` naming the holder if another process has it."""
        import filelock

        lock = filelock.FileLock(str(self.run_dir / LOCK_FILE), timeout=0)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            raise RunDirError(_in_use_message(self.run_dir)) from None
        except OSError as exc:
            raise RunDirError(f"cannot lock the run directory {self.run_dir}: {os_cause(exc)}") from None
        self._lock = lock
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(["snnframe", *sys.argv[1:]]) if sys.argv else "",
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        try:
            atomic_write(self.run_dir / OWNER_FILE, json.dumps(owner) + "\n")
        except OSError:  # the lock holds anyway; only the holder's name for others is missing
            pass

    def release(self) -> None:
        if self._lock is None:
            return
        with contextlib.suppress(OSError):
            (self.run_dir / OWNER_FILE).unlink()
        self._lock.release()
        self._lock = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(run_dir: Path) -> str | None:
    """The refusal a run of ``run_dir`` would get now because another process holds it, else ``None``.

    For ``validate``: writes nothing (the lock file is probed only if it exists, and it holds no data).
    """
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: run itself still refuses
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _in_use_message(Path(run_dir))
    finally:
        os.close(fd)  # closing releases a probe that succeeded
    return None
