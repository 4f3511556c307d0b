"""The run directory: what a run leaves there, and reading it back with :func:`load_run`.

``<experiment.out_dir>/<experiment.name>/`` holds ``recipe.toml`` (every setting, resolved),
``metrics.jsonl`` (one JSON object per epoch), ``training.log``, ``checkpoints/`` (``last.pt``
and ``epoch_<k>.pt``) and the visualizers' files. A checkpoint is a dict that
``torch.load(..., weights_only=True)`` reads, with at least the keys of :data:`CHECKPOINT_KEYS`;
trainers add their own (optimizer, random states, ...).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import attrs

from snnframe.errors import RunDirError, SnnframeError

RECIPE_FILE = "recipe.toml"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "training.log"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"
EPOCH_FILE = re.compile(r"epoch_(\d+)\.pt")

# 2: no "sampler" generator state in "rng" (the shuffle generator is reseeded every epoch)
# 3: "rng" is a list, one state per process (rank), each with its own device's CUDA state only
# 4: format 3 written in the middle of an epoch (after a SIGTERM): "epoch" is the last finished
#    epoch and "batch" the batches of the next one trained since, with the trainer's "partial" state
CHECKPOINT_FORMAT = 3
MID_EPOCH_FORMAT = 4
READABLE_FORMATS = (CHECKPOINT_FORMAT, MID_EPOCH_FORMAT)
CHECKPOINT_KEYS = ("format", "epoch", "model", "history")


class CheckpointError(SnnframeError):
    """A checkpoint file cannot be used; the message names it, says why and what could be used instead."""

    exit_code = 1


def epoch_checkpoints(directory: Path) -> list[Path]:
    """The ``epoch_<k>.pt`` files in ``directory``, newest (largest ``k``) first."""
    if not directory.is_dir():
        return []
    found = [(int(m[1]), p) for p in directory.iterdir() if (m := EPOCH_FILE.fullmatch(p.name)) and p.is_file()]
    return [p for _, p in sorted(found, reverse=True)]


def metrics_line(row: dict[str, Any]) -> str:
    """One line of ``metrics.jsonl``: strict JSON, where a number that is not finite is ``null``."""
    return json.dumps(finite(row), allow_nan=False)


def finite(value: Any) -> Any:
    """``value`` with every float that is not finite (nan, inf) replaced by ``None`` (JSON's null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def read_checkpoint(path: Path, required: tuple[str, ...] = CHECKPOINT_KEYS) -> dict[str, Any]:
    """The state saved in ``path``, loaded with ``weights_only=True`` onto the CPU.

    A file that is missing, empty, truncated, damaged (its data fails the zip archive's CRC check),
    not a checkpoint, holds objects that are not plain data (loading those could run code), lacks
    one of ``required`` or has another format version is a :class:`CheckpointError`: one line that
    names the file, what is wrong with it and which ``epoch_<k>.pt`` beside it could be used instead.
    """
    try:
        return _read_checkpoint(path, required)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}{_alternatives(path, required)}") from None


def _read_checkpoint(path: Path, required: tuple[str, ...]) -> dict[str, Any]:
    import pickle
    import zipfile

    import torch

    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes: a write was cut short?)")
    try:
        with zipfile.ZipFile(path) as archive:  # torch.save's format; its reader skips the CRCs
            damaged = archive.testzip()
    except zipfile.BadZipFile:
        raise CheckpointError(
            f"{path} is truncated or not a PyTorch checkpoint ({size} bytes, not a complete zip archive)"
        ) from None
    except (OSError, EOFError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} cannot be read ({_safe(exc)})") from None
    if damaged is not None:
        raise CheckpointError(
            f"{path} is damaged: the data of {damaged} fails its CRC check (changed or corrupted after it was written)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():
            raise CheckpointError(
                f"{path} holds objects other than tensors and plain data; it was refused, because loading it "
                "could run code. It was not written by snnframe"
            ) from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint of plain data (unreadable pickle data)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path} is truncated or not a PyTorch checkpoint ({_safe(exc)})") from None
    if not isinstance(state, dict) or not isinstance(state.get("format"), int):
        raise CheckpointError(f"{path} is not a snnframe checkpoint (format {CHECKPOINT_FORMAT})")
    if state["format"] not in READABLE_FORMATS:
        raise CheckpointError(
            f"{path} has checkpoint format {state['format']}, from another snnframe version; this one reads "
            f"format {CHECKPOINT_FORMAT} only (and its mid-epoch form, format {MID_EPOCH_FORMAT}). Finish the run "
            "with the snnframe version that started it, or start a new run (the file's weights still load: "
            "torch.load(path, weights_only=True)['model'])"
        )
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: it is incomplete or was not written by snnframe")
    return state


def _safe(exc: BaseException) -> str:
    """An exception's first line, minus PyTorch's advice to load with ``weights_only=False`` (which runs code)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "weights_only" in first:
        return type(exc).__name__
    return first.split(". This is an internal")[0].split(". If you are seeing this")[0]


def _alternatives(path: Path, required: tuple[str, ...]) -> str:
    """``; epoch_3.pt can be used instead: ... (cp ...)``, checking the newest few ``epoch_<k>.pt`` beside ``path``."""
    candidates = [p for p in epoch_checkpoints(path.parent) if p != path]
    if not candidates:
        return "; there is no epoch_<k>.pt file beside it to use instead"
    unusable = []
    for candidate in candidates[:3]:  # reading one costs a load: the newest few are enough
        try:
            if path.exists() and os.path.samefile(candidate, path):
                unusable.append(f"{candidate.name} is the same file (a hard link)")
                continue
            _read_checkpoint(candidate, required)
        except (CheckpointError, OSError):
            unusable.append(f"{candidate.name} cannot be read either")
            continue
        before = f"; {', '.join(unusable)}" if unusable else ""
        last = path.parent / LAST_CHECKPOINT
        return (
            f"{before}; {candidate.name} can be used instead: to continue from it, copy it to {LAST_CHECKPOINT} "
            f"(cp {candidate} {last})"
        )
    return f"; {', '.join(unusable)}; older epoch_<k>.pt files may still be usable"


@attrs.define
class LoadedRun:
    """A run read back from its directory (see :func:`load_run`)."""

    run_dir: Path
    recipe: Any  # snnframe.recipe.Recipe, resolved
    history: list[dict[str, Any]]  # the checkpointed rows of metrics.jsonl
    epoch: int  # epochs trained
    model: Any  # torch.nn.Module on the CPU, in eval mode, with the checkpoint's weights
    dataset: Any
    encoder: Any
    checkpoint: Path
    # batches of epoch ``epoch + 1`` trained on top (a mid-epoch checkpoint, written on SIGTERM); 0 otherwise
    batch: int = 0
    loss: Any = None  # the recipe's loss: loss(spikes [T, B, C], targets [B]) -> scalar

    @property
    def info(self) -> Any:
        return self.dataset.info

    def splits(self) -> tuple[Any, Any]:
        """Train and test sets as the run saw them (encoder transform, ``data.subset``/``test_subset``)."""
        from snnframe.data import prepared_splits

        data = self.recipe.data
        return prepared_splits(self.dataset, self.encoder, data.subset, data.test_subset)


def load_run(run_dir: str | Path, overrides: list[str] = (), plugins: Any = None) -> LoadedRun:
    """Load a finished or interrupted run: its resolved recipe, history and trained model (CPU).

    ``overrides`` (``"data.root=/data"``) change the saved recipe before the components are
    built, e.g. where the data set lives on this machine. The model gets the weights of
    ``checkpoints/last.pt`` (read with ``weights_only=True``). A missing or incomplete run
    directory, or a checkpoint from another format version, is a :class:`SnnframeError`.

    A run stopped by SIGTERM in the middle of an epoch has a mid-epoch ``last.pt``: the model
    then has the newest weights, ``epoch`` and ``history`` count the finished epochs, and
    ``batch`` the batches of the next epoch trained since (its metrics row is not written yet).

        >>> run = snnframe.load_run("runs/quickstart")
        >>> run.epoch, run.history[-1]["test_acc"]
        >>> spikes = run.model(run.encoder(images))
    """
    from snnframe.recipe import apply_overrides, read
    from snnframe.run import build

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is not a run directory (it does not exist or is a file)")
    recipe_file = run_dir / RECIPE_FILE
    if not recipe_file.is_file():
        raise RunDirError(f"{run_dir} holds no run: {RECIPE_FILE} is missing")
    last = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    if not last.is_file():
        kept = epoch_checkpoints(run_dir / CHECKPOINT_DIR)
        hint = f"; {kept[0]} is there: copy it to {last} to load that epoch" if kept else ""
        raise RunDirError(
            f"{run_dir} has no {CHECKPOINT_DIR}/{LAST_CHECKPOINT}: the run has not finished an epoch{hint}"
        )
    data = apply_overrides(read(recipe_file), list(overrides))
    data.setdefault("experiment", {}).update(out_dir=str(run_dir.parent), name=run_dir.name)
    built = build(data, str(recipe_file), plugins=plugins)
    state = read_checkpoint(last)
    model = built.components.model
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise RunDirError(f"{last} does not fit the model its recipe builds ({first})") from None
    model.eval()
    return LoadedRun(
        run_dir,
        built.recipe,
        [dict(row) for row in state["history"]],
        int(state["epoch"]),
        model,
        built.components.dataset,
        built.components.encoder,
        last,
        int(state.get("batch", 0)),
        built.components.loss,
    )
