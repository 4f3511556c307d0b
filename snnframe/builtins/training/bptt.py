"""The ``bptt`` trainer: backpropagation through time over the whole sequence.

One process or many (torchrun + DistributedDataParallel); every epoch trains,
evaluates on the test set (loss, accuracy, each spiking layer's firing rate; warnings for
silent or saturated layers and a stuck loss), appends a row to ``metrics.jsonl``, hands it
to the recipe's loggers and writes
``checkpoints/last.pt`` so that ``--resume`` can continue an interrupted run
and, on CPU, reproduce the uninterrupted run's metrics exactly.

The parts: :mod:`.session` (set-up and the epoch loop), :mod:`.resume` (continuing a run,
random streams), :mod:`.checkpoint` (files), :mod:`.loaders`, :mod:`.distributed`,
:mod:`.optim`, :mod:`.progress`, :mod:`.diagnostics`.
"""

from collections.abc import Callable
from typing import Literal

from snnframe.builtins.training.distributed import DEVICE_PATTERN, DistContext, device_problem, resolve_device
from snnframe.builtins.training.session import Session
from snnframe.contracts import Experiment, TrainResult

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
        micro_batch: int | Literal["auto"] = "auto",
        checkpoint_every: int = 1,
        log_every: int = 0,
        progress: bool | None = None,
        warn_silent_below: float = 0.001,
        warn_saturated_above: float = 0.9,
    ):
        _check(epochs >= 1, f"epochs must be at least 1, got {epochs}")
        _check(lr > 0, f"lr must be positive, got {lr}")
        _check(bool(DEVICE_PATTERN.fullmatch(device)), f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
        problem = device_problem(device)
        _check(problem is None, problem or "")
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
        _check(
            micro_batch == "auto" or (type(micro_batch) is int and micro_batch >= 0),
            f'micro_batch must be "auto" or an integer >= 0 (0: never split a batch), got {micro_batch!r}',
        )
        _check(checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {checkpoint_every}")
        _check(log_every >= 0, f"log_every must be >= 0, got {log_every}")
        _check(0.0 <= warn_silent_below <= 1.0, f"warn_silent_below must be in [0, 1], got {warn_silent_below}")
        _check(
            0.0 <= warn_saturated_above <= 1.0, f"warn_saturated_above must be in [0, 1], got {warn_saturated_above}"
        )
        self.epochs, self.lr, self.device, self.loss = epochs, lr, device, loss
        self.optimizer, self.betas, self.momentum, self.weight_decay = optimizer, list(betas), momentum, weight_decay
        self.scheduler, self.milestones, self.gamma, self.min_lr = scheduler, list(milestones), gamma, min_lr
        self.precision, self.compile, self.grad_clip = precision, compile, grad_clip
        self.micro_batch = micro_batch
        self.checkpoint_every, self.log_every, self.progress = checkpoint_every, log_every, progress
        self.warn_silent_below, self.warn_saturated_above = warn_silent_below, warn_saturated_above

    def fit(self, experiment: Experiment) -> TrainResult:
        dist = DistContext.from_env()
        device = resolve_device(self.device, dist.local_rank if dist.active else None)
        dist.start(device)
        try:
            return Session(self, experiment, dist, device).run()
        finally:
            dist.close()


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
