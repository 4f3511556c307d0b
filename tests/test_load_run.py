"""snnframe.load_run: a run read back from its directory, and the errors for runs it cannot read."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

import snnframe
from snnframe.cli import make_cli
from snnframe.engine import correct_count
from snnframe.errors import RunDirError, SnnframeError
from snnframe.plugins import load_plugins

REPO = Path(__file__).resolve().parents[1]
TINY = [  # the quick start, small: an MLP on the embedded digits, 2 epochs
    "--set",
    'model={kind = "mlp", hidden = [32]}',
    "--set",
    "train.epochs=2",
    "--set",
    "encoder.num_steps=8",
    "--set",
    "data.test_subset=2",
    "--set",
    "visualize=[]",
]


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, plugins):
    out = tmp_path_factory.mktemp("runs")
    result = CliRunner().invoke(
        make_cli(plugins),
        ["run", str(REPO / "recipes" / "quickstart.toml"), "--set", f"experiment.out_dir={out}", *TINY],
    )
    assert result.exit_code == 0, result.output
    return out / "quickstart"


def test_the_loaded_model_scores_the_runs_last_test_accuracy(run_dir, plugins):
    run = snnframe.load_run(run_dir, plugins=plugins)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert run.epoch == 2 and run.history == rows
    assert run.recipe.table("model").kind == "mlp" and run.recipe.table("model.neuron").kind == "leaky"
    assert not run.model.training and next(run.model.parameters()).device.type == "cpu"
    _, test = run.splits()
    assert len(test) == 178  # every second of the 355 test digits
    correct = 0
    with torch.no_grad():
        for images, labels in DataLoader(test, batch_size=64):
            correct += int(correct_count(run.model(run.encoder(images)), labels))
    assert correct / len(test) == pytest.approx(rows[-1]["test_acc"], abs=1e-12)
    assert 0.3 < rows[-1]["test_acc"]  # it learnt something: chance is 0.1


def test_overrides_change_the_saved_recipe_before_building(run_dir, plugins):
    run = snnframe.load_run(run_dir, ["data.test_subset=1"], plugins=plugins)
    assert len(run.splits()[1]) == 355


def test_a_run_moved_elsewhere_still_loads(run_dir, plugins, tmp_path):
    moved = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(run_dir, moved)
    run = snnframe.load_run(moved, plugins=plugins)
    assert run.run_dir == moved and run.recipe.run_dir == moved


def copy_of(run_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(run_dir, target)
    return target


def test_runs_it_cannot_read_are_clear_errors(run_dir, plugins, tmp_path):
    with pytest.raises(RunDirError, match="is not a run directory"):
        snnframe.load_run(tmp_path / "nothing", plugins=plugins)
    broken = copy_of(run_dir, tmp_path)
    (broken / "checkpoints" / "last.pt").unlink()
    with pytest.raises(RunDirError, match=r"has no checkpoints/last\.pt: .*epoch_2\.pt is there"):
        snnframe.load_run(broken, plugins=plugins)
    (broken / "recipe.toml").unlink()
    with pytest.raises(RunDirError, match="recipe.toml is missing"):
        snnframe.load_run(broken, plugins=plugins)


def test_a_checkpoint_of_another_format_or_model_is_a_clear_error(run_dir, plugins, tmp_path):
    other = copy_of(run_dir, tmp_path)
    last = other / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    torch.save({**state, "format": 2}, last)
    with pytest.raises(SnnframeError, match="has checkpoint format 2, from another snnframe version"):
        snnframe.load_run(other, plugins=plugins)
    torch.save(state, last)
    with pytest.raises(RunDirError, match="does not fit the model its recipe builds"):
        snnframe.load_run(other, ["model.hidden=[8]"], plugins=plugins)
    last.write_bytes(b"")
    with pytest.raises(SnnframeError, match="last.pt is empty"):
        snnframe.load_run(other, plugins=plugins)
