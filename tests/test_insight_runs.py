"""Insight on real runs of a small quick start: firing rates, TensorBoard, eval, the silent warning, sweeps."""

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from snnframe.cli import make_cli
from snnframe.plugins import load_plugins

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "recipes" / "quickstart.toml"
TINY = [  # the quick start, small: an MLP on a quarter of the embedded digits
    "--set",
    'model={kind = "mlp", hidden = [32]}',
    "--set",
    "encoder.num_steps=8",
    "--set",
    "data.subset=4",
    "--set",
    "data.test_subset=4",
    "--set",
    "visualize=[]",
]


def strict_rows(run_dir):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return [json.loads(line, parse_constant=refuse) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


@pytest.fixture(scope="module")
def cli(plugins):
    runner = CliRunner()
    return lambda *args: runner.invoke(make_cli(plugins), [str(a) for a in args])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, cli):
    """Two epochs of the small quick start with the TensorBoard logger."""
    out = tmp_path_factory.mktemp("runs")
    result = cli(
        "run",
        QUICKSTART,
        *TINY,
        "--set",
        "train.epochs=2",
        "--set",
        'train.loggers=["tensorboard"]',
        "--set",
        f"experiment.out_dir={out}",
    )
    assert result.exit_code == 0, result.output
    return out / "quickstart"


def test_every_row_has_the_firing_rate_of_each_spiking_layer(run_dir):
    rows = strict_rows(run_dir)
    assert len(rows) == 2
    for row in rows:
        assert list(row["firing_rates"]) == ["1:leaky", "2:leaky"]
        assert all(0.0 < rate < 1.0 for rate in row["firing_rates"].values())


def test_tensorboard_events_hold_the_scalars_and_histograms_of_each_epoch(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    rows = strict_rows(run_dir)
    scalars = set(events.Tags()["scalars"])
    assert {"train_loss", "test_loss", "test_acc", "train_acc", "lr", "firing_rates/1:leaky"} <= scalars
    for tag, key in [
        ("test_acc", ("test_acc",)),
        ("lr", ("lr",)),
        ("firing_rates/2:leaky", ("firing_rates", "2:leaky")),
    ]:
        expected = [row[key[0]] if len(key) == 1 else row[key[0]][key[1]] for row in rows]
        got = events.Scalars(tag)
        assert [e.step for e in got] == [1, 2]
        assert [e.value for e in got] == pytest.approx(expected, rel=1e-6)
    histograms = events.Histograms("firing_rate_per_neuron/1:leaky")
    assert [h.step for h in histograms] == [1, 2]
    assert histograms[-1].histogram_value.num == 32  # one value per hidden neuron
    mean = histograms[-1].histogram_value.sum / histograms[-1].histogram_value.num
    assert mean == pytest.approx(rows[-1]["firing_rates"]["1:leaky"], rel=1e-5)


def test_eval_reports_accuracy_rates_synops_and_energy(run_dir, cli):
    result = cli("eval", run_dir, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    last = strict_rows(run_dir)[-1]
    assert out["test_acc"] == last["test_acc"] and out["test_loss"] == pytest.approx(last["test_loss"], rel=1e-9)
    assert out["firing_rates"] == pytest.approx(last["firing_rates"], rel=1e-9)
    assert out["samples"] == 89 and out["num_steps"] == 8 and out["epoch"] == 2
    # 784 -> 32 -> 10: the first layer multiplies the static image (MACs, once: the engine hoists it), the
    # second accumulates the hidden spikes: 32 neurons x 8 steps x their rate x 10 synapses each
    assert out["snn_macs"] == 784 * 32 and out["macs"] == 784 * 32 + 32 * 10
    assert out["synops"] == pytest.approx(32 * 8 * out["firing_rates"]["1:leaky"] * 10, rel=1e-9)
    assert out["energy_j"] == pytest.approx(0.9e-12 * out["synops"] + 4.6e-12 * out["snn_macs"])
    assert out["ann_energy_j"] == pytest.approx(4.6e-12 * out["macs"])
    text = cli("eval", run_dir)
    assert text.exit_code == 0, text.output
    assert f"test accuracy {100 * last['test_acc']:.2f} %" in text.output
    assert "  1:leaky" in text.output and "  2:linear" in text.output
    assert "0.9 pJ per accumulate, 4.6 pJ per multiply-accumulate" in text.output
    assert "Horowitz" in text.output


def test_eval_of_a_directory_without_a_run_is_a_clear_error(cli, tmp_path):
    result = cli("eval", tmp_path)
    assert result.exit_code == 2
    assert f"snnframe: error: {tmp_path} holds no run: recipe.toml is missing" in result.output


def test_a_silent_network_prints_a_warning_naming_the_layer_after_epoch_1(cli, tmp_path):
    result = cli(
        "run",
        QUICKSTART,
        *TINY,
        "--set",
        "train.epochs=1",
        "--set",
        "model.neuron.threshold=1000",
        "--set",
        f"experiment.out_dir={tmp_path}",
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    epoch = next(i for i, line in enumerate(lines) if line.startswith("epoch 1/1"))
    assert lines[epoch + 1].startswith("warning: layer 1:leaky is silent: it fired on 0.0000% of its neuron-steps")
    assert any(line.startswith("warning: layer 2:leaky is silent") for line in lines)
    assert "warning: layer 1:leaky is silent" in (tmp_path / "quickstart" / "training.log").read_text()


def test_a_sweep_over_two_seeds_writes_its_summary_and_a_second_run_does_nothing_new(cli, tmp_path):
    args = [
        "sweep",
        QUICKSTART,
        "--seeds",
        "0,1",
        *TINY,
        "--set",
        "train.epochs=1",
        "--set",
        f"experiment.out_dir={tmp_path}",
    ]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert "sweep quickstart: 2 runs, 0 finished, 0 to resume, 2 to start" in result.output
    runs = [tmp_path / "quickstart-s0", tmp_path / "quickstart-s1"]
    finals = [strict_rows(r)[-1]["test_acc"] for r in runs]
    assert [read_seed(r) for r in runs] == [0, 1]
    summary = tmp_path / "quickstart-sweep"
    (row,) = list(csv.DictReader((summary / "summary.csv").open()))
    assert row["runs"] == "2"
    assert float(row["final_test_acc_mean"]) == pytest.approx(sum(finals) / 2, abs=1e-6)
    assert float(row["final_test_acc_std"]) == pytest.approx(abs(finals[0] - finals[1]) / 2**0.5, abs=1e-6)
    md = (summary / "summary.md").read_text()
    assert "| quickstart-s0 | 0 | 1 |" in md and "| quickstart-s1 | 1 | 1 |" in md
    assert (summary / "test_acc.png").stat().st_size > 5000
    before = {p: p.stat().st_mtime_ns for p in [*tmp_path.rglob("*")] if p.is_file()}

    again = cli(*args)
    assert again.exit_code == 0, again.output
    assert "2 runs, 2 finished, 0 to resume, 0 to start" in again.output
    assert "summary up to date" in again.output and "epoch 1/1" not in again.output
    assert {p: p.stat().st_mtime_ns for p in [*tmp_path.rglob("*")] if p.is_file()} == before

    # one more epoch for every run: each is resumed from its checkpoint, not started over
    longer = cli(*args[:-4], "--set", "train.epochs=2", "--set", f"experiment.out_dir={tmp_path}")
    assert longer.exit_code == 0, longer.output
    assert "2 runs, 0 finished, 2 to resume, 0 to start" in longer.output
    assert "epoch 1/2" not in longer.output and longer.output.count("epoch 2/2") == 2
    assert [len(strict_rows(r)) for r in runs] == [2, 2]
    assert "| quickstart-s0 | 0 | 2 |" in (summary / "summary.md").read_text()


def read_seed(run_dir):
    from snnframe.recipe import read

    return read(run_dir / "recipe.toml")["experiment"]["seed"]


def test_a_sweep_plan_names_each_grid_point_and_lists_its_command(cli, tmp_path):
    from snnframe.sweep import plan, split_values

    assert split_values("1e-3,[10,15],'a,b'") == ["1e-3", "[10,15]", "'a,b'"]
    sweep = plan(
        QUICKSTART, [0, 1], [f"experiment.out_dir={tmp_path}"], ["train.lr=1e-3,5e-3", "train.milestones=[5,7]"]
    )
    names = [p.name for p in sweep.points]
    assert names == [
        "quickstart-s0-train.lr=1e-3-train.milestones=5_7",
        "quickstart-s1-train.lr=1e-3-train.milestones=5_7",
        "quickstart-s0-train.lr=5e-3-train.milestones=5_7",
        "quickstart-s1-train.lr=5e-3-train.milestones=5_7",
    ]
    assert sweep.points[2].overrides[-4:] == (
        "train.lr=5e-3",
        "train.milestones=[5,7]",
        "experiment.seed=0",
        "experiment.name=quickstart-s0-train.lr=5e-3-train.milestones=5_7",
    )
    result = cli(
        "sweep",
        QUICKSTART,
        "--seeds",
        "0-1",
        "--grid",
        "train.lr=1e-3,5e-3",
        "--set",
        f"experiment.out_dir={tmp_path}",
        "--list",
    )
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0].split("\t")
    assert first[:3] == ["0", "new", "quickstart-s0-train.lr=1e-3"]
    assert first[3].startswith("snnframe run ") and "--set experiment.seed=0" in first[3]
    assert not any(tmp_path.iterdir())  # --list trains nothing
    bad = cli("sweep", QUICKSTART, "--seeds", "0", "--grid", "experiment.seed=1,2")
    assert bad.exit_code == 2 and "use --seeds for seeds" in bad.output
    reversed_range = cli("sweep", QUICKSTART, "--seeds", "4-0", "--list")
    assert reversed_range.exit_code == 2
    assert '--seeds "4-0": the range 4-0 is empty (write it low-high, e.g. 0-4)' in reversed_range.output


def test_the_command_of_an_interrupted_point_resumes_it(tmp_path):
    from snnframe.sweep import command, plan, status

    sweep = plan(QUICKSTART, [0], [f"experiment.out_dir={tmp_path}"], [])
    point = sweep.points[0]
    assert status(point) == "new" and not command(sweep, point).endswith("--resume")
    point.run_dir.mkdir(parents=True)
    (point.run_dir / "recipe.toml").write_text("")  # a run that started and stopped before its first epoch
    assert status(point) == "interrupted" and command(sweep, point).endswith(" --resume")
