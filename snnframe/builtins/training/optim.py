"""Optimizers and learning-rate schedules named by the ``[train]`` table."""

import math

import torch

# A weight_decay of None means the optimizer's usual default.
DEFAULT_WEIGHT_DECAY = {"adam": 0.0, "adamw": 0.01, "sgd": 0.0}


def build_optimizer(
    name: str,
    params,
    *,
    lr: float,
    betas: list[float],
    momentum: float,
    weight_decay: float | None,
) -> torch.optim.Optimizer:
    decay = DEFAULT_WEIGHT_DECAY[name] if weight_decay is None else weight_decay
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=decay)
    raise ValueError(f"unknown optimizer {name!r}")


def build_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    milestones: list[int],
    gamma: float,
    min_lr: float,
):
    """A per-epoch scheduler, or ``None`` for a constant learning rate."""
    if name == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=min_lr)
    if name == "none":
        return None
    raise ValueError(f"unknown scheduler {name!r}")


def stretch_cosine(scheduler, epochs: int) -> None:
    """Re-plan a resumed cosine schedule to end at ``epochs`` (``train.epochs`` may grow on resume).

    The learning rate restarts from the closed form at the current epoch, so a run
    extended on resume follows the schedule it would have had with the new length.
    """
    if not isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR) or scheduler.T_max == epochs:
        return
    scheduler.T_max = epochs
    progress = (1 + math.cos(math.pi * scheduler.last_epoch / epochs)) / 2
    for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = scheduler.eta_min + (base - scheduler.eta_min) * progress
