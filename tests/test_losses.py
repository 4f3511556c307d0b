"""The built-in losses equal snntorch.functional's on the same spikes, in value and gradient."""

import pytest
import snntorch.functional as SF
import torch

from snnframe.builtins.losses.spike_losses import ce_count, ce_rate, mse_count
from snnframe.engine.metrics import correct_count

T, B, C = 7, 5, 4


def spikes_and_targets(seed=0):
    g = torch.Generator().manual_seed(seed)
    spikes = (torch.rand(T, B, C, generator=g) < 0.4).float()
    # a non-binary copy too: the losses must not assume binary inputs
    return [spikes, torch.rand(T, B, C, generator=g) * 2], torch.randint(0, C, (B,), generator=g)


PAIRS = [
    (ce_rate(), SF.ce_rate_loss()),
    (ce_count(), SF.ce_count_loss()),
    (mse_count(), SF.mse_count_loss()),
    (mse_count(correct_rate=0.8, incorrect_rate=0.2), SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)),
]


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=["ce_rate", "ce_count", "mse_count", "mse_count_rates"])
@pytest.mark.parametrize("seed", [0, 1])
def test_value_and_gradient_equal_snntorch(ours, theirs, seed):
    inputs, targets = spikes_and_targets(seed)
    for x in inputs:
        a = x.clone().requires_grad_()
        b = x.clone().requires_grad_()
        mine, reference = ours(a, targets), theirs(b, targets)
        assert mine.dim() == 0
        assert mine.item() == pytest.approx(reference.sum().item(), rel=1e-6)
        mine.backward()
        reference.sum().backward()
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)


def test_correct_count_is_argmax_of_spike_counts():
    spikes = torch.zeros(3, 2, 3)
    spikes[:, 0, 2] = 1  # sample 0 fires most on class 2
    spikes[0, 1, 0] = spikes[1, 1, 1] = spikes[2, 1, 1] = 1  # sample 1: class 1 (2 spikes) beats class 0
    assert correct_count(spikes, torch.tensor([2, 1])).item() == 2
    assert correct_count(spikes, torch.tensor([2, 0])).item() == 1


@pytest.mark.parametrize("key", ["correct_rate", "incorrect_rate"])
def test_mse_count_rates_must_be_fractions(key):
    with pytest.raises(ValueError, match=f"{key} must be in \\[0, 1\\]"):
        mse_count(**{key: 1.5})
