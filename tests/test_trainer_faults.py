"""The bptt trainer outside the happy path: preemption (SIGTERM mid-epoch), Ctrl-C, weights that diverge
while the loss stays finite, strict JSON metrics, large seeds, a disk that fills while saving."""

import errno
import json
import os
import signal

import pytest
import torch
from trainer_toys import PoisonedSNN, SignallingSNN, make_experiment

from snnframe.builtins.losses.spike_losses import ce_count, ce_rate
from snnframe.builtins.training.bptt import TIMING_KEYS, BPTTTrainer
from snnframe.builtins.training.errors import TrainingDiverged
from snnframe.errors import Preempted
from snnframe.io import WriteError


def trainer(epochs=3, **params):
    params.setdefault("milestones", [2])
    return BPTTTrainer(epochs=epochs, lr=1e-2, device="cpu", loss=ce_rate(), **params)


def rows(run_dir):
    # strict JSON: NaN or Infinity tokens fail here
    def refuse(token):
        raise AssertionError(f"metrics.jsonl holds {token}")

    return [json.loads(line, parse_constant=refuse) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_timings(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def last_state(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted run every interrupted one must reproduce."""
    result = trainer().fit(make_experiment(tmp_path_factory.mktemp("whole") / "run"))
    return result


def assert_same_run(resumed, run_dir, whole):
    assert without_timings(rows(run_dir)) == without_timings(whole.history)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name


# 96 samples / batch 16 = 6 batches an epoch
@pytest.mark.parametrize(
    "signal_at, during, where, epoch, batch",
    [
        (9, "train", "at epoch 2, batch 3 of 6", 1, 3),  # mid-epoch 2
        (6, "train", "at epoch 1, batch 6 of 6", 0, 6),  # the epoch's last batch, before its evaluation
        (2, "eval", "after epoch 1", 1, 0),  # during the evaluation: the epoch's checkpoint is the stop
    ],
    ids=["mid-epoch", "last batch", "evaluation"],
)
def test_sigterm_saves_where_training_is_and_resume_reproduces_the_run(
    tmp_path, whole, signal_at, during, where, epoch, batch
):
    run_dir = tmp_path / "run"
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Preempted) as info:
        trainer().fit(make_experiment(run_dir, model=lambda: SignallingSNN(signal_at, during=during)))
    message = str(info.value)
    assert f"stopped by SIGTERM {where}; the training state is saved in {run_dir / 'checkpoints' / 'last.pt'}" in (
        message
    )
    assert info.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is before  # the handler lives as long as fit
    state = last_state(run_dir)
    assert (state["epoch"], state.get("batch", 0), state["format"]) == (epoch, batch, 4 if batch else 3)
    assert [row["epoch"] for row in rows(run_dir)] == list(range(1, epoch + 1))
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == sorted(
        [f"epoch_{k}.pt" for k in range(1, epoch + 1)] + ["last.pt"]
    )  # a mid-epoch state is last.pt only

    resumed = trainer().fit(make_experiment(run_dir, resume=True))
    assert_same_run(resumed, run_dir, whole)


def test_a_second_sigterm_after_resuming_mid_epoch_still_reproduces_the_run(tmp_path, whole):
    run_dir = tmp_path / "run"
    with pytest.raises(Preempted, match="epoch 2, batch 2 of 6"):
        trainer().fit(make_experiment(run_dir, model=lambda: SignallingSNN(8)))
    # resumed from batch 2, stopped again at batch 5 (3 training passes later)
    with pytest.raises(Preempted, match="epoch 2, batch 5 of 6"):
        trainer().fit(make_experiment(run_dir, resume=True, model=lambda: SignallingSNN(3)))
    resumed = trainer().fit(make_experiment(run_dir, resume=True))
    assert_same_run(resumed, run_dir, whole)


def test_sigint_keeps_its_behaviour_the_epoch_checkpoint_is_the_restart(tmp_path, whole):
    run_dir = tmp_path / "run"
    models, before = [], signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        trainer().fit(
            make_experiment(run_dir, model=lambda: models.append(SignallingSNN(9, signal.SIGINT)) or models[0])
        )
    assert models[0].sigint_handler is before  # the trainer leaves Ctrl-C to whoever handled it before
    state = last_state(run_dir)
    assert (state["epoch"], state["format"], "batch" in state) == (1, 3, False)
    resumed = trainer().fit(make_experiment(run_dir, resume=True))
    assert_same_run(resumed, run_dir, whole)


def test_a_mid_epoch_checkpoint_is_read_back_by_load_run_rules(tmp_path):
    from snnframe.rundir import read_checkpoint

    run_dir = tmp_path / "run"
    with pytest.raises(Preempted):
        trainer().fit(make_experiment(run_dir, model=lambda: SignallingSNN(9)))
    state = read_checkpoint(run_dir / "checkpoints" / "last.pt")  # what load_run reads
    assert state["epoch"] == 1 and state["batch"] == 3 and len(state["history"]) == 1


def test_weights_that_become_nan_while_the_loss_stays_finite_stop_training(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as info:
        trainer().fit(make_experiment(run_dir, model=lambda: PoisonedSNN(poison_at=8)))
    message = str(info.value)
    assert "the model's weights became nan (first in fc2.weight)" in message and "epoch 2" in message
    assert "while the loss was still finite" in message
    assert f"the last good checkpoint {run_dir / 'checkpoints' / 'last.pt'} (epoch 1) is kept" in message
    assert [row["epoch"] for row in rows(run_dir)] == [1]
    assert all(torch.isfinite(v).all() for v in last_state(run_dir)["model"].values())


def test_an_infinite_learning_rate_is_caught_at_the_next_batch(tmp_path):
    # the core refuses train.lr = inf; a trainer built directly still must not save nan weights
    t = BPTTTrainer(epochs=1, lr=float("inf"), device="cpu", loss=ce_rate())
    with pytest.raises(
        TrainingDiverged, match=r"weights became (nan|inf) .* in the optimizer step of epoch 1, batch 1"
    ):
        t.fit(make_experiment(tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


class NaNInEvaluation:
    """ce_count in training, nan on the test set."""

    def __init__(self):
        self.inner = ce_count()

    def __call__(self, spikes, targets):
        loss = self.inner(spikes, targets)
        return loss if torch.is_grad_enabled() else loss * float("nan")


def test_metrics_rows_are_strict_json_a_non_finite_value_is_null(tmp_path):
    run_dir = tmp_path / "run"
    result = BPTTTrainer(epochs=1, lr=1e-2, device="cpu", loss=NaNInEvaluation()).fit(make_experiment(run_dir))
    [row] = rows(run_dir)
    assert row["test_loss"] is None and row["train_loss"] > 0
    assert result.history == [row]


def test_a_seed_past_32_bits_trains_and_resumes_exactly(tmp_path):
    seed = 2**40 + 7
    whole = trainer(epochs=2).fit(make_experiment(tmp_path / "whole", seed=seed))
    trainer(epochs=1).fit(make_experiment(tmp_path / "split", seed=seed))
    trainer(epochs=2).fit(make_experiment(tmp_path / "split", seed=seed, resume=True))
    assert without_timings(rows(tmp_path / "split")) == without_timings(whole.history)


class FullDisk:
    """A file whose writes fail with ENOSPC once ``room`` bytes are written (the disk filling mid-write)."""

    def __init__(self, f, room):
        self.f, self.room = f, room

    def write(self, data):
        if len(data) > self.room:
            self.f.write(bytes(data[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_a_disk_that_fills_during_a_checkpoint_keeps_the_last_good_one(tmp_path, monkeypatch):
    import snnframe.io

    run_dir = tmp_path / "run"
    real_open = open
    writes = []

    def open_(path, mode="r", **kwargs):
        f = real_open(path, mode, **kwargs)
        if ".last.pt." in str(path):
            writes.append(path)
            if len(writes) == 2:  # epoch 2's checkpoint
                return FullDisk(f, room=5000)
        return f

    monkeypatch.setattr(snnframe.io, "open", open_, raising=False)
    with pytest.raises(WriteError) as info:
        trainer().fit(make_experiment(run_dir))
    last = run_dir / "checkpoints" / "last.pt"
    assert str(info.value) == (
        f"cannot write {last}: no space left on the device; the last good checkpoint {last} (epoch 1) is kept. "
        "Make room (or fix the file system), then continue with --resume"
    )
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert sorted(p.name for p in last.parent.iterdir()) == ["epoch_1.pt", "last.pt"]  # no temporary file
    assert last_state(run_dir)["epoch"] == 1 and [r["epoch"] for r in rows(run_dir)] == [1]

    monkeypatch.undo()
    trainer().fit(make_experiment(run_dir, resume=True))  # room again: the run goes on
    assert [r["epoch"] for r in rows(run_dir)] == [1, 2, 3]


def test_a_disk_that_fills_during_a_metrics_row_leaves_no_half_line(tmp_path, monkeypatch):
    import snnframe.io

    run_dir = tmp_path / "run"
    real_write = os.write
    metrics = run_dir / "metrics.jsonl"

    def write(fd, data):
        if metrics.exists() and os.path.samestat(os.fstat(fd), os.stat(metrics)) and metrics.stat().st_size > 0:
            real_write(fd, bytes(data[:20]))  # part of the second row gets out, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(snnframe.io.os, "write", write)
    with pytest.raises(WriteError, match=r"cannot append to .*metrics\.jsonl: no space left on the device; the "):
        trainer().fit(make_experiment(run_dir))
    monkeypatch.undo()
    assert [r["epoch"] for r in rows(run_dir)] == [1]  # the half row was cut off again
    assert last_state(run_dir)["epoch"] == 2  # the checkpoint holds the row ...
    trainer().fit(make_experiment(run_dir, resume=True))
    assert [r["epoch"] for r in rows(run_dir)] == [1, 2, 3]  # ... and resume writes it back


class Augmented:
    """The toy data set with noise drawn where a training sample is loaded (augmentation, in this process)."""

    def __init__(self):
        from trainer_toys import ToyDataset

        self.inner = ToyDataset()
        self.info = self.inner.info

    def splits(self, transform):
        train, test = self.inner.splits(transform)

        class Noisy(torch.utils.data.Dataset):
            def __len__(self):
                return len(train)

            def __getitem__(self, index):
                x, y = train[index]
                return x + 0.3 * torch.randn(x.shape), y

        return Noisy(), test


def test_resuming_mid_epoch_skips_batches_without_drawing_their_augmentation_again(tmp_path):
    # the loader draws the skipped batches' noise again; the random streams are restored after them
    whole = trainer().fit(make_experiment(tmp_path / "whole", dataset=Augmented()))
    run_dir = tmp_path / "run"
    with pytest.raises(Preempted):
        trainer().fit(make_experiment(run_dir, dataset=Augmented(), model=lambda: SignallingSNN(9)))
    resumed = trainer().fit(make_experiment(run_dir, dataset=Augmented(), resume=True))
    assert_same_run(resumed, run_dir, whole)
