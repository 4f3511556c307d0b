"""Batches trained in pieces (``train.micro_batch``): the same gradient, less memory, clear errors."""

import pytest
import torch
from torch import nn
from trainer_toys import CrashingSNN, InjectedCrash, ToySNN, make_experiment

from snnframe.builtins.losses.spike_losses import ce_count, ce_rate, mse_count
from snnframe.builtins.training import microbatch
from snnframe.builtins.training.bptt import TIMING_KEYS, BPTTTrainer
from snnframe.errors import RecipeError


class CountingSNN(ToySNN):
    """The toy network without dropout (pieces draw other masks), counting its training batches' sizes."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Identity()
        self.sizes: list[int] = []

    def forward(self, x):
        if self.training:
            self.sizes.append(x.shape[1])
        return super().forward(x)


class NormedSNN(ToySNN):
    def __init__(self):
        super().__init__()
        self.drop = nn.BatchNorm1d(16)

    def forward(self, x):  # batch norm over the folded [T * B, hidden] rows
        h = self.drop(self.fc1(x).flatten(0, 1)).unflatten(0, x.shape[:2])
        return self.lif2(self.fc2(self.lif1(h)) * 2.0)


class SumLoss:
    """A loss that sums over the batch: pieces would not add up to it, and it does not claim they do."""

    def __call__(self, spikes, targets):
        return ce_rate()(spikes, targets) * targets.shape[0]


def fit(tmp_path, name, loss=None, **params):
    # SGD: its steps scale with the gradient (Adam's would hide a mis-weighted piece)
    trainer = BPTTTrainer(
        epochs=2, lr=0.1, device="cpu", loss=loss or ce_rate(), optimizer="sgd", milestones=[2], **params
    )
    return trainer.fit(make_experiment(tmp_path / name, model=CountingSNN))


@pytest.mark.parametrize("loss", [ce_rate(), ce_count(), mse_count(correct_rate=0.8, incorrect_rate=0.1)])
def test_pieces_train_as_the_whole_batch(tmp_path, loss):
    whole = fit(tmp_path, "whole", loss, micro_batch=0)
    pieces = fit(tmp_path, "pieces", loss, micro_batch=5)

    # 96 samples in batches of 16; pieces of <= 5 samples: 4 equal pieces of 4
    assert whole.model.sizes == [16] * 12
    assert pieces.model.sizes == [4] * 48
    for a, b in zip(whole.history, pieces.history, strict=True):
        for key in a.keys() - set(TIMING_KEYS) - {"firing_rates"}:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), key
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(pieces.model.state_dict()[name], value, rtol=1e-4, atol=1e-4, msg=name)


def test_uneven_pieces_weight_each_by_its_share(tmp_path):
    # batches of 16 in pieces of <= 6: three pieces, 6 + 6 + 4, the last weighted 4 / 16
    whole = fit(tmp_path, "whole", micro_batch=0)
    pieces = fit(tmp_path, "pieces", micro_batch=6)
    assert pieces.model.sizes[:3] == [6, 6, 4]
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(pieces.model.state_dict()[name], value, rtol=1e-4, atol=1e-4, msg=name)


def test_auto_splits_long_sequences_on_cpu_only():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    toy, mean_loss = ToySNN(), ce_rate()

    def size(setting, x, device=cpu, loss=mean_loss, model=toy):
        return microbatch.piece_size(setting, x, 128, device, microbatch.allowed(setting, loss, model))

    events = torch.zeros(()).expand(300, 128, 2, 34, 34)  # csnn_spike's shape (T ~ 300, batch 128), no memory
    assert size("auto", events) == 16
    assert size("auto", events, cuda) == 128
    static = torch.zeros(128, 1, 28, 28).unsqueeze(0).expand(50, -1, -1, -1, -1)  # csnn_static: T = 50
    assert size("auto", static) == 128  # 6,400 folded: whole
    longer = torch.zeros(()).expand(100, 128, 10)  # 12,800 folded: pieces of <= 48 -> 3 x 43
    assert size("auto", longer) == 43
    assert size(0, events) == 128
    assert size(40, events) == 32  # 4 equal pieces, not 40 + 40 + 40 + 8
    assert size(200, events) == 128
    # auto leaves alone what pieces would change: a loss that is no per-sample mean, batch norm
    assert size("auto", events, loss=SumLoss()) == 128
    assert size("auto", events, model=NormedSNN()) == 128


def test_explicit_pieces_with_a_loss_that_is_no_sample_mean_is_a_recipe_error(tmp_path):
    with pytest.raises(RecipeError, match=r"train.micro_batch = 4: the loss \(SumLoss\) does not declare sample_mean"):
        fit(tmp_path, "run", SumLoss(), micro_batch=4)


def test_explicit_pieces_with_batch_norm_is_a_recipe_error(tmp_path):
    trainer = BPTTTrainer(epochs=1, lr=1e-2, device="cpu", loss=ce_rate(), micro_batch=4)
    with pytest.raises(RecipeError, match=r"batch normalisation \(drop\).*set train.micro_batch = 0"):
        trainer.fit(make_experiment(tmp_path / "run", model=NormedSNN))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("value", [-1, 2.5, "half", True])
def test_micro_batch_must_be_auto_or_a_count(value):
    with pytest.raises(ValueError, match=r'micro_batch must be "auto" or an integer >= 0'):
        BPTTTrainer(epochs=1, lr=1e-2, device="cpu", loss=ce_rate(), micro_batch=value)


def test_a_run_in_pieces_resumes_exactly_after_a_crash_mid_epoch(tmp_path):
    def trainer(epochs):
        return BPTTTrainer(epochs=epochs, lr=1e-2, device="cpu", loss=ce_rate(), milestones=[2], micro_batch=5)

    whole = trainer(3).fit(make_experiment(tmp_path / "whole"))  # the toy network with dropout
    run_dir = tmp_path / "crashed"
    # 6 batches an epoch, 4 pieces each: the 30th forward pass is in epoch 2's second batch
    with pytest.raises(InjectedCrash):
        trainer(3).fit(make_experiment(run_dir, model=lambda: CrashingSNN(crash_after=29)))
    resumed = trainer(3).fit(make_experiment(run_dir, resume=True))
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    strip = [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in whole.history]
    assert [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in resumed.history] == strip
