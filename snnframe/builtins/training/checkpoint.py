"""The bptt trainer's checkpoints: atomic writes, ``weights_only`` loading, each process's random streams.

Everything stored is a tensor, dict, list, number, string or None, so
``torch.load(..., weights_only=True)`` can read it back. The core keys and the format version
are the run directory's (:mod:`snnframe.rundir`); the optimizer, scheduler, scaler and random
states are this trainer's own.
"""

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnframe.builtins.training.errors import ResumeError
from snnframe.io import atomic_writer, temporary_path, write_error
from snnframe.rundir import CHECKPOINT_FORMAT, CHECKPOINT_KEYS, CheckpointError, read_checkpoint

FORMAT_VERSION = CHECKPOINT_FORMAT
# What ``Session.save`` writes; a file lacking one cannot be resumed.
REQUIRED_KEYS = (*CHECKPOINT_KEYS, "optimizer", "scheduler", "scaler", "rng")


class _Recording:
    """A file object that remembers the ``OSError`` of a failed write.

    ``torch.save`` turns one into ``RuntimeError: ... unexpected pos``; the disk-full behind it
    is what the user needs to hear.
    """

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data):
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self):
        return self.f.flush()


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` atomically and durably: a reader sees the old file or the new one.

    A failed write (disk full, ...) leaves the old file and no temporary one, and raises a
    ``WriteError`` naming ``path`` and the cause.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path.parent, exc, "create") from None
    with atomic_writer(path, fsync=True) as f:
        recording = _Recording(f)
        try:
            torch.save(state, recording)
        except RuntimeError:
            if recording.error is not None:
                raise recording.error from None
            raise


def copy_checkpoint(source: Path, path: Path) -> None:
    """Give ``path`` the content of the finished file ``source`` (a hard link if possible), atomically.

    ``source`` is later replaced, never rewritten in place, so a link stays a true copy.
    """
    tmp = temporary_path(path)
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:  # no hard links on this file system
            shutil.copyfile(source, tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint this trainer can resume from (``ResumeError`` naming the file if not)."""
    try:
        return read_checkpoint(path, REQUIRED_KEYS)
    except CheckpointError as exc:
        raise ResumeError(f"cannot resume: {exc}") from None


def process_seed(seed: int, rank: int, epoch: int = 0) -> int:
    """A seed for process ``rank``'s random streams: distinct per (seed, rank, epoch), in [0, 2**63)."""
    return int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1, np.uint64)[0]) >> 1


def seed_process(seed: int) -> None:
    """Seed this process's torch (CPU and every CUDA device), NumPy and Python ``random`` streams."""
    torch.manual_seed(seed)  # CUDA lazily: a CPU run does not initialise it
    np.random.seed([seed & 0xFFFFFFFF, seed >> 32])
    random.seed(seed)


def capture_rng(device: torch.device) -> dict[str, Any]:
    """This process's random states, as weights_only-loadable values.

    Of CUDA only ``device``'s generator, and only when training on it: each process
    of a distributed run owns one device, and a CPU run never initialises CUDA.
    """
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "python": {
            "version": int(py_version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
    }


def rng_states(value: Any) -> list[dict[str, Any]]:
    """A checkpoint's ``"rng"``: one :func:`capture_rng` dict per process (KeyError/TypeError if not)."""
    states = [dict(state) for state in value]
    for rank, state in enumerate(states):
        missing = [key for key in ("torch", "cuda", "numpy", "python") if key not in state]
        if missing:
            raise KeyError(f"process {rank}'s random state lacks {', '.join(missing)}")
    return states


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`capture_rng` captured.

    ``device``'s CUDA generator keeps its state if the checkpoint has none for it
    (written by a run on CPU).
    """
    np_state, py_state = state["numpy"], state["python"]
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    random.setstate((py_state["version"], tuple(py_state["state"].tolist()), py_state["gauss_next"]))
