"""The ``bptt`` trainer: backpropagation through time over the whole sequence.

One process or many (torchrun + DistributedDataParallel); every epoch trains,
evaluates on the test set, appends a row to ``metrics.jsonl`` and writes
``checkpoints/last.pt`` so that ``--resume`` can continue an interrupted run
and, on CPU, reproduce the uninterrupted run's metrics exactly.
"""

import contextlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from snnframe.builtins.losses.spike_losses import correct_count
from snnframe.builtins.models import host_memory
from snnframe.builtins.training.batches import split_batch
from snnframe.builtins.training.checkpoint import (
    FORMAT_VERSION,
    capture_rng,
    copy_checkpoint,
    load_checkpoint,
    newest_epoch_checkpoint,
    process_seed,
    restore_rng,
    rng_states,
    save_checkpoint,
    seed_process,
    write_text_atomic,
)
from snnframe.builtins.training.distributed import DEVICE_PATTERN, DistContext, ShardSampler, resolve_device
from snnframe.builtins.training.errors import ResumeError, TrainingDiverged, TrainingError
from snnframe.builtins.training.optim import build_optimizer, build_scheduler, stretch_cosine
from snnframe.contracts import Experiment, TrainResult

log = logging.getLogger("snnframe.train")
# Processes other than rank 0 log through this one: it is above every level, so the
# console shows each epoch once however many processes train.
quiet = logging.getLogger("snnframe.train.other_ranks")
quiet.setLevel(logging.CRITICAL + 1)

# Row keys that differ between otherwise identical runs.
TIMING_KEYS = ("train_seconds", "eval_seconds")


class BPTTTrainer:
    """Train ``experiment.model`` with surrogate-gradient BPTT.

    Defaults are the seed's: Adam (betas 0.9/0.999) at the recipe's ``lr``,
    ``MultiStepLR`` with milestones [10, 15] and gamma 0.1, stepped per epoch.
    See docs/training.md for every option.
    """

    def __init__(
        self,
        *,
        epochs: int,
        lr: float,
        device: str,
        loss: Callable,
        optimizer: Literal["adam", "adamw", "sgd"] = "adam",
        betas: list[float] = [0.9, 0.999],  # noqa: B006 - copied, never mutated
        momentum: float = 0.9,
        weight_decay: float | None = None,
        scheduler: Literal["multistep", "cosine", "none"] = "multistep",
        milestones: list[int] = [10, 15],  # noqa: B006 - copied, never mutated
        gamma: float = 0.1,
        min_lr: float = 0.0,
        precision: Literal["fp32", "bf16", "fp16"] = "fp32",
        compile: bool = False,
        grad_clip: float | None = None,
        checkpoint_every: int = 1,
        log_every: int = 0,
        progress: bool | None = None,
    ):
        _check(epochs >= 1, f"epochs must be at least 1, got {epochs}")
        _check(lr > 0, f"lr must be positive, got {lr}")
        _check(bool(DEVICE_PATTERN.fullmatch(device)), f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
        _check(callable(loss), "loss must be callable")
        _check(optimizer in ("adam", "adamw", "sgd"), f"optimizer must be adam, adamw or sgd, got {optimizer!r}")
        _check(
            len(betas) == 2 and all(0.0 <= b < 1.0 for b in betas),
            f"betas must be two numbers in [0, 1), got {list(betas)}",
        )
        _check(0.0 <= momentum < 1.0, f"momentum must be in [0, 1), got {momentum}")
        _check(weight_decay is None or weight_decay >= 0, f"weight_decay must be >= 0, got {weight_decay}")
        _check(
            scheduler in ("multistep", "cosine", "none"),
            f"scheduler must be multistep, cosine or none, got {scheduler!r}",
        )
        _check(
            all(m > 0 for m in milestones) and list(milestones) == sorted(set(milestones)),
            f"milestones must be increasing positive epochs, got {list(milestones)}",
        )
        _check(0.0 < gamma <= 1.0, f"gamma must be in (0, 1], got {gamma}")
        _check(0.0 <= min_lr < lr, f"min_lr must be in [0, lr), got {min_lr}")
        _check(precision in ("fp32", "bf16", "fp16"), f"precision must be fp32, bf16 or fp16, got {precision!r}")
        _check(grad_clip is None or grad_clip > 0, f"grad_clip must be positive, got {grad_clip}")
        _check(checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {checkpoint_every}")
        _check(log_every >= 0, f"log_every must be >= 0, got {log_every}")
        self.epochs, self.lr, self.device, self.loss = epochs, lr, device, loss
        self.optimizer, self.betas, self.momentum, self.weight_decay = optimizer, list(betas), momentum, weight_decay
        self.scheduler, self.milestones, self.gamma, self.min_lr = scheduler, list(milestones), gamma, min_lr
        self.precision, self.compile, self.grad_clip = precision, compile, grad_clip
        self.checkpoint_every, self.log_every, self.progress = checkpoint_every, log_every, progress

    def fit(self, experiment: Experiment) -> TrainResult:
        dist = DistContext.from_env()
        device = resolve_device(self.device, dist.local_rank if dist.active else None)
        dist.start(device)
        try:
            return _Run(self, experiment, dist, device).run()
        finally:
            dist.close()


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


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


class _Run:
    """The state of one ``fit`` call."""

    def __init__(self, trainer: BPTTTrainer, experiment: Experiment, dist: DistContext, device: torch.device):
        self.t, self.exp, self.dist, self.device = trainer, experiment, dist, device
        self.is_main = experiment.is_main and dist.rank == 0
        self.log = log if dist.rank == 0 else quiet
        self.ckpt_dir = Path(experiment.run_dir) / "checkpoints"
        self.metrics_path = Path(experiment.run_dir) / "metrics.jsonl"
        if device.type == "cpu":  # reuse freed heap for large temporaries (process-wide; see host_memory)
            host_memory.keep_freed_memory()
        self.model = experiment.model.to(device)
        self.optimizer = build_optimizer(
            trainer.optimizer,
            self.model.parameters(),
            lr=trainer.lr,
            betas=trainer.betas,
            momentum=trainer.momentum,
            weight_decay=trainer.weight_decay,
        )
        self.scheduler = build_scheduler(
            trainer.scheduler,
            self.optimizer,
            epochs=trainer.epochs,
            milestones=trainer.milestones,
            gamma=trainer.gamma,
            min_lr=trainer.min_lr,
        )
        self.autocast_dtype = self._autocast_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.generator = torch.Generator()
        self.history: list[dict[str, Any]] = []
        self._build_loaders()

    # -- set-up ---------------------------------------------------------------

    def _autocast_dtype(self) -> torch.dtype | None:
        if self.t.precision == "fp32":
            return None
        if self.device.type != "cuda":
            self.log.warning(
                "precision = %r applies on CUDA only; training in fp32 on %s", self.t.precision, self.device
            )
            return None
        return torch.bfloat16 if self.t.precision == "bf16" else torch.float16

    def _build_loaders(self) -> None:
        train_set, test_set = self.exp.splits()
        if len(train_set) == 0:
            raise TrainingError("the training set is empty (check data.subset)")
        data, info = self.exp.data, self.exp.info
        if self.dist.active:
            self.train_sampler = DistributedSampler(
                train_set, num_replicas=self.dist.world_size, rank=self.dist.rank, shuffle=True, seed=self.exp.seed
            )
            test_sampler = ShardSampler(len(test_set), self.dist.rank, self.dist.world_size)
        else:
            self.train_sampler = RandomSampler(train_set, generator=self.generator)
            test_sampler = SequentialSampler(test_set)
        common = dict(
            batch_size=data.batch_size,
            num_workers=data.num_workers,
            collate_fn=self.exp.encoder.collate_fn(info),
            pin_memory=self.device.type == "cuda",
        )
        # generator= also seeds the workers (augmentation), per epoch like the shuffle
        self.train_loader = DataLoader(train_set, sampler=self.train_sampler, generator=self.generator, **common)
        self.test_loader = DataLoader(test_set, sampler=test_sampler, **common)
        self.sizes = (len(train_set), len(test_set))

    def _wrap(self) -> None:
        net = self.model
        if self.dist.active:
            net = DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.t.compile:
            net = torch.compile(net)
        self.train_net = net
        # evaluation runs unwrapped under DDP: ranks hold different numbers of test batches
        self.eval_net = self.model if self.dist.active else net

    def _resume(self) -> tuple[int, list[dict[str, Any]] | None]:
        """Load ``last.pt`` if asked to; return the number of epochs already done and the
        processes' saved random states (``None`` for a run from the start)."""
        last = self.ckpt_dir / "last.pt"
        state = None
        if self.exp.resume:
            problem = None
            if self.dist.rank == 0:
                try:
                    state = self._read_checkpoint(last)
                except ResumeError as exc:
                    problem = str(exc)
            # every process stops on rank 0's problem instead of waiting for a state that never comes
            state, problem = self.dist.broadcast((state, problem))
            if problem is not None:
                raise ResumeError(problem)
        if state is None:
            if self.exp.resume:
                self.log.warning("--resume: no %s yet, starting from epoch 1", last)
            if self.is_main:
                self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
                self.metrics_path.write_text("")
            return 0, None
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
                stretch_cosine(self.scheduler, self.t.epochs)
            if state["scaler"]:
                self.scaler.load_state_dict(state["scaler"])
        except (KeyError, ValueError, RuntimeError) as exc:
            raise ResumeError(f"{last} does not fit this recipe's model or optimizer: {exc}") from exc
        try:
            saved_rng = rng_states(state["rng"])  # checked here, alike on every process
            self.history = [dict(row) for row in state["history"]]
            epoch = int(state["epoch"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _malformed(last, exc) from exc
        if self.is_main:
            # drop rows of an epoch that was logged but not checkpointed
            write_text_atomic(self.metrics_path, "".join(json.dumps(row) + "\n" for row in self.history))
        self.log.info("resuming from %s after epoch %d", last, epoch)
        return epoch, saved_rng

    def _read_checkpoint(self, last: Path) -> dict[str, Any] | None:
        """``last.pt``'s state; ``None`` when the run has not finished an epoch yet."""
        if last.exists():
            return load_checkpoint(last)
        kept = newest_epoch_checkpoint(self.ckpt_dir)
        if kept is None:
            return None
        # starting over would empty metrics.jsonl and overwrite the epoch files
        raise ResumeError(
            f"--resume: {last} is missing but {kept} is there; nothing was changed. To continue from that "
            f"epoch, copy it to last.pt (cp {kept} {last}) and run with --resume again"
        )

    def _start_random_streams(self, start: int, saved: list[dict[str, Any]] | None) -> None:
        """Restore this process's random states from the checkpoint, or give it streams of its own.

        The core seeded every process alike (identical initial weights); from here on the
        processes of a distributed run draw different dropout masks, encoder spikes and
        augmentations. A single process starting from epoch 1 keeps the core's streams.
        """
        rank = self.dist.rank
        if saved is not None and len(saved) != self.dist.world_size:
            self.log.warning(
                "%s holds the random states of %d process(es) but %d train now: processes without one start "
                "new streams, so the run will not repeat an uninterrupted one",
                self.ckpt_dir / "last.pt", len(saved), self.dist.world_size,
            )
        if saved is None or rank >= len(saved):
            if self.dist.active or saved is not None:
                seed_process(process_seed(self.exp.seed, rank, start))
            return
        try:
            restore_rng(saved[rank], self.device)
            missing_cuda = self.device.type == "cuda" and saved[rank]["cuda"] is None
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            raise _malformed(self.ckpt_dir / "last.pt", exc) from exc
        if missing_cuda:  # the run trained on CPU before
            torch.cuda.manual_seed(process_seed(self.exp.seed, rank, start))

    # -- the loop -------------------------------------------------------------

    def run(self) -> TrainResult:
        start, saved_rng = self._resume()
        self._wrap()
        self._start_random_streams(start, saved_rng)
        t = self.t
        params = sum(p.numel() for p in self.model.parameters())
        self.log.info(
            "training on %s (%d process%s): %s parameters, %d train / %d test samples, batch %d, epochs %d-%d",
            self.device,
            self.dist.world_size,
            "" if self.dist.world_size == 1 else "es",
            f"{params:,}",
            *self.sizes,
            self.exp.data.batch_size,
            start + 1,
            t.epochs,
        )
        if start >= t.epochs:
            self.log.info("already trained for %d epochs; nothing to do", start)
        for epoch in range(start + 1, t.epochs + 1):
            self._begin_epoch(epoch)
            lr = self.optimizer.param_groups[0]["lr"]
            began = time.perf_counter()
            train_loss, train_acc = self._train_epoch(epoch)
            train_seconds = time.perf_counter() - began
            began = time.perf_counter()
            test_loss, test_acc = self._evaluate()
            eval_seconds = time.perf_counter() - began
            if self.scheduler is not None:
                self.scheduler.step()
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "test_loss": test_loss,
                "test_acc": test_acc,
                "lr": lr,
                "train_seconds": round(train_seconds, 3),
                "eval_seconds": round(eval_seconds, 3),
            }
            self.history.append(row)
            self.log.info(
                "epoch %d/%d  train loss %.4f acc %s  test loss %s acc %s  lr %.3g  %.1f s",
                epoch,
                t.epochs,
                train_loss,
                _percent(train_acc),
                "n/a" if test_loss is None else f"{test_loss:.4f}",
                _percent(test_acc),
                lr,
                train_seconds + eval_seconds,
            )
            rng = self.dist.all_gather(capture_rng(self.device))  # every process's, for the checkpoint
            if self.is_main:
                self._save(epoch, rng)
                with open(self.metrics_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                    f.flush()
        return TrainResult(model=self.model, history=self.history, device=self.device, is_main=self.is_main)

    def _begin_epoch(self, epoch: int) -> None:
        """Seed the training loader's shuffle and workers for ``epoch``."""
        self.generator.manual_seed(epoch_seed(self.exp.seed, epoch, self.dist.rank))
        if self.dist.active:
            self.train_sampler.set_epoch(epoch)

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        t, net = self.t, self.train_net
        net.train()
        totals = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss * n, correct, n
        batches = len(self.train_loader)
        show = self.is_main and (sys.stderr.isatty() if t.progress is None else t.progress)
        bar = _progress_bar(batches, f"epoch {epoch}/{t.epochs}", show)
        with bar, _redirect_logging(show):
            for index, batch in enumerate(self.train_loader, start=1):
                inputs, targets = split_batch(batch, self.device, non_blocking=True)
                with self._autocast():
                    spikes = net(self.exp.encoder(inputs))
                loss = t.loss(spikes.float(), targets)
                self._check_finite(loss, epoch, index)
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if t.grad_clip is not None:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                count = targets.shape[0]
                totals += torch.stack(
                    [loss.detach().double() * count, correct_count(spikes.detach(), targets).double(),
                     torch.tensor(float(count), dtype=torch.float64, device=self.device)]
                )
                wants_log = bool(t.log_every) and index % t.log_every == 0
                if show or wants_log:
                    running_loss, running_acc = (totals[0] / totals[2]).item(), (totals[1] / totals[2]).item()
                    bar.set_postfix(loss=f"{running_loss:.4f}", acc=_percent(running_acc), refresh=False)
                    bar.update(1)
                if wants_log:
                    self.log.info(
                        "epoch %d batch %d/%d  loss %.4f acc %s", epoch, index, batches, running_loss,
                        _percent(running_acc),
                    )
        self.dist.sum_(totals)
        loss_sum, correct, count = totals.tolist()
        return loss_sum / count, correct / count

    def _check_finite(self, loss: torch.Tensor, epoch: int, index: int) -> None:
        # summed over ranks so that every process stops at the same batch
        value = self.dist.sum_(loss.detach().float().reshape(1).clone())
        if bool(torch.isfinite(value).all()):
            return
        last = self.ckpt_dir / "last.pt"
        kept = (
            f"the last good checkpoint {last} (epoch {self.history[-1]['epoch']}) is kept"
            if self.history
            else "no checkpoint was written yet"
        )
        raise TrainingDiverged(
            f"the loss became {loss.item()} at epoch {epoch}, batch {index}; {kept}. "
            "Lower train.lr, set train.grad_clip, or use precision = \"fp32\"."
        )

    def _evaluate(self) -> tuple[float | None, float | None]:
        net = self.eval_net
        net.eval()
        totals = torch.zeros(3, dtype=torch.float64, device=self.device)
        with torch.no_grad():
            for batch in self.test_loader:
                inputs, targets = split_batch(batch, self.device, non_blocking=True)
                with self._autocast():
                    spikes = net(self.exp.encoder(inputs))
                loss = self.t.loss(spikes.float(), targets)
                count = targets.shape[0]
                totals += torch.stack(
                    [loss.double() * count, correct_count(spikes, targets).double(),
                     torch.tensor(float(count), dtype=torch.float64, device=self.device)]
                )
        self.dist.sum_(totals)
        loss_sum, correct, count = totals.tolist()
        if count == 0:
            return None, None
        return loss_sum / count, correct / count

    def _save(self, epoch: int, rng: list[dict[str, Any]]) -> None:
        state = {
            "format": FORMAT_VERSION,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "scaler": self.scaler.state_dict(),
            "history": self.history,
            "rng": rng,
        }
        last = self.ckpt_dir / "last.pt"
        save_checkpoint(state, last)  # serialised once; the epoch's file is a copy of it
        every = self.t.checkpoint_every
        if every and (epoch % every == 0 or epoch == self.t.epochs):
            copy_checkpoint(last, self.ckpt_dir / f"epoch_{epoch}.pt")


def _malformed(path: Path, exc: Exception) -> ResumeError:
    return ResumeError(
        f"{path} holds a malformed random state, history or epoch ({type(exc).__name__}: {exc}); "
        "it was not written by this trainer"
    )


def _percent(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.2f}%"


def _progress_bar(total: int, description: str, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, disable=not show, leave=False, dynamic_ncols=True, file=sys.stderr)


def _redirect_logging(show: bool):
    """Route console log lines around the progress bar instead of through it."""
    if not show:
        return contextlib.nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm(loggers=[logging.getLogger("snnframe")])
