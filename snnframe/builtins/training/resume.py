"""Continuing a run: reading ``last.pt`` into a session, and each process's random streams.

A resumed run on CPU repeats the uninterrupted one exactly: the model, optimizer, scheduler and
scaler states come back, every process gets back its own random states, and the loader's
generator is reseeded per epoch (:func:`epoch_seed`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from snnframe.builtins.training.checkpoint import (
    load_checkpoint,
    process_seed,
    restore_rng,
    rng_states,
    seed_process,
)
from snnframe.builtins.training.errors import ResumeError
from snnframe.builtins.training.optim import stretch_cosine
from snnframe.io import atomic_write
from snnframe.rundir import LAST_CHECKPOINT, MID_EPOCH_FORMAT, epoch_checkpoints, metrics_line

if TYPE_CHECKING:
    from snnframe.builtins.training.session import Session


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """Seed of the training loader's generator in epoch ``epoch`` on process ``rank``.

    Fixed per (epoch, rank), so a resumed run draws alike. The generator shuffles a
    single process's data and seeds the loader's workers (augmentation), so each rank
    of a distributed run gets its own; its shuffle is the ``DistributedSampler``'s,
    seeded alike on every rank so that the shards do not overlap. Rank 0's seed is a
    single process's.
    """
    if rank == 0:
        return (seed * 1_000_003 + epoch) % (2**63)
    # mixed through all bits: torch's CPU generator keeps only a seed's low 32 bits
    return process_seed(seed, rank, epoch)


def resume(session: Session) -> tuple[int, list[dict[str, Any]] | None]:
    """Load ``last.pt`` into ``session`` if the run resumes; return the epochs already done and
    the processes' saved random states (``None`` for a run from the start).

    Nothing is written here (see :func:`finish_resume`). A mid-epoch checkpoint (format 4) also
    sets ``session.partial``: the batches of the next epoch already trained and their running totals.
    """
    last = session.ckpt_dir / LAST_CHECKPOINT
    state = None
    if session.exp.resume:
        problem = None
        if session.dist.rank == 0:
            try:
                state = _read(last)
            except ResumeError as exc:
                problem = str(exc)
        # every process stops on rank 0's problem instead of waiting for a state that never comes
        state, problem = session.dist.broadcast((state, problem))
        if problem is not None:
            raise ResumeError(problem)
    if state is None:
        if session.exp.resume:
            session.log.warning("--resume: no %s yet, starting from epoch 1", last)
        return 0, None
    try:
        session.model.load_state_dict(state["model"])
        session.optimizer.load_state_dict(state["optimizer"])
        if session.scheduler is not None:
            session.scheduler.load_state_dict(state["scheduler"])
            stretch_cosine(session.scheduler, session.t.epochs)
        if state["scaler"]:
            session.scaler.load_state_dict(state["scaler"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ResumeError(f"{last} does not fit this recipe's model or optimizer: {exc}") from exc
    try:
        saved_rng = rng_states(state["rng"])  # checked here, alike on every process
        session.history = [dict(row) for row in state["history"]]
        epoch = int(state["epoch"])
        session.partial = _partial(state)
    except (KeyError, TypeError, ValueError) as exc:
        raise malformed(last, exc) from exc
    batch = session.partial["batch"] if session.partial else 0
    session.saved = (epoch, batch)
    if batch:
        session.log.info("resuming from %s: epoch %d, after batch %d", last, epoch + 1, batch)
    else:
        session.log.info("resuming from %s after epoch %d", last, epoch)
    return epoch, saved_rng


def _partial(state: dict[str, Any]) -> dict[str, Any] | None:
    """A mid-epoch checkpoint's position: ``{"batch", "totals" (one tensor per process), "train_seconds"}``."""
    if state["format"] != MID_EPOCH_FORMAT:
        return None
    partial = state["partial"]
    batch = int(state["batch"])
    totals = [torch.as_tensor(t, dtype=torch.float64).reshape(3) for t in partial["totals"]]
    if batch < 1 or not totals:
        raise ValueError(f"batch {batch} with {len(totals)} running totals")
    return {"batch": batch, "totals": totals, "train_seconds": float(partial["train_seconds"])}


def finish_resume(session: Session) -> None:
    """Start writing: the core may write ``recipe.toml`` and ``training.log`` (``Experiment.begin``), then
    ``metrics.jsonl`` gets the checkpoint's rows (a row logged after it is dropped), or starts empty.

    Called once everything was read and checked, so that a resume that fails changes nothing.
    """
    session.exp.begin()
    if session.is_main:
        session.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(session.metrics_path, "".join(metrics_line(row) + "\n" for row in session.history))


def _read(last: Path) -> dict[str, Any] | None:
    """``last.pt``'s state; ``None`` when the run has not finished an epoch yet."""
    if last.exists():
        return load_checkpoint(last)
    kept = epoch_checkpoints(last.parent)
    if not kept:
        return None
    # starting over would empty metrics.jsonl and overwrite the epoch files
    raise ResumeError(
        f"--resume: {last} is missing but {kept[0]} is there; nothing was changed. To continue from that "
        f"epoch, copy it to last.pt (cp {kept[0]} {last}) and run with --resume again"
    )


def start_random_streams(session: Session, start: int, saved: list[dict[str, Any]] | None) -> None:
    """Restore this process's random states from the checkpoint, or give it streams of its own.

    The core seeded every process alike (identical initial weights); from here on the
    processes of a distributed run draw different dropout masks, encoder spikes and
    augmentations. A single process starting from epoch 1 keeps the core's streams.
    """
    dist, last = session.dist, session.ckpt_dir / LAST_CHECKPOINT
    if saved is not None and len(saved) != dist.world_size:
        session.log.warning(
            "%s holds the random states of %d process(es) but %d train now: processes without one start "
            "new streams, so the run will not repeat an uninterrupted one",
            last,
            len(saved),
            dist.world_size,
        )
    if saved is None or dist.rank >= len(saved):
        if dist.active or saved is not None:
            seed_process(process_seed(session.exp.seed, dist.rank, start))
        return
    try:
        restore_rng(saved[dist.rank], session.device)
        missing_cuda = session.device.type == "cuda" and saved[dist.rank]["cuda"] is None
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise malformed(last, exc) from exc
    if missing_cuda:  # the run trained on CPU before
        torch.cuda.manual_seed(process_seed(session.exp.seed, dist.rank, start))


def malformed(path: Path, exc: Exception) -> ResumeError:
    return ResumeError(
        f"{path} holds a malformed random state, history or epoch ({type(exc).__name__}: {exc}); "
        "it was not written by this trainer"
    )
