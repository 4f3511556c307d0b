"""One ``fit`` call of the bptt trainer: set-up, the epoch loop, evaluation and saving."""

import contextlib
import logging
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from snnframe.builtins.training import microbatch
from snnframe.builtins.training.checkpoint import (
    FORMAT_VERSION,
    capture_rng,
    copy_checkpoint,
    restore_rng,
    save_checkpoint,
)
from snnframe.builtins.training.diagnostics import epoch_warnings
from snnframe.builtins.training.distributed import DistContext
from snnframe.builtins.training.errors import TrainingDiverged
from snnframe.builtins.training.loaders import build_loaders
from snnframe.builtins.training.optim import build_optimizer, build_scheduler
from snnframe.builtins.training.preempt import StopRequest
from snnframe.builtins.training.progress import percent, progress_bar, redirect_logging
from snnframe.builtins.training.resume import epoch_seed, finish_resume, resume, start_random_streams
from snnframe.contracts import EpochReport, Experiment, TrainResult
from snnframe.data import split_batch
from snnframe.engine import host_memory
from snnframe.engine.metrics import FiringRecorder, correct_count
from snnframe.errors import Preempted
from snnframe.io import WriteError, append_line
from snnframe.rundir import CHECKPOINT_DIR, LAST_CHECKPOINT, METRICS_FILE, MID_EPOCH_FORMAT, finite, metrics_line

log = logging.getLogger("snnframe.train")
# Processes other than rank 0 log through this one: it is above every level, so the
# console shows each epoch once however many processes train.
quiet = logging.getLogger("snnframe.train.other_ranks")
quiet.setLevel(logging.CRITICAL + 1)


class Session:
    """The state of one ``fit`` call: the model on its device, optimizer, loaders, history."""

    def __init__(self, trainer: Any, experiment: Experiment, dist: DistContext, device: torch.device):
        self.t, self.exp, self.dist, self.device = trainer, experiment, dist, device
        self.is_main = experiment.is_main and dist.rank == 0
        self.log = log if dist.rank == 0 else quiet
        self.ckpt_dir = Path(experiment.run_dir) / CHECKPOINT_DIR
        self.metrics_path = Path(experiment.run_dir) / METRICS_FILE
        if device.type == "cpu":  # reuse freed heap for large temporaries (process-wide; see host_memory)
            host_memory.keep_freed_memory()
        self.pieces_allowed = microbatch.allowed(trainer.micro_batch, trainer.loss, experiment.model)
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
        self.partial: dict[str, Any] | None = None  # a mid-epoch checkpoint's position (set by resume)
        self.saved: tuple[int, int] | None = None  # (epoch, batch) of the newest checkpoint written or resumed
        self.stop = StopRequest(self.log)
        self._streams_after_skip: list[dict[str, Any]] | None = None
        self.train_loader, self.test_loader, self.train_sampler = build_loaders(
            experiment, dist, device, self.generator
        )
        self.sizes = (len(self.train_loader.dataset), len(self.test_loader.dataset))

    def _autocast_dtype(self) -> torch.dtype | None:
        if self.t.precision == "fp32":
            return None
        if self.device.type != "cuda":
            self.log.warning(
                "precision = %r applies on CUDA only; training in fp32 on %s", self.t.precision, self.device
            )
            return None
        return torch.bfloat16 if self.t.precision == "bf16" else torch.float16

    def _wrap(self) -> None:
        net = self.model
        if self.dist.active:
            net = DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.ddp = net if self.dist.active else None  # for no_sync() between the pieces of a batch
        if self.t.compile:
            net = torch.compile(net)
        self.train_net = net
        # evaluation runs the plain model: under DDP ranks hold different numbers of test batches, and
        # the firing-rate hooks it adds each epoch would make torch.compile recompile the model every time
        self.eval_net = self.model

    def run(self) -> TrainResult:
        with self.stop:  # SIGTERM: finish the batch, save, stop (see preempt.py)
            return self._run()

    def _run(self) -> TrainResult:
        start, saved_rng = resume(self)
        self._wrap()
        start_random_streams(self, start, saved_rng)
        if self.partial is not None:  # restored again once the loader has drawn the batches trained before
            self._streams_after_skip = saved_rng
        finish_resume(self)
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
            train_loss, train_acc, train_seconds = self._train_epoch(epoch)
            self._check_weights(epoch, len(self.train_loader))  # before they are evaluated and saved
            began = time.perf_counter()
            test_loss, test_acc, firing = self._evaluate()
            eval_seconds = time.perf_counter() - began
            if self.scheduler is not None:
                with warnings.catch_warnings():  # a resumed epoch whose batches were all trained before
                    warnings.filterwarnings(
                        "ignore", message="Detected call of `lr_scheduler.step", category=UserWarning
                    )
                    self.scheduler.step()
            row = finite(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "train_acc": train_acc,
                    "test_loss": test_loss,
                    "test_acc": test_acc,
                    "lr": lr,
                    "train_seconds": round(train_seconds, 3),
                    "eval_seconds": round(eval_seconds, 3),
                    "firing_rates": firing.rates(),
                }
            )
            self.history.append(row)
            self.log.info(
                "epoch %d/%d  train loss %.4f acc %s  test loss %s acc %s  lr %.3g  %.1f s",
                epoch,
                t.epochs,
                train_loss,
                percent(train_acc),
                "n/a" if test_loss is None else f"{test_loss:.4f}",
                percent(test_acc),
                lr,
                train_seconds + eval_seconds,
            )
            for warning in epoch_warnings(self.history, self._diagnostics()):
                self.log.warning("warning: %s", warning)
            rng = self.dist.all_gather(capture_rng(self.device))  # every process's, for the checkpoint
            if self.is_main:
                self.save(epoch, rng)
                self._append(row)
                if self.exp.loggers:
                    self.exp.log_epoch(EpochReport(epoch, row, firing.neuron_rates()))
            if epoch < t.epochs and self._stop_agreed():  # SIGTERM during evaluation or saving
                raise self._preempted(f"after epoch {epoch}")
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

    def _train_epoch(self, epoch: int) -> tuple[float, float, float]:
        """Mean loss and accuracy over the epoch's batches, and its training seconds.

        After a mid-epoch checkpoint, the loader draws the epoch's batches as before and the ones
        trained before the interruption are skipped; the running totals and random streams come
        back as they were after the last of them, so the epoch ends as it would have.
        """
        t, net = self.t, self.train_net
        net.train()
        totals = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss * n, correct, n
        skip, seconds = 0, 0.0
        if self.partial is not None:
            partial, self.partial = self.partial, None
            skip, seconds = partial["batch"], partial["train_seconds"]
            if self.dist.rank < len(partial["totals"]):
                totals = partial["totals"][self.dist.rank].to(self.device)
        if self.train_loader.num_workers > 0:  # workers fork: not from a heap of kept freed blocks
            host_memory.release_freed_memory()
        began = time.perf_counter()
        batches = len(self.train_loader)
        show = self.is_main and (sys.stderr.isatty() if t.progress is None else t.progress)
        bar = progress_bar(batches, f"epoch {epoch}/{t.epochs}", show)
        with bar, redirect_logging(show):
            for index, batch in enumerate(self.train_loader, start=1):
                if index <= skip:  # trained before the interruption
                    if index == skip:
                        self._restore_streams_after_skip()
                    bar.update(1)
                    continue
                inputs, targets = split_batch(batch, self.device, non_blocking=True)
                loss, correct = self._step(inputs, targets)
                stop = self._check_finite(loss, epoch, index)
                if t.grad_clip is not None:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                count = targets.shape[0]
                totals += torch.stack(
                    [
                        loss.double() * count,
                        correct.double(),
                        torch.tensor(float(count), dtype=torch.float64, device=self.device),
                    ]
                )
                wants_log = bool(t.log_every) and index % t.log_every == 0
                if show or wants_log:
                    running_loss, running_acc = (totals[0] / totals[2]).item(), (totals[1] / totals[2]).item()
                    bar.set_postfix(loss=f"{running_loss:.4f}", acc=percent(running_acc), refresh=False)
                    bar.update(1)
                if wants_log:
                    self.log.info(
                        "epoch %d batch %d/%d  loss %.4f acc %s",
                        epoch,
                        index,
                        batches,
                        running_loss,
                        percent(running_acc),
                    )
                if stop:
                    self._save_mid_epoch(epoch, index, totals, seconds + time.perf_counter() - began)
                    raise self._preempted(f"at epoch {epoch}, batch {index} of {batches}")
        self.dist.sum_(totals)
        loss_sum, correct, count = totals.tolist()
        return loss_sum / count, correct / count, seconds + time.perf_counter() - began

    def _step(self, inputs: Any, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and backward of one batch, in pieces (see :mod:`.microbatch`): its loss and correct count.

        Each piece's loss is weighted by its share of the batch's samples, so the gradients add up to
        the whole batch's; under DDP only the last piece's backward synchronises them.
        """
        x = self.exp.encoder(inputs)
        batch = targets.shape[0]
        size = microbatch.piece_size(self.t.micro_batch, x, batch, self.device, self.pieces_allowed)
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = correct = torch.zeros((), device=self.device)
        for part, share in microbatch.pieces(batch, size):  # one piece, share 1.0, when whole
            defer = part.stop < batch and self.ddp is not None  # gradients all-reduced after the last piece
            with self.ddp.no_sync() if defer else contextlib.nullcontext():
                with self._autocast():
                    spikes = self.train_net(x[:, part])
                loss = self.t.loss(spikes.float(), targets[part]) * share
                self.scaler.scale(loss).backward()
            loss_sum = loss_sum + loss.detach()
            correct = correct + correct_count(spikes.detach(), targets[part])
        return loss_sum, correct

    def _restore_streams_after_skip(self) -> None:
        saved, self._streams_after_skip = self._streams_after_skip, None
        if saved is not None and self.dist.rank < len(saved):
            restore_rng(saved[self.dist.rank], self.device)

    def _weights_sum(self) -> torch.Tensor:
        """The sum of every parameter (float64): not finite exactly when a parameter is nan or inf."""
        sums = [p.detach().sum(dtype=torch.float64) for p in self.model.parameters()]
        return torch.stack(sums).sum() if sums else torch.zeros((), dtype=torch.float64, device=self.device)

    def _check_finite(self, loss: torch.Tensor, epoch: int, index: int) -> bool:
        """Stop with ``TrainingDiverged`` on a loss or weights that are not finite; whether to stop after this batch.

        One reduction over the ranks per batch (loss, weights, SIGTERM), so that every process stops at the
        same batch. The weights are those the previous optimizer step made: a step with an infinite learning
        rate turns them into nan while the loss of the silent network they give stays finite.
        """
        stop = torch.tensor(1.0 if self.stop.requested else 0.0, dtype=torch.float64, device=self.device)
        flags = self.dist.sum_(torch.stack([loss.detach().double().reshape(()), self._weights_sum(), stop]))
        loss_sum, weights_sum, stops = flags.tolist()
        if not math.isfinite(weights_sum):
            step = f"in the optimizer step of epoch {epoch}, batch {index - 1}"
            raise self._weights_diverged(step if index > 1 else f"before epoch {epoch}")
        if not math.isfinite(loss_sum):
            raise TrainingDiverged(
                f"the loss became {loss.item()} at epoch {epoch}, batch {index}; {self._kept()}. "
                'Lower train.lr, set train.grad_clip, or use precision = "fp32".'
            )
        return stops > 0

    def _check_weights(self, epoch: int, batches: int) -> None:
        """The weights after the epoch's last optimizer step (alike on every process: DDP keeps them equal)."""
        if not math.isfinite(self._weights_sum().item()):
            raise self._weights_diverged(f"in the optimizer step of epoch {epoch}, batch {batches}")

    def _weights_diverged(self, where: str) -> TrainingDiverged:
        name, kind = "?", "nan"
        for n, p in self.model.named_parameters():
            if not bool(torch.isfinite(p).all()):
                name, kind = n, "nan" if bool(torch.isnan(p).any()) else "inf"
                break
        return TrainingDiverged(
            f"the model's weights became {kind} (first in {name}) {where}, while the loss was still finite; "
            f'{self._kept()}. Lower train.lr, set train.grad_clip, or use precision = "fp32".'
        )

    def _kept(self) -> str:
        if self.saved is None:
            return "no checkpoint was written yet"
        epoch, batch = self.saved
        where = f"epoch {epoch}" if not batch else f"epoch {epoch + 1}, batch {batch}"
        return f"the last good checkpoint {self.ckpt_dir / LAST_CHECKPOINT} ({where}) is kept"

    def _stop_agreed(self) -> bool:
        """Whether any process got SIGTERM (one reduction, at the end of an epoch)."""
        stop = torch.tensor(1.0 if self.stop.requested else 0.0, dtype=torch.float64, device=self.device)
        return self.dist.sum_(stop).item() > 0

    def _preempted(self, where: str) -> Preempted:
        return Preempted(
            f"stopped by {self.stop.signal or 'SIGTERM'} {where}; the training state is saved in "
            f"{self.ckpt_dir / LAST_CHECKPOINT}"
        )

    def _diagnostics(self) -> dict[str, Any]:
        loss_table = self.exp.recipe.get("train", {}).get("loss", {})
        return {
            "silent_below": self.t.warn_silent_below,
            "saturated_above": self.t.warn_saturated_above,
            "num_classes": self.exp.info.num_classes,
            "loss_kind": loss_table.get("kind") if isinstance(loss_table, dict) else None,
        }

    def _evaluate(self) -> tuple[float | None, float | None, FiringRecorder]:
        """Test loss and accuracy, and each spiking layer's firing rate on the test set."""
        net = self.eval_net
        net.eval()
        totals = torch.zeros(3, dtype=torch.float64, device=self.device)
        firing = FiringRecorder(self.model)
        if self.test_loader.num_workers > 0:
            host_memory.release_freed_memory()
        with torch.no_grad(), firing:
            for batch in self.test_loader:
                inputs, targets = split_batch(batch, self.device, non_blocking=True)
                with self._autocast():
                    spikes = net(self.exp.encoder(inputs))
                loss = self.t.loss(spikes.float(), targets)
                count = targets.shape[0]
                totals += torch.stack(
                    [
                        loss.double() * count,
                        correct_count(spikes, targets).double(),
                        torch.tensor(float(count), dtype=torch.float64, device=self.device),
                    ]
                )
        self.dist.sum_(totals)
        if self.dist.active:
            firing.gather(self.dist.all_gather)
        loss_sum, correct, count = totals.tolist()
        if count == 0:
            return None, None, firing
        return loss_sum / count, correct / count, firing

    def save(self, epoch: int, rng: list[dict[str, Any]], partial: dict[str, Any] | None = None) -> None:
        """Write ``last.pt`` (and ``epoch_<k>.pt``); ``partial``: a mid-epoch checkpoint after ``epoch``."""
        state = {
            "format": FORMAT_VERSION if partial is None else MID_EPOCH_FORMAT,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "scaler": self.scaler.state_dict(),
            "history": self.history,
            "rng": rng,
        }
        if partial is not None:
            state["batch"] = partial["batch"]
            state["partial"] = partial
        last = self.ckpt_dir / LAST_CHECKPOINT
        try:
            save_checkpoint(state, last)  # serialised once; the epoch's file is a copy of it
            self.saved = (epoch, partial["batch"] if partial is not None else 0)
            every = self.t.checkpoint_every
            if partial is None and every and (epoch % every == 0 or epoch == self.t.epochs):
                copy_checkpoint(last, self.ckpt_dir / f"epoch_{epoch}.pt")
        except WriteError as exc:
            raise WriteError(
                f"{exc}; {self._kept()}. Make room (or fix the file system), then continue with --resume",
                exc.errno,
                exc.filename,
            ) from None

    def _save_mid_epoch(self, epoch: int, batch: int, totals: torch.Tensor, seconds: float) -> None:
        """The state after ``batch`` of ``epoch``, every process's running totals and random streams included."""
        rng = self.dist.all_gather(capture_rng(self.device))
        gathered = self.dist.all_gather(totals.detach().cpu())
        if self.is_main:
            self.save(epoch - 1, rng, {"batch": batch, "totals": gathered, "train_seconds": round(seconds, 3)})

    def _append(self, row: dict[str, Any]) -> None:
        try:
            append_line(self.metrics_path, metrics_line(row))
        except WriteError as exc:
            raise WriteError(
                f"{exc}; the checkpoint of epoch {row['epoch']} holds the row and --resume writes it back. "
                "Make room (or fix the file system), then continue with --resume",
                exc.errno,
                exc.filename,
            ) from None
