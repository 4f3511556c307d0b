"""snnframe -> NIR -> snnframe reproduces the outputs bit for bit; the ``nir`` architecture in recipes."""

import io
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from nir_helpers import REPO, SMALL, digits_batch

nir = pytest.importorskip("nir", reason="snnframe-nir's tests need the nir package (pip install 'nir>=1.0.7')")

import snnframe  # noqa: E402
from snnframe.cli import make_cli  # noqa: E402
from snnframe.contracts import NeuronFactory  # noqa: E402
from snnframe.engine import SpikingNeuron  # noqa: E402
from snnframe_nir.export import export_model, export_run  # noqa: E402
from snnframe_nir.importer import ImportProblem, build_network  # noqa: E402
from snnframe_nir.neurons import NIRNeuron, nir_rleaky, nir_rsynaptic, nir_synaptic  # noqa: E402


def import_file(plugins, path, input_shape, num_classes=10, **params):
    architecture = plugins.registry("architectures").get("nir")
    leaky = plugins.registry("neurons").get("leaky")
    return architecture(
        input_shape=input_shape, num_classes=num_classes, neuron=NeuronFactory(leaky, {}), path=str(path), **params
    )


@pytest.mark.parametrize("which", ["csnn", "mlp"])
def test_a_trained_run_comes_back_from_its_nir_file_bit_for_bit(which, csnn_run, mlp_run, plugins, tmp_path):
    run_dir = {"csnn": csnn_run, "mlp": mlp_run}[which]
    run = snnframe.load_run(run_dir, plugins=plugins)
    path, _ = export_run(run_dir, tmp_path / "model.nir", plugins=plugins)
    again = import_file(plugins, path, (1, 28, 28))
    assert [type(m).__name__ for m in again] == [type(m).__name__ for m in run.model]  # the built-in leaky again
    x, _ = digits_batch(run, 64)
    with torch.no_grad():
        ours, back = run.model(x), again(x)
    assert ours.sum() > 50 and torch.equal(ours, back)


def random_net(plugins, spec, neuron, input_shape, **params):
    torch.manual_seed(3)
    factory = plugins.registry("neurons").get(neuron) if isinstance(neuron, str) else neuron
    arch = plugins.registry("architectures").get("layers")
    net = arch(input_shape=input_shape, num_classes=10, neuron=NeuronFactory(factory, params), spec=spec).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) and module.weight.requires_grad:
                module.weight.mul_(3.0)
    return net


def layer_spikes(model, x):
    """The spikes of every spiking layer of ``model`` on ``x`` (forward hooks)."""
    found = []
    hooks = [
        m.register_forward_hook(lambda m, i, out: found.append(out)) for m in model if isinstance(m, SpikingNeuron)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return found


CASES = [
    ("leaky", {"reset_mechanism": "none", "beta": 0.6}),
    ("leaky", {"reset_mechanism": "zero", "beta": 1.0}),  # IF
    ("leaky", {"reset_mechanism": "zero", "beta": 0.9, "learn_beta": True, "learn_threshold": True}),
    ("synaptic", {"reset_mechanism": "none"}),
    ("plif", {"init_tau": 2.0, "threshold": 0.5}),
    ("plif", {"init_tau": 3.0, "decay_input": False}),
    (nir_synaptic, {"alpha": 0.7, "beta": 0.6}),
    (nir_rleaky, {"beta": 0.6}),
    (nir_rleaky, {"beta": 0.6, "all_to_all": False, "V": -0.4}),
    (nir_rsynaptic, {"alpha": 0.4, "beta": 0.6, "kernel_size": 3}),
]


@pytest.mark.parametrize("neuron, params", CASES, ids=lambda v: v if isinstance(v, str) else getattr(v, "__name__", ""))
def test_every_exactly_exported_neuron_round_trips_bit_for_bit(neuron, params, plugins, tmp_path):
    net = random_net(plugins, "6C3-SP2-FC16-FC10", neuron, (1, 10, 10), **params)
    path = tmp_path / "net.nir"
    exported = export_model(net, (1, 10, 10), plugins=plugins)
    assert not exported.warnings
    exported.write(path)
    again = import_file(plugins, path, (1, 10, 10))
    x = (torch.rand(20, 6, 1, 10, 10) < 0.4).float()
    ours, back = layer_spikes(net, x), layer_spikes(again, x)
    assert all(s.sum() > 0 for s in ours) and sum(s.sum() for s in ours) > 100  # every layer spikes
    assert all(torch.equal(a, b) for a, b in zip(ours, back))
    learnt = lambda module: sorted(n for n, p in module.named_parameters() if p.requires_grad)  # noqa: E731
    neurons = lambda model: [m for m in model if isinstance(m, SpikingNeuron)]  # noqa: E731
    for a, b in zip(neurons(net), neurons(again)):  # the same neurons and options (learnt parameters stay learnt)
        assert type(a) is type(b)
        if isinstance(a, NIRNeuron):  # one-to-one recurrent weights come back as a diagonal matrix
            assert learnt(a).count("recurrent.weight") <= learnt(b).count("recurrent.weight")
            assert [n for n in learnt(a) if "recurrent" not in n] == [n for n in learnt(b) if "recurrent" not in n]
        else:
            assert learnt(a) == learnt(b)


def test_a_builtin_recurrent_cell_without_reset_comes_back_through_its_li_threshold_loop(plugins):
    net = random_net(plugins, "FC24-FC10", "rsynaptic", (16,), reset_mechanism="none", threshold=2.0)
    exported = export_model(net, (16,), plugins=plugins)
    cell = exported.graph.nodes["l01_cubali_rnn"]
    assert sorted(cell.edges) == sorted(
        [("input", "cubali"), ("cubali", "threshold"), ("threshold", "w_rec"), ("w_rec", "cubali")]
        + [("threshold", "output")]
    )
    buffer = io.BytesIO()
    nir.write(buffer, exported.graph)
    buffer.seek(0)
    again = build_network(nir.read(buffer), (16,), 10, plugins=plugins)
    x = (torch.rand(30, 8, 16) < 0.4).float()
    ours, back = layer_spikes(net, x), layer_spikes(again, x)
    assert ours[0].sum() > 100
    # the recurrent bias moved into the layer before: the same sums in another order
    assert all(float((a == b).float().mean()) >= 0.99 for a, b in zip(ours, back))


def test_fields_edited_after_export_win_over_the_metadata(plugins, tmp_path):
    net = random_net(plugins, "FC10", "leaky", (16,), reset_mechanism="zero", beta=0.5)
    graph = export_model(net, (16,), plugins=plugins).graph
    graph.nodes["l01_lif"].v_threshold = graph.nodes["l01_lif"].v_threshold * 2  # threshold 1 -> 2
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    buffer.seek(0)
    with pytest.warns(UserWarning, match="its snnframe metadata .leaky. disagrees with its fields"):
        again = build_network(nir.read(buffer), (16,), 10, plugins=plugins)
    assert float(again[1].threshold) == 2.0


def test_a_graph_for_norses_time_step_reads_with_dt(plugins):
    """Norse writes LIF nodes with r = 1 and time constants for dt = 1e-3: v <- v + dt / tau (v_leak - v + I)."""
    tau, ones = np.full(10, 5e-3, dtype=np.float32), np.ones(10, np.float32)
    weight = np.random.default_rng(0).normal(0, 1, (10, 16)).astype(np.float32)
    graph = nir.NIRGraph.from_list(
        nir.Affine(weight=weight, bias=np.zeros(10, np.float32)),
        nir.LIF(tau=tau, r=ones, v_leak=np.zeros(10, np.float32), v_threshold=ones),
    )
    with pytest.raises(ImportProblem, match="shorter than the time step"):
        build_network(graph, (16,), 10, dt=1e-2, plugins=plugins)
    net = build_network(graph, (16,), 10, dt=1e-3, plugins=plugins)
    neuron = net[1]
    assert isinstance(neuron, NIRNeuron)  # the input gain dt / tau: not snnframe's leaky
    assert float(neuron.beta) == pytest.approx(0.8) and float(neuron.gain) == pytest.approx(0.2)


def test_the_nir_architecture_in_a_recipe_fine_tunes_and_exports_again(csnn_run, plugins, runs, tmp_path):
    path, _ = export_run(csnn_run, tmp_path / "csnn.nir", plugins=plugins)
    cli = make_cli(plugins)
    recipe = str(REPO / "recipes" / "quickstart.toml")
    model = f'model={{kind = "nir", path = "{path}"}}'
    common = ["--set", model, "--set", f"experiment.out_dir={runs}", *SMALL]
    result = CliRunner().invoke(cli, ["validate", recipe, *common, "--set", "experiment.name=finetune"])
    assert result.exit_code == 0, result.output
    assert "digits -> static -> nir/leaky" in result.output
    result = CliRunner().invoke(
        cli, ["run", recipe, *common, "--set", "train.epochs=1", "--set", "experiment.name=finetune"]
    )
    assert result.exit_code == 0, result.output
    tuned = snnframe.load_run(runs / "finetune", plugins=plugins)
    assert tuned.recipe.table("model").params == {"path": str(path), "dt": 1e-4}
    original = snnframe.load_run(csnn_run, plugins=plugins)
    assert not torch.equal(tuned.model[0].weight, original.model[0].weight)  # it trained
    again_path, _ = export_run(runs / "finetune", plugins=plugins)
    again = import_file(plugins, again_path, (1, 28, 28))
    x, _ = digits_batch(tuned, 32)
    with torch.no_grad():
        assert torch.equal(tuned.model(x), again(x))
    assert json.loads(nir.read(str(again_path)).nodes["l02_lif"].metadata["snnframe"])["kind"] == "leaky"


def test_recipe_errors_for_the_nir_architecture_name_the_key(plugins, tmp_path):
    cli = make_cli(plugins)
    recipe = str(REPO / "recipes" / "quickstart.toml")
    missing = tmp_path / "nothing.nir"
    result = CliRunner().invoke(cli, ["validate", recipe, "--set", f'model={{kind = "nir", path = "{missing}"}}'])
    assert result.exit_code == 2
    assert f"model.path: {missing} is not a file; write one with snnframe export-nir RUN_DIR" in result.output
    graph = nir.NIRGraph.from_list(
        nir.Affine(weight=np.ones((3, 784), np.float32), bias=np.zeros(3, np.float32)),
        nir.LIF(
            tau=np.full(3, 2e-4, np.float32),
            r=np.full(3, 2, np.float32),
            v_leak=np.zeros(3, np.float32),
            v_threshold=np.ones(3, np.float32),
        ),
    )
    three = tmp_path / "three.nir"
    nir.write(str(three), graph)
    result = CliRunner().invoke(cli, ["validate", recipe, "--set", f'model={{kind = "nir", path = "{three}"}}'])
    assert result.exit_code == 2
    assert "the graph outputs (3,) per step, but the data set has 10 classes" in result.output
    assert "Traceback" not in result.output


def test_graphs_that_are_not_chains_are_refused_naming_the_node(plugins):
    w = np.ones((4, 4), np.float32)
    lif = dict(
        tau=np.full(4, 2e-4, np.float32),
        r=np.full(4, 2, np.float32),
        v_leak=np.zeros(4, np.float32),
        v_threshold=np.ones(4, np.float32),
    )
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([4])}),
            "a": nir.Linear(weight=w),
            "b": nir.Linear(weight=w),
            "lif": nir.LIF(**lif),
            "output": nir.Output(output_type={"output": np.array([4])}),
        },
        edges=[("input", "a"), ("input", "b"), ("a", "lif"), ("b", "lif"), ("lif", "output")],
    )
    with pytest.raises(ImportProblem, match=r"node input feeds 2 nodes \(a, b\); the nir architecture reads chains"):
        build_network(graph, (4,), 4, plugins=plugins)
    delay = nir.NIRGraph.from_list(nir.Linear(weight=w), nir.Delay(delay=np.ones(4)), nir.LIF(**lif))
    with pytest.raises(ImportProblem, match="is a Delay; the nir architecture reads Conv2d"):
        build_network(delay, (4,), 4, plugins=plugins)
