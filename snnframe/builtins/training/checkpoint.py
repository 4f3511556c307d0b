"""Checkpoint files: atomic writes, ``weights_only`` loading, RNG states.

Everything stored is a tensor, dict, list, number, string or None, so
``torch.load(..., weights_only=True)`` can read it back.
"""

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnframe.builtins.training.errors import ResumeError

# 2: no "sampler" generator state in "rng" (the shuffle generator is reseeded every epoch)
FORMAT_VERSION = 2

# What ``_Run._save`` writes besides ``format``; a file lacking one cannot be resumed.
REQUIRED_KEYS = ("epoch", "model", "optimizer", "scheduler", "scaler", "history", "rng")
EPOCH_FILE = re.compile(r"epoch_(\d+)\.pt")


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` atomically: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated file, a foreign pickle, ...
        raise ResumeError(f"cannot load checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or not isinstance(state.get("format"), int):
        raise ResumeError(f"{path} is not a snnframe bptt checkpoint (format {FORMAT_VERSION})")
    if state["format"] != FORMAT_VERSION:
        raise ResumeError(
            f"{path} has checkpoint format {state['format']}, from another snnframe version; this one resumes "
            f"format {FORMAT_VERSION} only. Finish the run with the snnframe version that started it, or start "
            "a new run (the file's weights still load: torch.load(path, weights_only=True)['model'])"
        )
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise ResumeError(
            f"{path} lacks {', '.join(missing)}: it is incomplete or was not written by the bptt trainer"
        )
    return state


def newest_epoch_checkpoint(directory: Path) -> Path | None:
    """The ``epoch_<k>.pt`` in ``directory`` with the largest ``k``, if any."""
    if not directory.is_dir():
        return None
    found = [(int(m[1]), p) for p in directory.iterdir() if (m := EPOCH_FILE.fullmatch(p.name)) and p.is_file()]
    return max(found)[1] if found else None


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def capture_rng() -> dict[str, Any]:
    """All random states a resumed run needs, as weights_only-loadable values."""
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
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


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        # a run resumed on a machine with fewer GPUs restores what it can
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py_state = state["python"]
    random.setstate((py_state["version"], tuple(py_state["state"].tolist()), py_state["gauss_next"]))
