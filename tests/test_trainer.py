"""The bptt trainer on tiny in-test components: metrics, checkpoints, resume, divergence, options."""

import json
import logging
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from trainer_toys import CrashingSNN, InjectedCrash, make_experiment

from snnframe.builtins.losses.spike_losses import ce_count, ce_rate
from snnframe.builtins.training.bptt import TIMING_KEYS, BPTTTrainer
from snnframe.builtins.training.errors import ResumeError, TrainingDiverged
from snnframe.contracts import TrainResult

ROW_KEYS = {
    "epoch",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "lr",
    "train_seconds",
    "eval_seconds",
    "firing_rates",
}


def trainer(epochs=2, **params):
    params.setdefault("milestones", [2])
    return BPTTTrainer(epochs=epochs, lr=1e-2, device="cpu", loss=ce_rate(), **params)


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_timings(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def test_fit_writes_metrics_and_checkpoints_and_learns(tmp_path):
    run_dir = tmp_path / "run"
    result = trainer(epochs=3).fit(make_experiment(run_dir))

    assert isinstance(result, TrainResult) and result.is_main
    assert result.device == torch.device("cpu")
    history = rows(run_dir)
    assert history == result.history
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert all(set(row) == ROW_KEYS for row in history)
    assert all(list(row["firing_rates"]) == ["1:toylif", "2:toylif"] for row in history)
    assert all(0.0 < rate < 1.0 for row in history for rate in row["firing_rates"].values())
    # milestones [2], gamma 0.1: the lr *used during* epoch 3 is the decayed one
    assert [row["lr"] for row in history] == pytest.approx([1e-2, 1e-2, 1e-3])
    assert history[-1]["test_acc"] >= 0.9 > history[0]["train_acc"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["epoch_1.pt", "epoch_2.pt", "epoch_3.pt", "last.pt"]  # no temp files left behind


def test_checkpoint_is_weights_only_loadable_and_complete(tmp_path):
    run_dir = tmp_path / "run"
    result = trainer(epochs=2).fit(make_experiment(run_dir))
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 2
    assert state["history"] == result.history
    assert state["format"] == 3
    [rng] = state["rng"]  # one process: one random state
    assert set(rng) == {"torch", "cuda", "numpy", "python"}
    assert rng["cuda"] is None  # trained on CPU: CUDA untouched
    assert state["scheduler"]["last_epoch"] == 2
    assert state["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    for name, value in result.model.state_dict().items():
        assert torch.equal(state["model"][name], value)
    assert torch.load(run_dir / "checkpoints" / "epoch_1.pt", weights_only=True)["epoch"] == 1


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    whole = trainer(epochs=3).fit(make_experiment(tmp_path / "whole"))

    trainer(epochs=1).fit(make_experiment(tmp_path / "split"))
    assert len(rows(tmp_path / "split")) == 1
    resumed = trainer(epochs=3).fit(make_experiment(tmp_path / "split", resume=True))

    assert without_timings(rows(tmp_path / "split")) == without_timings(whole.history)
    assert without_timings(resumed.history) == without_timings(whole.history)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name


def test_resume_after_a_crash_mid_epoch(tmp_path):
    whole = trainer(epochs=3).fit(make_experiment(tmp_path / "whole"))

    run_dir = tmp_path / "crashed"
    # 96 samples / batch 16 = 6 batches an epoch: the 9th forward pass is mid-epoch 2
    with pytest.raises(InjectedCrash):
        trainer(epochs=3).fit(make_experiment(run_dir, model=lambda: CrashingSNN(crash_after=8)))
    assert [row["epoch"] for row in rows(run_dir)] == [1]
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1

    trainer(epochs=3).fit(make_experiment(run_dir, resume=True))
    assert without_timings(rows(run_dir)) == without_timings(whole.history)


def test_resume_after_the_process_is_killed_mid_epoch(tmp_path):
    whole = trainer(epochs=3).fit(make_experiment(tmp_path / "whole"))

    run_dir = tmp_path / "killed"
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from snnframe.builtins.losses.spike_losses import ce_rate\n"
        "from snnframe.builtins.training.bptt import BPTTTrainer\n"
        "from trainer_toys import KilledSNN, make_experiment\n"
        "experiment = make_experiment(Path(sys.argv[1]), model=lambda: KilledSNN(crash_after=15))\n"
        "BPTTTrainer(epochs=3, lr=1e-2, device='cpu', loss=ce_rate(), milestones=[2]).fit(experiment)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", script, str(run_dir)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    # 6 batches an epoch: killed at batch 3 of epoch 3, after two checkpoints
    assert [row["epoch"] for row in rows(run_dir)] == [1, 2]

    trainer(epochs=3).fit(make_experiment(run_dir, resume=True))
    assert without_timings(rows(run_dir)) == without_timings(whole.history)


def test_resume_drops_a_metrics_row_that_was_never_checkpointed(tmp_path):
    run_dir = tmp_path / "run"
    whole = trainer(epochs=2).fit(make_experiment(run_dir))
    # as if the process died after writing row 2 but before last.pt was replaced
    (run_dir / "checkpoints" / "last.pt").write_bytes((run_dir / "checkpoints" / "epoch_1.pt").read_bytes())
    trainer(epochs=2).fit(make_experiment(run_dir, resume=True))
    assert without_timings(rows(run_dir)) == without_timings(whole.history)


def test_resume_of_a_finished_run_trains_nothing_more(tmp_path, caplog):
    run_dir = tmp_path / "run"
    first = trainer(epochs=2).fit(make_experiment(run_dir))
    before = (run_dir / "checkpoints" / "last.pt").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="snnframe"):
        again = trainer(epochs=2).fit(make_experiment(run_dir, resume=True))
    assert again.history == first.history
    assert (run_dir / "checkpoints" / "last.pt").stat().st_mtime_ns == before
    assert "already trained for 2 epochs" in caplog.text


def test_resume_without_a_checkpoint_starts_from_epoch_one(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="snnframe"):
        result = trainer(epochs=1).fit(make_experiment(tmp_path / "run", resume=True))
    assert [row["epoch"] for row in result.history] == [1]
    assert "no " in caplog.text and "starting from epoch 1" in caplog.text


def test_resume_with_epoch_checkpoints_but_no_last_pt_changes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    trainer(epochs=2).fit(make_experiment(run_dir))
    checkpoints = run_dir / "checkpoints"
    (checkpoints / "last.pt").unlink()
    (checkpoints / "epoch_10.pt").write_bytes((checkpoints / "epoch_2.pt").read_bytes())  # 10 sorts after 2
    before = {p.name: p.read_bytes() for p in [run_dir / "metrics.jsonl", *checkpoints.iterdir()]}

    with pytest.raises(ResumeError, match=r"last\.pt is missing but .*epoch_10\.pt is there.*copy it to last\.pt"):
        trainer(epochs=3).fit(make_experiment(run_dir, resume=True))
    assert {p.name: p.read_bytes() for p in [run_dir / "metrics.jsonl", *checkpoints.iterdir()]} == before

    # following the advice continues the run
    (checkpoints / "epoch_10.pt").unlink()
    (checkpoints / "last.pt").write_bytes((checkpoints / "epoch_2.pt").read_bytes())
    resumed = trainer(epochs=3).fit(make_experiment(run_dir, resume=True))
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda state: state.pop("history"), "lacks history"),
        (lambda state: state.pop("rng"), "lacks rng"),
        (lambda state: state["rng"][0].pop("numpy"), "malformed random state"),
        (lambda state: state.update(history=None), "malformed random state, history or epoch"),
    ],
    ids=["no history", "no rng", "no numpy state", "history None"],
)
def test_resume_from_an_incomplete_checkpoint_is_a_clear_error(tmp_path, damage, message):
    run_dir = tmp_path / "run"
    trainer(epochs=1).fit(make_experiment(run_dir))
    last = run_dir / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    damage(state)
    torch.save(state, last)
    with pytest.raises(ResumeError, match=message):
        trainer(epochs=2).fit(make_experiment(run_dir, resume=True))


def test_resume_from_an_unreadable_checkpoint_is_a_clear_error(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ResumeError, match=r"cannot resume: .*last\.pt is truncated or not a PyTorch checkpoint"):
        trainer().fit(make_experiment(run_dir, resume=True))


def test_resume_from_a_checkpoint_of_another_format_is_a_clear_error(tmp_path):
    run_dir = tmp_path / "run"
    trainer(epochs=1).fit(make_experiment(run_dir))
    last = run_dir / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["format"] = 1  # what snnframe wrote before the sampler's generator state was dropped
    state["rng"] = {**state["rng"][0], "sampler": torch.Generator().get_state()}
    torch.save(state, last)
    with pytest.raises(
        ResumeError,
        match="last.pt has checkpoint format 1, from another snnframe version; this one reads format 3 only",
    ):
        trainer(epochs=2).fit(make_experiment(run_dir, resume=True))


def test_resume_with_another_number_of_processes_warns_and_continues(tmp_path, caplog):
    run_dir = tmp_path / "run"
    trainer(epochs=1).fit(make_experiment(run_dir))
    last = run_dir / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["rng"] = state["rng"] * 2  # as if two processes had trained
    torch.save(state, last)
    with caplog.at_level(logging.WARNING, logger="snnframe"):
        resumed = trainer(epochs=2).fit(make_experiment(run_dir, resume=True))
    assert "holds the random states of 2 process(es) but 1 train now" in caplog.text
    assert [row["epoch"] for row in resumed.history] == [1, 2]


def test_cpu_training_on_a_cuda_machine_leaves_cuda_random_states_alone(tmp_path, monkeypatch):
    def refuse(name):
        def no_cuda(*args, **kwargs):  # a function of its own per name: torch._dynamo indexes them
            raise AssertionError(f"a CPU run called torch.cuda.{name}")

        return no_cuda

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    # torch's own optimizer step would then look for a CUDA stream this machine lacks
    monkeypatch.setattr(
        torch.optim.Optimizer, "_accelerator_graph_capture_health_check", lambda self: None, raising=False
    )
    for name in ("get_rng_state", "get_rng_state_all", "set_rng_state", "set_rng_state_all", "manual_seed"):
        monkeypatch.setattr(torch.cuda, name, refuse(name))
    run_dir = tmp_path / "run"
    trainer(epochs=1).fit(make_experiment(run_dir))
    trainer(epochs=2).fit(make_experiment(run_dir, resume=True))


def test_a_process_saves_and_restores_only_its_own_cuda_device(monkeypatch):
    from snnframe.builtins.training.checkpoint import capture_rng, restore_rng

    calls = []
    own = torch.tensor([7, 7], dtype=torch.uint8)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: calls.append(("get", device)) or own)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("read every device's state"))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: calls.append(("set", state, device)))
    device = torch.device("cuda", 1)  # rank 1 of a run on one machine
    state = capture_rng(device)
    assert state["cuda"] is own and calls == [("get", device)]
    restore_rng(state, device)
    assert calls[1] == ("set", own, device)


def test_resume_with_a_different_model_is_a_clear_error(tmp_path):
    from trainer_toys import ToySNN

    run_dir = tmp_path / "run"
    trainer(epochs=1).fit(make_experiment(run_dir))
    with pytest.raises(ResumeError, match="does not fit this recipe's model"):
        trainer(epochs=2).fit(make_experiment(run_dir, resume=True, model=lambda: ToySNN(hidden=5)))


class NaNFromEpoch:
    """ce_count, but NaN once ``start`` batches have been seen."""

    def __init__(self, start):
        self.calls, self.start, self.inner = 0, start, ce_count()

    def __call__(self, spikes, targets):
        loss = self.inner(spikes, targets)
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls > self.start:
                return loss * float("nan")
        return loss


def test_non_finite_loss_stops_with_the_last_good_checkpoint_kept(tmp_path):
    run_dir = tmp_path / "run"
    t = BPTTTrainer(epochs=3, lr=1e-2, device="cpu", loss=NaNFromEpoch(start=6 + 2))
    with pytest.raises(TrainingDiverged) as info:
        t.fit(make_experiment(run_dir))
    message = str(info.value)
    assert "nan at epoch 2, batch 3" in message
    assert "last.pt (epoch 1) is kept" in message
    assert isinstance(info.value, RuntimeError)
    assert [row["epoch"] for row in rows(run_dir)] == [1]
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1


def test_non_finite_loss_in_the_first_epoch_says_no_checkpoint_exists(tmp_path):
    t = BPTTTrainer(epochs=1, lr=1e-2, device="cpu", loss=NaNFromEpoch(start=0))
    with pytest.raises(TrainingDiverged, match="no checkpoint was written yet"):
        t.fit(make_experiment(tmp_path / "run"))


def test_sgd_with_cosine_schedule(tmp_path):
    result = trainer(epochs=4, optimizer="sgd", scheduler="cosine", min_lr=1e-3).fit(make_experiment(tmp_path))
    expected = [1e-3 + (1e-2 - 1e-3) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert [row["lr"] for row in result.history] == pytest.approx(expected)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["momentum"] == 0.9


def test_adamw_default_weight_decay_and_constant_lr(tmp_path):
    result = trainer(epochs=2, optimizer="adamw", scheduler="none").fit(make_experiment(tmp_path))
    assert [row["lr"] for row in result.history] == [1e-2, 1e-2]
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["weight_decay"] == 0.01
    assert state["scheduler"] == {}


def test_checkpoint_every_and_grad_clip(tmp_path):
    trainer(epochs=5, checkpoint_every=2, grad_clip=0.5).fit(make_experiment(tmp_path))
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["epoch_2.pt", "epoch_4.pt", "epoch_5.pt", "last.pt"]


def grad_norms_at_each_step(run):
    """The global gradient norm the optimizer sees at each of its steps during ``run()``."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    norms = []

    def record(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())

    handle = register_optimizer_step_pre_hook(record)
    try:
        run()
    finally:
        handle.remove()
    return norms


def test_gradients_are_clipped(tmp_path):
    clip = 1e-3
    free = grad_norms_at_each_step(lambda: trainer(epochs=1).fit(make_experiment(tmp_path / "free")))
    clipped = grad_norms_at_each_step(lambda: trainer(epochs=1, grad_clip=clip).fit(make_experiment(tmp_path / "clip")))
    assert len(free) == len(clipped) == 6  # one step per batch
    assert min(free) > 10 * clip  # without grad_clip the norms are far above it: the clip has work to do
    assert max(clipped) <= clip * (1 + 1e-4)
    assert max(clipped) >= clip * (1 - 1e-4)  # clipped to the limit, not zeroed


def test_precision_other_than_fp32_falls_back_on_cpu(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="snnframe"):
        bf16 = trainer(epochs=1, precision="bf16").fit(make_experiment(tmp_path / "bf16"))
    fp32 = trainer(epochs=1).fit(make_experiment(tmp_path / "fp32"))
    assert "applies on CUDA only; training in fp32" in caplog.text
    assert without_timings(bf16.history) == without_timings(fp32.history)


def test_progress_bar_and_batch_logging(tmp_path, capsys, caplog):
    with caplog.at_level(logging.INFO, logger="snnframe"):
        trainer(epochs=1, progress=True, log_every=3).fit(make_experiment(tmp_path))
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "acc=" in err
    assert "epoch 1 batch 3/6  loss" in caplog.text and "epoch 1 batch 6/6" in caplog.text


def test_no_progress_bar_when_not_a_tty(tmp_path, capsys):
    trainer(epochs=1).fit(make_experiment(tmp_path))
    assert "loss=" not in capsys.readouterr().err


def test_non_main_process_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    result = trainer(epochs=2).fit(make_experiment(run_dir, is_main=False))
    assert not result.is_main and len(result.history) == 2
    assert list(run_dir.iterdir()) == []


@pytest.mark.parametrize(
    "params, message",
    [
        ({"optimizer": "adagrad"}, "optimizer must be adam, adamw or sgd"),
        ({"betas": [0.9]}, "betas must be two numbers"),
        ({"momentum": 1.5}, "momentum must be in"),
        ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
        ({"scheduler": "step"}, "scheduler must be multistep, cosine or none"),
        ({"milestones": [15, 10]}, "milestones must be increasing positive epochs"),
        ({"gamma": 0.0}, "gamma must be in"),
        ({"min_lr": 1.0}, "min_lr must be in"),
        ({"grad_clip": 0.0}, "grad_clip must be positive"),
        ({"checkpoint_every": -1}, "checkpoint_every must be >= 0"),
        ({"log_every": -2}, "log_every must be >= 0"),
        ({"device": "gpu"}, "device must be auto, cpu, cuda or cuda:N"),
        ({"lr": 0.0}, "lr must be positive"),
    ],
)
def test_bad_parameters_are_value_errors(params, message):
    kwargs = {"epochs": 2, "lr": 1e-2, "device": "cpu", "loss": ce_rate(), **params}
    with pytest.raises(ValueError, match=message):
        BPTTTrainer(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_on_a_machine_without_it_is_a_clear_error_when_the_trainer_is_built():
    with pytest.raises(ValueError, match="device = 'cuda' but this PyTorch build or machine has no CUDA device"):
        BPTTTrainer(epochs=1, lr=1e-2, device="cuda", loss=ce_rate())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_a_new_run_on_a_missing_device_is_a_recipe_error_and_leaves_no_directory(tmp_path):
    from click.testing import CliRunner

    from snnframe.cli import make_cli
    from snnframe.plugins import load_plugins

    out = tmp_path / "runs"
    quickstart = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.toml"
    args = [str(quickstart), "--set", f'experiment.out_dir="{out}"', "--set", "train.device=cuda:0"]
    for command in ("validate", "run"):
        result = CliRunner().invoke(make_cli(load_plugins()), [command, *args])
        assert result.exit_code == 2, result.output
        assert "train: device = 'cuda:0' but this PyTorch build or machine has no CUDA device" in result.output
        assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_resolve_device_still_refuses_a_missing_cuda_device():
    from snnframe.builtins.training.distributed import resolve_device
    from snnframe.builtins.training.errors import DeviceUnavailable

    with pytest.raises(DeviceUnavailable, match="no CUDA device"):
        resolve_device("cuda")


def test_plugin_modules_register_lazily_without_importing_torch():
    code = (
        "import sys\n"
        "import snnframe.builtins.training as t, snnframe.builtins.losses as l, snnframe.builtins.visualizers as v\n"
        "seen = {}\n"
        "for hook in (t.register_trainers, l.register_losses, v.register_visualizers):\n"
        "    hook(lambda name, ref, **options: seen.setdefault(name, ref))\n"
        "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules, sorted(sys.modules)\n"
        "print(seen)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    refs = eval(out)
    assert refs["bptt"] == "snnframe.builtins.training.bptt:BPTTTrainer"
    assert set(refs) == {"bptt", "ce_rate", "ce_count", "mse_count", "curves", "spike_count_gif", "raster"}
    import importlib

    for ref in refs.values():  # every lazy reference resolves
        module, attr = ref.split(":")
        assert callable(getattr(importlib.import_module(module), attr))


def test_resume_with_more_epochs_continues_the_schedule(tmp_path):
    whole = trainer(epochs=4, scheduler="cosine").fit(make_experiment(tmp_path / "whole"))
    # first planned for 3 epochs, then extended to 4 on resume: the cosine stretches to the new end
    trainer(epochs=3, scheduler="cosine").fit(make_experiment(tmp_path / "split"))
    resumed = trainer(epochs=4, scheduler="cosine").fit(make_experiment(tmp_path / "split", resume=True))
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert resumed.history[-1]["lr"] == pytest.approx(whole.history[-1]["lr"], rel=1e-12)
    assert 0 < resumed.history[-1]["lr"] < resumed.history[-2]["lr"]


def test_cpu_fit_keeps_freed_host_memory_unless_disabled(tmp_path, monkeypatch):
    from snnframe.engine import host_memory

    calls = []
    real = host_memory.keep_freed_memory

    def spy():
        calls.append(real())
        return calls[-1]

    monkeypatch.setattr(host_memory, "keep_freed_memory", spy)
    monkeypatch.setattr(host_memory, "_applied", False)
    monkeypatch.setenv("SNNFRAME_KEEP_FREED_MEMORY", "0")
    trainer(epochs=1).fit(make_experiment(tmp_path / "off"))
    assert calls == [False] and host_memory._applied is False

    monkeypatch.delenv("SNNFRAME_KEEP_FREED_MEMORY")
    trainer(epochs=1).fit(make_experiment(tmp_path / "on"))
    assert len(calls) == 2 and host_memory._applied is calls[1]  # once per run, before training
    assert calls[1] is sys.platform.startswith("linux")


@pytest.mark.parametrize("workers", [0, 1])
def test_kept_memory_is_released_before_loader_workers_fork(tmp_path, monkeypatch, workers):
    from snnframe.engine import host_memory

    calls = []
    monkeypatch.setattr(host_memory, "release_freed_memory", lambda: calls.append(1) or True)
    trainer(epochs=2).fit(make_experiment(tmp_path / "run", num_workers=workers))
    assert len(calls) == (4 if workers else 0)  # before each epoch's training and test loaders
