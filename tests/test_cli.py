"""The CLI through click's CliRunner, on the toy plugin (no torch models involved)."""

import json

import pytest
from click.testing import CliRunner

from snnframe.cli import make_cli
from snnframe.recipe import read


@pytest.fixture
def invoke(toy_plugins):
    runner = CliRunner()

    def _invoke(*args):
        return runner.invoke(make_cli(toy_plugins), [str(a) for a in args])

    return _invoke


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_run_writes_the_run_directory_contract(invoke, toy_recipe, tmp_path):
    result = invoke("run", toy_recipe)
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "toy"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0]["n_train"] == 10
    assert (run_dir / "toy.txt").read_text() == "2 epochs\n"
    assert "toy_vis wrote toy.txt" in (run_dir / "training.log").read_text()
    saved = read(run_dir / "recipe.toml")
    # fully resolved: core defaults and factory defaults written out
    assert saved["data"]["subset"] == 1 and saved["data"]["size"] == 10 and saved["data"]["modality"] == "image"
    assert saved["model"]["neuron"]["reset"] == "subtract"
    assert saved["model"]["neuron"]["surrogate"] == {"kind": "toy_sg", "slope": 10}
    assert saved["visualize"] == [{"kind": "toy_vis", "filename": "toy.txt"}]
    assert "done: epoch 2" in result.output


def test_saved_recipe_runs_again_to_the_same_result(invoke, toy_recipe, tmp_path):
    assert invoke("run", toy_recipe).exit_code == 0
    saved = tmp_path / "runs" / "toy" / "recipe.toml"
    result = invoke("run", saved, "--set", "experiment.name=again")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs/again/metrics.jsonl").read_text() == (tmp_path / "runs/toy/metrics.jsonl").read_text()


def test_subsets_keep_every_kth_sample(invoke, toy_recipe, tmp_path):
    assert invoke("run", toy_recipe, "--set", "data.subset=3", "--set", "data.test_subset=2").exit_code == 0
    row = json.loads((tmp_path / "runs/toy/metrics.jsonl").read_text().splitlines()[0])
    assert row["n_train"] == 4  # samples 0, 3, 6, 9
    assert row["test_acc"] == pytest.approx(0.3)  # 5 test samples, every 2nd -> 3


def test_existing_run_is_never_overwritten(invoke, toy_recipe, tmp_path):
    assert invoke("run", toy_recipe).exit_code == 0
    metrics = tmp_path / "runs/toy/metrics.jsonl"
    before = metrics.read_text()
    result = invoke("run", toy_recipe)
    assert result.exit_code == 2
    assert "already holds a run; nothing was changed" in result.output
    assert "--resume" in result.output and "experiment.name=toy-2" in result.output
    assert metrics.read_text() == before


def test_resume_extends_and_checks_the_recipe(invoke, toy_recipe, tmp_path):
    assert invoke("run", toy_recipe, "--set", "train.epochs=1").exit_code == 0
    result = invoke("run", toy_recipe, "--resume", "--set", "train.epochs=3")
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "runs/toy/metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3]
    assert read(tmp_path / "runs/toy/recipe.toml")["train"]["epochs"] == 3

    result = invoke("run", toy_recipe, "--resume", "--set", "train.lr=0.5", "--set", "model.neuron.beta=0.3")
    assert result.exit_code == 2
    assert "differs from the one" in result.output
    assert "model.neuron.beta, train.lr" in result.output


def test_resume_without_a_run_is_an_error(invoke, toy_recipe):
    result = invoke("run", toy_recipe, "--resume")
    assert result.exit_code == 2 and "holds no run to resume" in result.output


def test_three_mistakes_three_messages(invoke, toy_recipe):
    edit(toy_recipe, "beta = 0.25", 'beta = "x"')
    edit(toy_recipe, 'kind = "toy_enc"', 'kind = "toy_enk"')
    edit(toy_recipe, "epochs = 2", "epochs = 0")
    result = invoke("validate", toy_recipe)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"snnframe: error: {toy_recipe}: 3 problems:",
        "  - train.epochs: must be > 0, got 0",
        '  - encoder.kind: unknown encoder "toy_enk" (did you mean "toy_enc"?); available: "toy_enc"',
        '  - model.neuron.beta: expected a number, got "x"',
    ]


def test_misspelt_key_of_a_plugin_table_suggests(invoke, toy_recipe):
    edit(toy_recipe, "slope = 10", "slop = 10")
    result = invoke("validate", toy_recipe)
    assert result.exit_code == 2
    assert (
        'model.neuron.surrogate.slop: unknown key for surrogate "toy_sg" (did you mean "slope"?); accepted keys: slope'
    ) in result.output


def test_three_core_mistakes_exit_2(invoke, toy_recipe):
    edit(toy_recipe, "batch_size = 4", "batch_size = -4")
    edit(toy_recipe, 'device = "cpu"', 'device = "gpu"')
    edit(toy_recipe, 'name = "toy"', 'name = "../toy"')
    result = invoke("run", toy_recipe)
    assert result.exit_code == 2
    assert result.output.count("\n  - ") == 3
    assert "data.batch_size: must be > 0, got -4" in result.output
    assert not (toy_recipe.parent / "runs").exists()


def test_factory_value_errors_are_reported_against_their_table(invoke, toy_recipe):
    edit(toy_recipe, "beta = 0.25", "beta = 1.5")
    edit(toy_recipe, "num_steps = 3", "num_steps = 0")
    result = invoke("validate", toy_recipe)
    assert result.exit_code == 2
    assert "model.neuron: beta must be in [0, 1], got 1.5" in result.output
    assert "encoder: num_steps must be >= 1, got 0" in result.output


def test_injected_and_missing_keys(invoke, toy_recipe):
    edit(toy_recipe, "hidden = [4, 4]", "hidden = [4, 4]\nnum_classes = 3")
    result = invoke("validate", toy_recipe)
    assert "model.num_classes: is set by snnframe itself and cannot be set in a recipe" in result.output


def test_literal_choices_are_checked(invoke, toy_recipe):
    result = invoke("validate", toy_recipe, "--set", "model.neuron.reset=substract")
    assert result.exit_code == 2
    assert (
        'model.neuron.reset: expected one of "subtract", "zero", got "substract" (did you mean "subtract"?)'
        in result.output
    )


def test_list_item_types_are_checked(invoke, toy_recipe):
    result = invoke("validate", toy_recipe, "--set", 'model.hidden=[4, "a"]')
    assert 'model.hidden[1]: expected an integer, got "a"' in result.output


def test_modality_mismatch(invoke, toy_recipe):
    result = invoke("validate", toy_recipe, "--set", "data.modality=events")
    assert result.exit_code == 2
    assert 'encoder "toy_enc" takes image input, but dataset "toy_data" yields events' in result.output


def test_validate_ok_writes_nothing(invoke, toy_recipe, tmp_path):
    result = invoke("validate", toy_recipe, "--show")
    assert result.exit_code == 0, result.output
    assert "ok (toy_data -> toy_enc -> toy_net/toy_lif, trainer toy_trainer, 2 epochs" in result.output
    assert '[model.neuron.surrogate]\nkind = "toy_sg"' in result.output
    assert not (tmp_path / "runs").exists()


def test_set_without_equals_is_a_usage_error(invoke, toy_recipe):
    result = invoke("run", toy_recipe, "--set", "train.epochs")
    assert result.exit_code == 2
    assert 'snnframe: error: --set "train.epochs": expected KEY=VALUE' in result.output


def test_missing_recipe_file(invoke, tmp_path):
    result = invoke("run", tmp_path / "nope.toml")
    assert result.exit_code == 2
    assert "recipe file not found" in result.output and "Traceback" not in result.output


def test_list_plugins_json(invoke):
    result = invoke("list-plugins", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert {
        "kind": "neurons",
        "name": "toy_lif",
        "plugin": "toy",
        "distribution": None,
        "version": None,
        "default": False,
    } in rows
    assert {r["kind"] for r in rows} == {
        "datasets",
        "encoders",
        "surrogates",
        "neurons",
        "architectures",
        "losses",
        "trainers",
        "loggers",
        "visualizers",
    }


def test_list_plugins_text_and_kind_filter(invoke):
    result = invoke("list-plugins", "--kind", "losses")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "PLUGIN", "VERSION"]
    assert lines[1].split() == ["losses", "toy_loss", "toy", "-"]
    assert len(lines) == 2


def test_plugins_add_commands_and_a_failing_one_is_reported():
    import types

    import snnframe
    from snnframe.plugins import load_plugins

    good = types.ModuleType("good")

    @snnframe.hookimpl
    def register_commands(cli):
        @cli.command()
        def hello():
            """Say hello."""
            print("hello from a plugin")

    good.register_commands = register_commands
    bad = types.ModuleType("bad")

    @snnframe.hookimpl
    def register_neurons(register):
        register("half_neuron", lambda **kw: None)

    @snnframe.hookimpl
    def register_commands(cli):  # noqa: F811 - the bad plugin's own hook
        @cli.command()
        def half():
            """Added before the hook raised."""
            print("half-registered command ran")

        raise RuntimeError("no commands today")

    bad.register_neurons = register_neurons
    bad.register_commands = register_commands
    plugins = load_plugins(extra=[("good", good), ("bad", bad)], entry_points=False)
    cli = make_cli(plugins)
    result = CliRunner().invoke(cli, ["hello"])
    assert result.exit_code == 0, result.output
    assert "hello from a plugin" in result.output
    assert (
        'snnframe: warning: plugin "bad" (not from a distribution) failed to load and is skipped: '
        "register_commands: RuntimeError: no commands today"
    ) in result.output
    # skipped means skipped: neither the command it added before raising nor its components remain
    half = CliRunner().invoke(cli, ["half"])
    assert half.exit_code == 2 and "No such command 'half'" in half.output
    assert "half_neuron" not in plugins.registry("neurons")
    assert [p.name for p in plugins.loaded] == ["good"]


def test_a_failing_visualizer_keeps_the_run_and_the_others(invoke, toy_recipe, tmp_path):
    text = toy_recipe.read_text()
    toy_recipe.write_text(
        text.replace(
            '[[visualize]]\nkind = "toy_vis"', '[[visualize]]\nkind = "toy_broken"\n\n[[visualize]]\nkind = "toy_vis"'
        )
    )
    result = invoke("run", toy_recipe)
    assert result.exit_code == 1
    assert "visualizer toy_broken failed: second line" in result.output
    assert "Traceback" not in result.output
    run_dir = tmp_path / "runs" / "toy"
    assert (run_dir / "toy.txt").is_file() and len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    log = (run_dir / "training.log").read_text()
    assert "Traceback" in log and "ValueError: nothing to draw" in log
    assert f"training finished and was saved in {run_dir}, but visualizers failed: toy_broken" in result.output


def test_resume_refuses_other_data_workers(invoke, toy_recipe):
    assert invoke("run", toy_recipe, "--set", "train.epochs=1").exit_code == 0
    result = invoke("run", toy_recipe, "--resume", "--set", "data.num_workers=2")
    assert result.exit_code == 2 and "at data.num_workers;" in result.output


def test_ctrl_c_says_how_to_continue_only_where_there_is_a_run(invoke, toy_recipe, monkeypatch):
    import snnframe.run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(snnframe.run, "run", interrupted)
    monkeypatch.setattr(snnframe.run, "prepare", interrupted)
    ran = invoke("run", toy_recipe)
    assert ran.exit_code == 130
    assert ran.output == "snnframe: error: interrupted; continue the run with --resume\n"
    validated = invoke("validate", toy_recipe)
    assert validated.exit_code == 130
    assert validated.output == "snnframe: error: interrupted\n"
