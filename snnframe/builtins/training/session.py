"""One ``fit`` call of the bptt trainer: set-up, the epoch loop, evaluation and saving."""

import contextlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from snnframe.builtins.training.checkpoint import FORMAT_VERSION, capture_rng, copy_checkpoint, save_checkpoint
from snnframe.builtins.training.diagnostics import epoch_warnings
from snnframe.builtins.training.distributed import DistContext
from snnframe.builtins.training.errors import TrainingDiverged
from snnframe.builtins.training.loaders import build_loaders
from snnframe.builtins.training.optim import build_optimizer, build_scheduler
from snnframe.builtins.training.progress import percent, progress_bar, redirect_logging
from snnframe.builtins.training.resume import epoch_seed, resume, start_random_streams
from snnframe.contracts import EpochReport, Experiment, TrainResult
from snnframe.data import split_batch
from snnframe.engine import host_memory
from snnframe.engine.metrics import FiringRecorder, correct_count
from snnframe.rundir import CHECKPOINT_DIR, LAST_CHECKPOINT, METRICS_FILE

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
        if self.t.compile:
            net = torch.compile(net)
        self.train_net = net
        # evaluation runs the plain model: under DDP ranks hold different numbers of test batches, and
        # the firing-rate hooks it adds each epoch would make torch.compile recompile the model every time
        self.eval_net = self.model

    def run(self) -> TrainResult:
        start, saved_rng = resume(self)
        self._wrap()
        start_random_streams(self, start, saved_rng)
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
            test_loss, test_acc, firing = self._evaluate()
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
                "firing_rates": firing.rates(),
            }
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
                with open(self.metrics_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                    f.flush()
                if self.exp.loggers:
                    self.exp.log_epoch(EpochReport(epoch, row, firing.neuron_rates()))
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
        bar = progress_bar(batches, f"epoch {epoch}/{t.epochs}", show)
        with bar, redirect_logging(show):
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
                    [
                        loss.detach().double() * count,
                        correct_count(spikes.detach(), targets).double(),
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
        self.dist.sum_(totals)
        loss_sum, correct, count = totals.tolist()
        return loss_sum / count, correct / count

    def _check_finite(self, loss: torch.Tensor, epoch: int, index: int) -> None:
        # summed over ranks so that every process stops at the same batch
        value = self.dist.sum_(loss.detach().float().reshape(1).clone())
        if bool(torch.isfinite(value).all()):
            return
        last = self.ckpt_dir / LAST_CHECKPOINT
        kept = (
            f"the last good checkpoint {last} (epoch {self.history[-1]['epoch']}) is kept"
            if self.history
            else "no checkpoint was written yet"
        )
        raise TrainingDiverged(
            f"the loss became {loss.item()} at epoch {epoch}, batch {index}; {kept}. "
            'Lower train.lr, set train.grad_clip, or use precision = "fp32".'
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

    def save(self, epoch: int, rng: list[dict[str, Any]]) -> None:
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
        last = self.ckpt_dir / LAST_CHECKPOINT
        save_checkpoint(state, last)  # serialised once; the epoch's file is a copy of it
        every = self.t.checkpoint_every
        if every and (epoch % every == 0 or epoch == self.t.epochs):
            copy_checkpoint(last, self.ckpt_dir / f"epoch_{epoch}.pt")
