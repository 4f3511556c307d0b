"""The shipped recipes: each validates, and each trains end to end on small data in the real formats."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.data_files import write_dvs_gesture, write_mnist, write_nmnist, write_shd

from snnframe.cli import make_cli
from snnframe.plugins import load_plugins

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*.toml"))
CONTRACT = ["recipe.toml", "metrics.jsonl", "training.log", "checkpoints/last.pt", "checkpoints/epoch_1.pt"]


@pytest.fixture(scope="module")
def cli():
    plugins = load_plugins()
    runner = CliRunner()
    return lambda *args: runner.invoke(make_cli(plugins), [str(a) for a in args])


def test_the_shipped_recipes_exist():
    """The recipes these tests and the docs name (others may be added: each validates, below)."""
    assert {p.name for p in RECIPES} >= {
        "csnn_spike.toml",
        "csnn_static.toml",
        "quickstart.toml",
        "quickstart_spike.toml",
        "quickstart_layers.toml",
        "digits_avgpool.toml",
        "shd.toml",
        "dvs_gesture.toml",
    }


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_validates(cli, recipe, tmp_path):
    result = cli("validate", recipe, "--set", f"experiment.out_dir={tmp_path}")
    assert result.exit_code == 0, result.output
    assert "ok (" in result.output


def run_one_epoch(cli, recipe, tmp_path, *overrides, epochs=1):
    result = cli(
        "run",
        REPO / "recipes" / recipe,
        "--set",
        f"experiment.out_dir={tmp_path / 'runs'}",
        "--set",
        f"train.epochs={epochs}",
        *overrides,
    )
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / Path(recipe).stem
    for name in CONTRACT:
        assert (run_dir / name).is_file(), name
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == epochs and {"epoch", "train_loss", "test_acc", "lr", "train_seconds"} <= set(rows[-1])
    return run_dir, rows[-1]


def test_csnn_static_runs_an_epoch_on_mnist_idx_files(cli, tmp_path):
    root = tmp_path / "data"
    write_mnist(root, n_train=256, n_test=64)
    run_dir, row = run_one_epoch(
        cli,
        "csnn_static.toml",
        tmp_path,
        "--set",
        f"data.root={root}",
        "--set",
        "data.batch_size=64",
        "--set",
        "visualize.1.samples=1",
    )
    assert (run_dir / "train_loss.png").is_file() and (run_dir / "test_acc.png").is_file()
    assert len(list(run_dir.glob("spike_count_0_target*.gif"))) == 1
    assert row["lr"] == 1e-2


def test_csnn_spike_runs_an_epoch_on_nmnist_bin_files(cli, tmp_path):
    root = tmp_path / "data"
    write_nmnist(root, per_class_train=3, per_class_test=1)
    run_dir, row = run_one_epoch(
        cli,
        "csnn_spike.toml",
        tmp_path,
        "--set",
        f"data.root={root}",
        "--set",
        "data.require_archives=false",
        "--set",
        "data.num_workers=0",
        "--set",
        "data.batch_size=10",
        "--set",
        "visualize.1.samples=1",
    )
    assert 0.0 <= row["test_acc"] <= 1.0
    assert len(list(run_dir.glob("spike_count_0_target*.gif"))) == 1


def test_shd_trains_on_h5_files_in_the_published_layout(cli, tmp_path):
    root = tmp_path / "data"
    write_shd(root, per_class_train=2, per_class_test=1)
    _, row = run_one_epoch(
        cli,
        "shd.toml",
        tmp_path,
        "--set",
        f"data.root={root}",
        "--set",
        "data.require_archives=false",
        "--set",
        "data.batch_size=10",
        epochs=2,
    )
    assert row["epoch"] == 2 and row["test_acc"] > 0.3  # each class fires its own channels: learnable at once
    assert len(list((root / "cache" / "shd").glob("*/events.bin"))) == 2


def test_dvs_gesture_trains_on_tonics_npy_tree(cli, tmp_path):
    root = tmp_path / "data"
    write_dvs_gesture(root, train_folders=("user01_led",), test_folders=("user24_led",))
    run_dir, row = run_one_epoch(
        cli,
        "dvs_gesture.toml",
        tmp_path,
        "--set",
        f"data.root={root}",
        "--set",
        "data.require_archives=false",
        "--set",
        "data.num_workers=0",
        "--set",
        "data.batch_size=11",
        "--set",
        "visualize.1.samples=1",
    )
    assert 0.0 <= row["test_acc"] <= 1.0
    assert len(list(run_dir.glob("spike_count_0_target*.gif"))) == 1


def test_quickstart_leaves_the_run_directory_contract(cli, tmp_path):
    run_dir, row = run_one_epoch(cli, "quickstart.toml", tmp_path, "--set", "data.subset=4")
    for name in ["train_loss.png", "test_acc.png"]:
        assert (run_dir / name).stat().st_size > 1000, name
    assert len(list(run_dir.glob("raster_0_target*.png"))) == 1
    gifs = sorted(p.name for p in run_dir.glob("spike_count_*_target*.gif"))
    assert len(gifs) == 5 and gifs[0].startswith("spike_count_0_target")
    assert row["epoch"] == 1 and row["test_acc"] > 0.1  # one epoch on a quarter of the data learns something


def test_missing_data_is_a_clear_error_and_creates_no_run_directory(cli, tmp_path):
    result = cli(
        "run",
        REPO / "recipes" / "csnn_static.toml",
        "--set",
        f"data.root={tmp_path / 'empty'}",
        "--set",
        "data.download=false",
        "--set",
        f"experiment.out_dir={tmp_path / 'runs'}",
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert str(tmp_path / "empty" / "MNIST" / "raw") in result.output
    assert not (tmp_path / "runs").exists()
