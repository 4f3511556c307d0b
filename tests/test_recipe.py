"""Recipe reading, overrides and the core-key schema."""

import pytest

from snnframe.errors import RecipeError, UsageError
from snnframe.kinds import BY_NAME
from snnframe.recipe import apply_overrides, load, parse, parse_override, read

MINIMAL = {
    "experiment": {"name": "x"},
    "data": {"kind": "d"},
    "encoder": {"kind": "e"},
    "model": {"kind": "m"},
    "train": {},
}


def problems_of(data):
    with pytest.raises(RecipeError) as info:
        parse(data, source="r.toml")
    return info.value.problems


def test_defaults_fill_core_keys_and_leave_defaulted_kinds_to_the_plugins():
    recipe = parse(MINIMAL)
    assert recipe.experiment.seed == 0 and recipe.experiment.out_dir == "runs"
    assert (recipe.data.root, recipe.data.batch_size, recipe.data.subset) == ("data", 128, 1)
    assert (recipe.train.epochs, recipe.train.lr, recipe.train.device) == (20, 1e-2, "auto")
    # the core names no component: trainer, loss and neuron kinds come from plugins' defaults later
    assert recipe.train.kind is None
    assert recipe.table("train.loss").kind is None and recipe.table("model.neuron").kind is None
    assert recipe.table("model.neuron.surrogate") is None and recipe.paths(BY_NAME["visualizers"]) == []
    assert str(recipe.run_dir) == "runs/x"


def test_plugin_keys_are_kept_apart_from_core_keys():
    data = {**MINIMAL, "data": {"kind": "d", "batch_size": 4, "size": 10}, "model": {"kind": "m", "hidden": [3]}}
    recipe = parse(data)
    assert recipe.data.batch_size == 4 and recipe.data.params == {"size": 10}
    assert recipe.table("model").params == {"hidden": [3]}
    assert recipe.to_dict()["data"] == {
        "kind": "d",
        "root": "data",
        "batch_size": 4,
        "subset": 1,
        "test_subset": 1,
        "num_workers": 0,
        "size": 10,
    }


def test_all_problems_are_reported_with_key_paths():
    data = {
        "experiment": {"name": "../escape", "seed": -1},
        "data": {"kind": "d", "batch_size": 0, "subset": "2"},
        "encoder": {"kind": "e"},
        "model": {"kind": "m"},
        "train": {"epochs": 0, "lr": "x", "device": "gpu"},
        "trian": {},
    }
    problems = problems_of(data)
    assert len(problems) == 8, problems
    text = "\n".join(problems)
    assert "experiment.name: must be a plain directory name" in text
    assert "experiment.seed: must be >= 0, got -1" in text
    assert "data.batch_size: must be > 0, got 0" in text
    assert 'data.subset: expected an integer, got "2"' in text
    assert "train.epochs: must be > 0, got 0" in text
    assert 'train.lr: expected a number, got "x"' in text
    assert 'train.device: must be "auto", "cpu", "cuda" or "cuda:N", got "gpu"' in text
    assert '[trian]: unknown section (did you mean "train"?)' in text


@pytest.mark.parametrize("name", ["..", "a/b", "/abs", "a\\b", "", "a..b"])
def test_experiment_name_cannot_escape_out_dir(name):
    problems = problems_of({**MINIMAL, "experiment": {"name": name}})
    assert problems[0].startswith("experiment.name: must be a plain directory name")


def test_missing_sections_and_kinds():
    problems = problems_of({"experiment": {"name": "x"}, "model": {}})
    assert "[data]: missing section" in problems
    assert "[encoder]: missing section" in problems
    assert "model.kind: missing (required)" in problems
    assert len(problems) == 3  # [train] and [experiment] are optional: every key has a default


def test_unknown_key_in_experiment_suggests():
    problems = problems_of({**MINIMAL, "experiment": {"name": "x", "sead": 3}})
    assert problems == ['experiment.sead: unknown key (did you mean "seed"?); keys are: name, out_dir, seed']


def test_section_that_is_not_a_table():
    assert problems_of({**MINIMAL, "encoder": "static"}) == ['encoder: expected a table, got "static"']
    assert problems_of({**MINIMAL, "visualize": {"kind": "v"}})[0].startswith("visualize: expected a list of tables")


def test_visualize_list_entries_are_checked():
    problems = problems_of({**MINIMAL, "visualize": [{"kind": "a"}, {"samples": 3}]})
    assert problems == ["visualize[1].kind: missing (required)"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("train.epochs=3", (["train", "epochs"], 3)),
        ("train.milestones=[10,15]", (["train", "milestones"], [10, 15])),
        ("data.root=/data", (["data", "root"], "/data")),
        ('experiment.name="007"', (["experiment", "name"], "007")),
        ("train.lr=1e-3", (["train", "lr"], 1e-3)),
        ("train.compile=true", (["train", "compile"], True)),
        ("train.device=cuda:1", (["train", "device"], "cuda:1")),
        ("data.root=a=b", (["data", "root"], "a=b")),
    ],
)
def test_override_values_are_toml(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["train.epochs", "=3", "train..epochs=3", ""])
def test_bad_override_is_a_usage_error(text):
    with pytest.raises(UsageError, match="--set"):
        parse_override(text)


def test_apply_overrides_creates_tables_and_indexes_lists():
    data = {"train": {"epochs": 1}, "visualize": [{"kind": "a"}, {"kind": "b"}]}
    out = apply_overrides(data, ["train.epochs=3", "model.neuron.beta=0.9", "visualize.1.samples=2"])
    assert out["train"]["epochs"] == 3
    assert out["model"] == {"neuron": {"beta": 0.9}}
    assert out["visualize"][1] == {"kind": "b", "samples": 2}
    assert data["train"]["epochs"] == 1  # the original is untouched


def test_override_through_a_value_or_bad_index_is_a_usage_error():
    with pytest.raises(UsageError, match="train.epochs is 1, not a table"):
        apply_overrides({"train": {"epochs": 1}}, ["train.epochs.x=2"])
    with pytest.raises(UsageError, match="not an index of a list of 1 tables"):
        apply_overrides({"visualize": [{}]}, ["visualize.3.kind=x"])


def test_file_errors_are_one_line(tmp_path):
    cases = {
        "missing": tmp_path / "nope.toml",
        "directory": tmp_path,
        "empty": tmp_path / "empty.toml",
        "syntax": tmp_path / "bad.toml",
    }
    cases["empty"].write_text("  \n")
    cases["syntax"].write_text("[data]\nkind = 'x'\nbatch_size = = 3\n")
    messages = {}
    for case, path in cases.items():
        with pytest.raises(RecipeError) as info:
            read(path)
        messages[case] = str(info.value)
        assert "\n" not in messages[case] and str(path) in messages[case]
    assert "recipe file not found" in messages["missing"]
    assert "is a directory" in messages["directory"]
    assert "the recipe is empty" in messages["empty"]
    assert "not valid TOML" in messages["syntax"] and "line 3" in messages["syntax"]


def test_load_names_the_experiment_after_the_file(tmp_path):
    path = tmp_path / "my_run.toml"
    path.write_text('[data]\nkind = "d"\n[encoder]\nkind = "e"\n[model]\nkind = "m"\n[train]\n')
    recipe = load(path, ["train.epochs=2"])
    assert recipe.experiment.name == "my_run" and recipe.train.epochs == 2
