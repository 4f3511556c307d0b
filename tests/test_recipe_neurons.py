"""Per-layer neuron tables ([model.neurons.<i>]) and the layer shape the NeuronFactory passes on (toy plugins)."""

import types

import pytest
import toy_plugin
from click.testing import CliRunner

import snnframe
from snnframe.cli import make_cli
from snnframe.contracts import NeuronFactory, NeuronTable
from snnframe.errors import RecipeError
from snnframe.kinds import BY_NAME
from snnframe.plugins import load_plugins
from snnframe.recipe import parse, read
from snnframe.run import build

# ---- a neuron that needs its layer's shape, and architectures that do / do not pass one -----


class ShapedNeuron:
    def __init__(self, *, shape: tuple[int, ...] | None = None, gain: float = 1.0, surrogate=None):
        if shape is None:
            raise ValueError("toy_shaped needs the shape of its layer")
        if gain <= 0:
            raise ValueError(f"gain must be positive, got {gain}")
        self.shape, self.gain, self.surrogate = shape, gain, surrogate


def shaped_net(*, input_shape: tuple, num_classes: int, neuron, hidden: list[int] = (8,)):
    return toy_plugin.ToyModel(input_shape, num_classes, [neuron(shape=(h,)) for h in [*hidden, num_classes]])


@snnframe.hookimpl
def register_neurons(register):
    register("toy_shaped", ShapedNeuron)


@snnframe.hookimpl
def register_architectures(register):
    register("toy_shaped_net", shaped_net)


EXTRA = types.SimpleNamespace(register_neurons=register_neurons, register_architectures=register_architectures)


@pytest.fixture
def plugins():
    return load_plugins(extra=[("toy", toy_plugin), ("shaped", EXTRA)], entry_points=False)


def toy_data(tmp_path, extra=""):
    text = toy_plugin.TOY_RECIPE.format(out_dir=(tmp_path / "runs").as_posix()) + extra
    path = tmp_path / "toy.toml"
    path.write_text(text)
    return read(path)


def problems(data, plugins):
    with pytest.raises(RecipeError) as info:
        build(data, "toy.toml", plugins=plugins)
    return info.value.problems


# ---- the schema -----------------------------------------------------------------------------


def test_the_neurons_kind_has_a_second_place_and_the_schema_reads_it():
    neurons, surrogates = BY_NAME["neurons"], BY_NAME["surrogates"]
    assert neurons.paths == ("model.neuron", "model.neurons.*")
    assert surrogates.paths == ("model.neuron.surrogate", "model.neurons.*.surrogate")
    data = {
        "experiment": {"name": "x"},
        "data": {"kind": "d"},
        "encoder": {"kind": "e"},
        "model": {
            "kind": "m",
            "depth": 2,
            "neuron": {"kind": "n", "beta": 0.5},
            "neurons": {"3": {"kind": "o", "gain": 2.0, "surrogate": {"kind": "s", "slope": 5}}, "1": {"beta": 0.1}},
        },
        "train": {},
    }
    recipe = parse(data)
    assert recipe.table("model").params == {"depth": 2}  # "neuron" and "neurons" are sub-tables, not parameters
    assert recipe.paths(neurons) == ["model.neuron", "model.neurons.3", "model.neurons.1"]
    assert recipe.paths(surrogates) == ["model.neurons.3.surrogate"]
    assert recipe.table("model.neurons.3").params == {"gain": 2.0}
    assert recipe.table("model.neurons.1").kind is None  # left out: the default neuron, as for [model.neuron]
    assert recipe.to_dict()["model"]["neurons"] == {
        "3": {"kind": "o", "gain": 2.0, "surrogate": {"kind": "s", "slope": 5}},
        "1": {"beta": 0.1},
    }


def test_bad_shapes_of_per_layer_tables_are_reported_with_their_paths():
    base = {"experiment": {"name": "x"}, "data": {"kind": "d"}, "encoder": {"kind": "e"}, "train": {}}
    with pytest.raises(RecipeError) as info:
        parse({**base, "model": {"kind": "m", "neurons": 3}})
    assert info.value.problems == ["model.neurons: expected a table of tables, got 3"]
    with pytest.raises(RecipeError) as info:
        parse({**base, "model": {"kind": "m", "neurons": {"2": "leaky", "3": {"surrogate": 1}}}})
    assert info.value.problems == [
        'model.neurons.2: expected a table, got "leaky"',
        "model.neurons.3.surrogate: expected a table, got 1",
    ]


# ---- per-layer tables through the build -------------------------------------------------------


def test_a_per_layer_table_replaces_the_default_for_its_layer_only(tmp_path, plugins):
    data = toy_data(tmp_path, '\n[model.neurons.2]\nkind = "toy_lif"\nbeta = 0.75\n')
    model = build(data, "toy.toml", plugins=plugins).components.model
    first, second = model.layers
    assert (first.beta, second.beta) == (0.25, 0.75)
    assert first.surrogate.slope == 10  # [model.neuron.surrogate] belongs to [model.neuron] ...
    assert second.surrogate is None  # ... and is not inherited: the table replaces [model.neuron] whole


def test_a_per_layer_surrogate_table(tmp_path, plugins):
    extra = '\n[model.neurons.1]\nkind = "toy_lif"\n\n[model.neurons.1.surrogate]\nkind = "toy_sg"\nslope = 3\n'
    prepared = build(toy_data(tmp_path, extra), "toy.toml", plugins=plugins)
    first, second = prepared.components.model.layers
    assert (first.surrogate.slope, second.surrogate.slope) == (3, 10)
    resolved = prepared.recipe.to_dict()["model"]["neurons"]["1"]  # the resolved recipe.toml, defaults written out
    assert resolved == {
        "kind": "toy_lif",
        "beta": 0.5,
        "reset": "subtract",
        "surrogate": {"kind": "toy_sg", "slope": 3},
    }


def test_a_left_out_kind_is_the_default_neuron(tmp_path, plugins):
    toy = load_plugins(
        extra=[("toy", toy_plugin), ("default", types.SimpleNamespace(register_neurons=_default_neuron))],
        entry_points=False,
    )
    prepared = build(toy_data(tmp_path, "\n[model.neurons.2]\nbeta = 0.5\n"), "toy.toml", plugins=toy)
    assert prepared.recipe.table("model.neurons.2").kind == "toy_default"
    assert type(prepared.components.model.layers[1]).__name__ == "ToyNeuron"


@snnframe.hookimpl
def _default_neuron(register):
    register("toy_default", toy_plugin.ToyNeuron, default=True)


@pytest.mark.parametrize(
    "extra, expected",
    [
        (
            '\n[model.neurons.3]\nkind = "toy_lif"\n',
            'model.neurons.3: the network has 2 spiking layers (architecture "toy_net"); '
            "per-layer tables are numbered 1 to 2",
        ),
        (
            '\n[model.neurons.0]\nkind = "toy_lif"\n',
            "model.neurons.0: not a spiking layer number: spiking layers are numbered 1, 2, ... from the input",
        ),
        (
            '\n[model.neurons.out]\nkind = "toy_lif"\n',
            "model.neurons.out: not a spiking layer number: spiking layers are numbered 1, 2, ... from the input",
        ),
        ('\n[model.neurons.2]\nkind = "toy_lfi"\n', 'model.neurons.2.kind: unknown neuron "toy_lfi"'),
        ('\n[model.neurons.2]\nkind = "toy_lif"\nbeta = 1.5\n', "model.neurons.2: beta must be in [0, 1], got 1.5"),
        ('\n[model.neurons.2]\nkind = "toy_lif"\nbeta = "x"\n', 'model.neurons.2.beta: expected a number, got "x"'),
        (
            '\n[model.neurons.2]\nkind = "toy_lif"\nbta = 0.5\n',
            'model.neurons.2.bta: unknown key for neuron "toy_lif" (did you mean "beta"?)',
        ),
        (
            '\n[model.neurons.2]\nkind = "toy_lif"\n\n[model.neurons.2.surrogate]\nkind = "toy_sgg"\n',
            'model.neurons.2.surrogate.kind: unknown surrogate "toy_sgg"',
        ),
        (
            '\n[model.neurons.1]\nkind = "toy_lif"\nshape = [4]\n',
            "model.neurons.1.shape: is set by snnframe itself and cannot be set in a recipe",
        ),
    ],
)
def test_bad_per_layer_tables_are_recipe_errors_with_key_paths(tmp_path, plugins, extra, expected):
    found = problems(toy_data(tmp_path, extra), plugins)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_unknown_per_layer_kind_suggests(tmp_path, plugins):
    (found,) = problems(toy_data(tmp_path, '\n[model.neurons.2]\nkind = "toy_lfi"\n'), plugins)
    assert '(did you mean "toy_lif"?)' in found


def test_every_problem_at_once(tmp_path, plugins):
    extra = '\n[model.neurons.2]\nkind = "toy_lif"\nbeta = 2.0\n\n[model.neurons.x]\nkind = "toy_lif"\n'
    found = problems(toy_data(tmp_path, extra), plugins)
    assert sorted(p.split(":")[0] for p in found) == ["model.neurons.2", "model.neurons.x"]


def test_the_cli_reports_a_per_layer_problem_with_exit_2(tmp_path, plugins):
    path = tmp_path / "toy.toml"
    path.write_text(
        toy_plugin.TOY_RECIPE.format(out_dir=(tmp_path / "runs").as_posix()) + '\n[model.neurons.5]\nkind = "toy_lif"\n'
    )
    result = CliRunner().invoke(make_cli(plugins), ["validate", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "model.neurons.5: the network has 2 spiking layers" in result.output


# ---- the layer shape --------------------------------------------------------------------------


def test_the_shape_reaches_neurons_that_take_it(tmp_path, plugins):
    text = toy_data(tmp_path)
    text["model"] = {"kind": "toy_shaped_net", "hidden": [6], "neuron": {"kind": "toy_lif"}}
    text["model"]["neurons"] = {"2": {"kind": "toy_shaped", "gain": 2.0}}
    model = build(text, "toy.toml", plugins=plugins).components.model
    plain, shaped = model.layers
    assert isinstance(plain, toy_plugin.ToyNeuron)  # no shape parameter: built without one
    assert (shaped.shape, shaped.gain) == ((3,), 2.0)


def test_a_neuron_that_needs_a_shape_under_an_architecture_that_passes_none(tmp_path, plugins):
    text = toy_data(tmp_path)
    text["model"]["neurons"] = {"1": {"kind": "toy_shaped"}}
    (found,) = problems(text, plugins)
    assert found == (
        "model.neurons.1: toy_shaped needs the shape of its layer "
        "(spiking layer 1: the architecture called neuron() without shape=)"
    )


def test_a_shaped_neurons_bad_value_is_reported_against_its_table(tmp_path, plugins):
    text = toy_data(tmp_path)
    text["model"] = {"kind": "toy_shaped_net", "neuron": {"kind": "toy_shaped", "gain": -1.0}}
    (found,) = problems(text, plugins)
    assert found.startswith("model.neuron: gain must be positive, got -1.0 (spiking layer 1:")


def test_the_factory_counts_layers_and_records_shapes():
    made = []
    default = NeuronTable(lambda **kw: made.append(("default", kw)) or kw, {"beta": 0.5}, "neuron", "model.neuron")
    third = NeuronTable(lambda *, shape, gain=1.0: ("third", shape, gain), {"gain": 3.0}, "neuron", "model.neurons.3")
    factory = NeuronFactory(default.factory, default.kwargs, path="model.neuron", layers={3: third})
    assert factory() == {"beta": 0.5}  # no shape parameter (a **kwargs factory gets none either)
    assert factory(shape=[4, 2, 2]) == {"beta": 0.5}
    assert factory(shape=(10,)) == ("third", (10,), 3.0)
    assert factory.calls == 3 and factory.shapes == [None, (4, 2, 2), (10,)]
    assert factory.table(3) is third and factory.table(1) is factory.default
