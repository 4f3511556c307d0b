"""Classification losses on output spikes, matching ``snntorch.functional``.

Each factory takes the ``[train.loss]`` table's keys and returns
``loss(spikes [T, B, C], targets [B]) -> scalar tensor`` (snnTorch returns a
one-element tensor of shape ``[1]`` for ``ce_rate``; ours is a 0-d scalar with
the same value).
"""

import torch
import torch.nn.functional as F


class CERate:
    """Cross-entropy applied to the spikes of every time step, averaged over time.

    ``snntorch.functional.ce_rate_loss``: pushes the correct class to fire at
    every step and the others to stay silent.
    """

    sample_mean = True  # the mean of per-sample losses: a batch may train in pieces

    def __call__(self, spikes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        steps = spikes.shape[0]
        log_p = F.log_softmax(spikes.float(), dim=-1)
        # mean over T of the per-step batch mean == mean over the T*B rows
        return F.nll_loss(log_p.flatten(0, 1), targets.repeat(steps))


class CECount:
    """Cross-entropy of the spike counts summed over time (``ce_count_loss``)."""

    sample_mean = True  # the mean of per-sample losses: a batch may train in pieces

    def __call__(self, spikes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(spikes.float().sum(0), targets)


class MSECount:
    """Mean squared error between spike counts and target counts (``mse_count_loss``).

    The target count is ``int(T * correct_rate)`` for the correct class and
    ``int(T * incorrect_rate)`` for the others; the loss is divided by ``T``.
    """

    sample_mean = True  # the mean of per-sample losses: a batch may train in pieces

    def __init__(self, correct_rate: float, incorrect_rate: float):
        self.correct_rate = correct_rate
        self.incorrect_rate = incorrect_rate

    def __call__(self, spikes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        steps, _, classes = spikes.shape
        counts = spikes.float().sum(0)
        on, off = int(steps * self.correct_rate), int(steps * self.incorrect_rate)
        wanted = torch.full_like(counts, float(off))
        wanted.scatter_(1, targets.long().unsqueeze(1), float(on))
        return F.mse_loss(counts, wanted) / steps


def ce_rate() -> CERate:
    """Cross-entropy per time step (the seed's loss)."""
    return CERate()


def ce_count() -> CECount:
    """Cross-entropy of the total spike counts."""
    return CECount()


def mse_count(*, correct_rate: float = 1.0, incorrect_rate: float = 0.0) -> MSECount:
    """MSE of spike counts against ``T * correct_rate`` / ``T * incorrect_rate``."""
    for name, rate in (("correct_rate", correct_rate), ("incorrect_rate", incorrect_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate}")
    return MSECount(correct_rate, incorrect_rate)
