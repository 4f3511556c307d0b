"""Seeing inside a run: firing rates, SynOps and energy, warnings, loggers, eval and sweeps."""

import json
import logging

import pytest
import torch
from click.testing import CliRunner
from torch import nn
from trainer_toys import ToySNN, make_experiment

from snnframe.builtins.losses.spike_losses import ce_rate
from snnframe.builtins.training.bptt import BPTTTrainer
from snnframe.builtins.training.diagnostics import epoch_warnings, stuck_loss_warning
from snnframe.cli import make_cli
from snnframe.engine import (
    ENERGY_PER_AC_J,
    ENERGY_PER_MAC_J,
    FiringRecorder,
    SpikingNeuron,
    SpikingSequential,
    SynapticOps,
    energy_j,
    fan_out,
    spiking_layers,
)
from snnframe.recipe import parse, read


class Threshold(SpikingNeuron):
    """Memoryless: fires wherever the input exceeds 0.5 (so a test sets the spikes exactly)."""

    def simulate(self, x, return_mem):
        return (x > 0.5).to(x.dtype), None


class RecurrentThreshold(Threshold):
    """A neuron with weights between its neurons (which this test does not use to compute)."""

    def __init__(self, n):
        super().__init__()
        self.recurrent = nn.Linear(n, n, bias=False)


def strict_json(line):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(line, parse_constant=refuse)


# --- synaptic operations, counted by hand ------------------------------------------------------


def test_fan_out_counts_each_inputs_synapses_at_borders_and_with_stride():
    # 3x3 kernel, padding 1, 2 output channels on a 3x3 input: a corner is in 4 windows, an edge in 6, the centre in 9
    same = fan_out(nn.Conv2d(1, 2, 3, padding=1), (1, 3, 3))
    assert same.tolist() == [[[8, 12, 8], [12, 18, 12], [8, 12, 8]]]
    # stride 2: outputs centred on the corners only; a corner is read by 1 window, an edge by 2, the centre by 4
    strided = fan_out(nn.Conv2d(1, 2, 3, padding=1, stride=2), (1, 3, 3))
    assert strided.tolist() == [[[2, 4, 2], [4, 8, 4], [2, 4, 2]]]
    # no padding, 2x2 kernel on 1x3: the middle element is in both windows; groups split the channels
    assert fan_out(nn.Conv1d(2, 4, 2, groups=2), (2, 3)).tolist() == [[2, 4, 2], [2, 4, 2]]
    assert fan_out(nn.Linear(8, 5), (8,)).tolist() == [5] * 8


def tiny_network():
    """conv 3x3 pad 1 (1 -> 2 channels) -> neuron -> max-pool 2 stride 1 -> flatten -> linear 8 -> 4 -> neuron.

    The convolution passes its input to channel 0 (centre tap 1) and gives channel 1 nothing, so the
    first neuron's spikes are the input spikes in channel 0; the linear layer's weights are zero.
    """
    conv, linear = nn.Conv2d(1, 2, 3, padding=1), nn.Linear(8, 4)
    with torch.no_grad():
        for p in [*conv.parameters(), *linear.parameters()]:
            p.zero_()
        conv.weight[0, 0, 1, 1] = 1.0
    return SpikingSequential(conv, Threshold(), nn.MaxPool2d(2, stride=1), nn.Flatten(), linear, Threshold())


def test_synops_of_a_tiny_network_match_a_hand_count():
    net = tiny_network()
    x = torch.zeros(2, 2, 1, 3, 3)  # T=2, B=2; the second sample never spikes
    x[0, 0, 0, 0, 0] = x[0, 0, 0, 1, 1] = 1  # t=0: a corner (8 synapses) and the centre (18)
    x[1, 0, 0, 0, 1] = 1  # t=1: an edge (12)
    with torch.no_grad(), SynapticOps(net) as ops:
        net(x)
    counted = ops.per_sample()
    # conv: 8 + 18 + 12 = 38. Neuron 1 repeats them in channel 0; the 2x2 windows (stride 1) of the 3x3 map
    # that hold a spike: all 4 at t=0 (the centre is in every window), the top 2 at t=1 -> 6 spikes reach
    # the linear layer, 4 synapses each = 24. 62 for the batch, 2 samples: 31 per sample.
    assert ops.samples == 2
    assert counted["per_layer"]["1:conv2d"] == {"synops": 19.0, "macs": 0.0, "ann_macs": 98.0}
    assert counted["per_layer"]["2:linear"] == {"synops": 12.0, "macs": 0.0, "ann_macs": 32.0}
    # the same network as an ANN: conv 2 x (4 corners x 4 + 4 edges x 6 + 9) = 98, linear 8 x 4 = 32
    assert (counted["synops"], counted["snn_macs"], counted["ann_macs"]) == (31.0, 0.0, 130.0)
    assert energy_j(counted["synops"]) == pytest.approx(31 * 0.9e-12)
    assert energy_j(0, counted["ann_macs"]) == pytest.approx(130 * 4.6e-12)
    assert (ENERGY_PER_AC_J, ENERGY_PER_MAC_J) == (0.9e-12, 4.6e-12)


@pytest.mark.parametrize("batch", [1, 7])
def test_a_linear_layer_on_time_major_input_counts_per_sample(batch):
    """A plugin model may apply nn.Linear to [T, B, F] without folding time: B is not a dimension of the layer."""
    net = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad(), SynapticOps(net) as ops:
        net(torch.ones(5, batch, 4))
    # per sample: 5 steps x 4 inputs x 3 synapses accumulate; the ANN does 4 x 3 MACs once
    assert ops.per_sample()["per_layer"]["1:linear"] == {"synops": 60.0, "macs": 0.0, "ann_macs": 12.0}


def test_a_layer_fed_by_non_spike_input_is_counted_as_macs_once_per_step_it_runs():
    image = torch.rand(2, 1, 3, 3) * 0.4 + 0.05  # real-valued, never a whole number
    counts = {}
    for kind, x in [("static", image.unsqueeze(0).expand(5, -1, -1, -1, -1)), ("copied", image.repeat(5, 1, 1, 1, 1))]:
        net = tiny_network()
        with torch.no_grad(), SynapticOps(net) as ops:
            net(x)
        counts[kind] = ops.per_sample()["per_layer"]["1:conv2d"]
    # the engine runs the first convolution once for static input, five times for five copies
    assert counts["static"] == {"synops": 0.0, "macs": 98.0, "ann_macs": 98.0}
    assert counts["copied"] == {"synops": 0.0, "macs": 5 * 98.0, "ann_macs": 98.0}


def test_recurrent_weights_inside_a_neuron_count_its_spikes_one_step_later():
    neuron = RecurrentThreshold(3)
    net = SpikingSequential(nn.Linear(3, 3, bias=False), neuron)
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(3))
    x = torch.tensor([[[1.0, 1, 0]], [[0, 1, 0]], [[1, 1, 1]]])  # T=3, B=1: 2, 1, 3 spikes
    with torch.no_grad(), SynapticOps(net) as ops:
        net(x)
    counted = ops.per_sample()
    # the input layer: 6 input spikes x 3 synapses; the recurrent weights: spikes at t=0, 1 (the last step
    # drives nothing) x 3 synapses each; the ANN has no steps, so no recurrent MACs
    assert counted["per_layer"]["1:linear"]["synops"] == 18.0
    assert counted["per_layer"]["1:recurrentthreshold.linear"] == {"synops": 9.0, "macs": 0.0, "ann_macs": 0.0}
    assert (counted["synops"], counted["ann_macs"]) == (27.0, 9.0)


# --- firing rates --------------------------------------------------------------------------------


def test_firing_recorder_names_layers_and_measures_spikes_per_neuron_per_step():
    net = tiny_network()
    assert [name for name, _ in spiking_layers(net)] == ["1:threshold", "2:threshold"]
    x = torch.zeros(2, 2, 1, 3, 3)
    x[0, 0, 0, 0, 0] = x[0, 0, 0, 1, 1] = x[1, 0, 0, 0, 1] = 1
    with torch.no_grad(), FiringRecorder(net) as recorder:
        net(x)
        net(x)
    # 3 spikes in 2 steps x 2 samples x 18 neurons, twice
    assert recorder.rates() == {"1:threshold": pytest.approx(3 / 72), "2:threshold": 0.0}
    per_neuron = recorder.neuron_rates()["1:threshold"]
    assert per_neuron.shape == (18,) and per_neuron[:2].tolist() == [0.25, 0.25] and per_neuron.sum() == 0.75
    # data parallel: two processes' counts add up
    recorder.gather(lambda state: [state, state])
    assert recorder.rates()["1:threshold"] == pytest.approx(3 / 72)
    assert recorder.neuron_rates()["1:threshold"].sum() == pytest.approx(0.75)
    assert not net[1]._forward_hooks  # hooks are gone after the with block


# --- warnings --------------------------------------------------------------------------------------


class SilentSNN(ToySNN):
    """Its first spiking layer can never fire: no weights and a large negative bias."""

    def __init__(self):
        super().__init__()
        with torch.no_grad():
            self.fc1.weight.zero_()
            self.fc1.bias.fill_(-50.0)


def test_a_silent_layer_is_reported_after_the_first_epoch(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="snnframe")
    run_dir = tmp_path / "run"
    trainer = BPTTTrainer(epochs=2, lr=1e-2, device="cpu", loss=ce_rate(), milestones=[5])
    trainer.fit(make_experiment(run_dir, model=SilentSNN))
    messages = [r.getMessage() for r in caplog.records]
    first = next(i for i, m in enumerate(messages) if "layer 1:toylif is silent" in m)
    assert messages[first - 1].startswith("epoch 1/2")  # right after epoch 1's line
    assert caplog.records[first].levelno == logging.WARNING
    assert messages[first].startswith("warning: layer 1:toylif is silent: it fired on 0.0000% of its neuron-steps")
    assert "a larger beta (slower leak) or a smaller threshold" in messages[first]
    rows = [strict_json(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["firing_rates"]["1:toylif"] for row in rows] == [0.0, 0.0]


def test_warning_thresholds_and_what_they_suggest():
    settings = {"silent_below": 0.001, "saturated_above": 0.9, "num_classes": 10, "loss_kind": "ce_rate"}
    row = {"epoch": 1, "train_loss": 1.0, "test_acc": 0.5, "lr": 0.01, "firing_rates": {"1:leaky": 0.0004}}
    (silent,) = epoch_warnings([row], settings)
    assert silent.startswith("layer 1:leaky is silent: it fired on 0.0400% of its neuron-steps")
    assert "mse_count instead of ce_rate" in silent
    row["firing_rates"] = {"1:leaky": 0.01, "2:leaky": 0.95}
    (saturated,) = epoch_warnings([row], settings)
    assert saturated.startswith("layer 2:leaky is saturated: it fired on 95.0%")
    assert "a lower train.lr (now 0.01)" in saturated
    assert epoch_warnings([row], {**settings, "saturated_above": 1.0}) == []  # 1 turns the check off


def test_a_stuck_loss_at_chance_is_reported_after_two_epochs():
    stuck = {"train_loss": 2.302585, "test_acc": 0.1}
    assert stuck_loss_warning([{"epoch": 1, **stuck}], 10, "ce_rate") is None
    message = stuck_loss_warning([{"epoch": 1, **stuck}, {"epoch": 2, **stuck, "train_loss": 2.30261}], 10, "ce_rate")
    assert message.startswith("the training loss has stayed at 2.3026 for 2 epochs while the test accuracy (10.0%)")
    assert "ln(10) = 2.3026 means the output layer is silent" in message
    learning = [{"epoch": 1, **stuck}, {"epoch": 2, **stuck, "test_acc": 0.4}]
    assert stuck_loss_warning(learning, 10) is None  # unchanged loss, but above chance
    moving = [{"epoch": 1, **stuck}, {"epoch": 2, **stuck, "train_loss": 2.2}]
    assert stuck_loss_warning(moving, 10) is None


# --- recipes: loggers as a list of names or tables ---------------------------------------------------

MINIMAL = {"data": {"kind": "d"}, "encoder": {"kind": "e"}, "model": {"kind": "m"}}


def test_a_name_in_a_list_of_tables_is_a_table_with_only_its_kind():
    data = {**MINIMAL, "train": {"loggers": ["tb", {"kind": "wandb", "project": "x"}]}, "visualize": ["c"]}
    recipe = parse(data, default_name="x")
    assert recipe.table("train.loggers[0]").kind == "tb"
    assert (recipe.table("train.loggers[1]").kind, recipe.table("train.loggers[1]").params) == (
        "wandb",
        {"project": "x"},
    )
    assert recipe.table("visualize[0]").kind == "c"
    assert "loggers" not in recipe.train.params  # not a trainer option
    saved = recipe.to_dict()
    assert saved["train"]["loggers"] == [{"kind": "tb"}, {"kind": "wandb", "project": "x"}]
    assert parse(saved, default_name="x").to_dict() == saved


@pytest.fixture
def invoke(toy_plugins):
    runner = CliRunner()
    return lambda *args: runner.invoke(make_cli(toy_plugins), [str(a) for a in args])


def test_loggers_are_started_fed_each_epoch_and_closed(invoke, toy_recipe, tmp_path):
    result = invoke("run", toy_recipe, "--set", 'train.loggers=["toy_log"]')
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "toy"
    lines = (run_dir / "logger.txt").read_text().splitlines()
    assert lines == ["start toy resume=False", "epoch 1 train_loss=1.0", "epoch 2 train_loss=0.5", "close"]
    saved = read(run_dir / "recipe.toml")
    assert saved["train"]["loggers"] == [{"kind": "toy_log", "filename": "logger.txt"}]
    # loggers may change on resume (they do not change what is trained): a run started without one
    assert invoke("run", toy_recipe, "--set", "experiment.name=later").exit_code == 0
    result = invoke(
        "run",
        toy_recipe,
        "--resume",
        "--set",
        "experiment.name=later",
        "--set",
        "train.epochs=3",
        "--set",
        'train.loggers=["toy_log"]',
    )
    assert result.exit_code == 0, result.output
    lines = (run_dir.parent / "later" / "logger.txt").read_text().splitlines()
    assert lines == ["start later resume=True", "epoch 3 train_loss=0.3333333333333333", "close"]


def test_a_failing_logger_is_switched_off_and_reported_when_the_run_ends(invoke, toy_recipe, tmp_path):
    result = invoke("run", toy_recipe, "--set", 'train.loggers=["toy_broken_log", {kind = "toy_log"}]')
    assert result.exit_code == 1
    run_dir = tmp_path / "runs" / "toy"
    assert "logger toy_broken_log failed at epoch 1 and is switched off: the logging server went away" in result.output
    assert "but loggers failed: toy_broken_log (OSError: the logging server went away)" in result.output
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2  # training went on
    assert (run_dir / "logger.txt").read_text().splitlines()[-1] == "close"  # the other logger kept going


def test_an_unknown_logger_and_bad_items_are_recipe_errors(invoke, toy_recipe):
    result = invoke("validate", toy_recipe, "--set", 'train.loggers=["toy_lg", 3]')
    assert result.exit_code == 2
    assert 'train.loggers[0].kind: unknown logger "toy_lg" (did you mean "toy_log"?)' in result.output
    assert "train.loggers[1]: expected a table, got 3" in result.output


def test_without_tensorboard_the_logger_names_the_extra_to_install(monkeypatch, tmp_path):
    import importlib.util

    from snnframe.plugins import load_plugins

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    result = CliRunner().invoke(
        make_cli(load_plugins()),
        [
            "validate",
            "recipes/quickstart.toml",
            "--set",
            'train.loggers=["tensorboard"]',
            "--set",
            f"experiment.out_dir={tmp_path}",
        ],
    )
    assert result.exit_code == 2
    assert (
        "train.loggers[0]: the tensorboard logger needs the tensorboard package: pip install 'snnframe[tensorboard]'"
        in result.output
    )


def test_logger_plugins_register_without_importing_torch_or_tensorboard():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import snnframe.builtins.loggers as loggers\n"
        "seen = {}\n"
        "loggers.register_loggers(lambda name, ref, **options: seen.setdefault(name, ref))\n"
        "assert not {'torch', 'tensorboard'} & set(sys.modules), sorted(sys.modules)\n"
        "print(seen)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == {"tensorboard": "snnframe.builtins.loggers.tensorboard:TensorBoardLogger"}


def test_a_resumed_run_replaces_the_tensorboard_events_of_epochs_after_its_checkpoint(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from snnframe.builtins.loggers.tensorboard import TensorBoardLogger, scalars
    from snnframe.contracts import EpochReport, LoggerContext

    def log(resume, rows):
        logger = TensorBoardLogger(histograms=False)
        logger.start(LoggerContext(tmp_path, "run", {}, resume))
        for epoch, acc in rows:
            logger.log_epoch(EpochReport(epoch, {"epoch": epoch, "test_acc": acc, "firing_rates": {"1:leaky": 0.5}}))
        logger.close()

    log(False, [(1, 0.1), (2, 0.2), (3, 0.3)])  # epoch 3 was logged, but the run died before its checkpoint
    log(True, [(3, 0.35), (4, 0.4)])
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("test_acc")] == [
        (1, 0.1),
        (2, 0.2),
        (3, 0.35),
        (4, 0.4),
    ]
    assert scalars({"epoch": 1, "a": 1, "b": None, "c": True, "d": {"e": 2.5}, "f": float("nan")}) == {
        "a": 1.0,
        "d/e": 2.5,
    }
