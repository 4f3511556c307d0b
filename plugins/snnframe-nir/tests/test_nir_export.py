"""Export: the nodes and fields written, and a clear refusal for everything NIR cannot express."""

import io
import json

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir", reason="snnframe-nir's tests need the nir package (pip install 'nir>=1.0.7')")

import snnframe  # noqa: E402
from snnframe.contracts import NeuronFactory  # noqa: E402
from snnframe_nir.convention import DT  # noqa: E402
from snnframe_nir.export import NIRExportError, export_model, export_run  # noqa: E402
from snnframe_nir.neurons import nir_rleaky, nir_rsynaptic, nir_synaptic  # noqa: E402


def layers_net(plugins, spec, neuron="leaky", input_shape=(1, 28, 28), **params):
    torch.manual_seed(0)
    factory = plugins.registry("neurons").get(neuron) if isinstance(neuron, str) else neuron
    arch = plugins.registry("architectures").get("layers")
    return arch(input_shape=input_shape, num_classes=10, neuron=NeuronFactory(factory, params), spec=spec).eval()


def read_back(graph):
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    buffer.seek(0)
    return nir.read(buffer)  # with NIR's type check


def test_a_trained_avgpool_csnn_is_written_node_for_node(plugins, csnn_run, tmp_path):
    path, exported = export_run(csnn_run, tmp_path / "csnn.nir", plugins=plugins)
    graph = nir.read(str(path))
    assert list(graph.nodes) == sorted(graph.nodes)  # alphabetical order is the topological one (nirtorch bug 4)
    types = [type(graph.nodes[k]).__name__ for k in graph.nodes]
    assert types == ["Input", "Conv2d", "AvgPool2d", "LIF", "Conv2d", "AvgPool2d", "LIF", "Flatten", "Affine"] + [
        "LIF",
        "Output",
    ]
    assert graph.edges == list(zip(list(graph.nodes)[:-1], list(graph.nodes)[1:]))
    assert graph.metadata["snnframe.dt"] == DT and graph.metadata["snnframe.spec"] == "12C5-AP2-64C5-AP2-1024FC10"
    run = snnframe.load_run(csnn_run, plugins=plugins)
    lif = graph.nodes["l02_lif"]
    beta = 0.5
    assert lif.tau.shape == (12, 12, 12) and lif.tau.dtype == np.float32  # per neuron: NIR's type inference
    np.testing.assert_allclose(lif.tau, DT / (1 - beta), rtol=1e-6)  # tau = dt / (1 - beta)
    np.testing.assert_allclose(lif.r, 1 / (1 - beta), rtol=1e-6)  # r = tau / dt
    assert not lif.v_leak.any() and not lif.v_reset.any()
    np.testing.assert_array_equal(lif.v_threshold, 1.0)
    conv = graph.nodes["l00_conv2d"]
    np.testing.assert_array_equal(conv.weight, run.model[0].weight.detach().numpy())
    np.testing.assert_array_equal(conv.bias, run.model[0].bias.detach().numpy())
    assert tuple(conv.input_shape) == (28, 28)
    pool = graph.nodes["l01_avgpool2d"]
    assert pool.kernel_size.tolist() == [2, 2] and pool.stride.tolist() == [2, 2]  # arrays (snnTorch bug 1)
    assert graph.nodes["l06_flatten"].start_dim == 0  # NIR shapes have no batch dimension
    np.testing.assert_array_equal(graph.nodes["l07_affine"].weight, run.model[7].weight.detach().numpy())
    restore = json.loads(lif.metadata["snnframe"])
    assert restore == {
        "kind": "leaky",
        "args": {"reset_mechanism": "zero", "learn_beta": False, "learn_threshold": False},
        "state": {"beta": 0.5, "threshold": 1.0},
    }
    assert graph.nodes["output"].output_type["output"].tolist() == [10]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # nirtorch.extract_nir_graph, what snnTorch calls
def test_fields_equal_snntorchs_own_export_of_the_same_network(plugins, mlp_run, tmp_path):
    """The convention is snnTorch's: its export_to_nir of the same MLP writes the same fields."""
    pytest.importorskip("nirtorch", reason="snnTorch's NIR export needs nirtorch")
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    run = snnframe.load_run(mlp_run, plugins=plugins)
    _, ours = export_run(mlp_run, tmp_path / "mlp.nir", plugins=plugins)
    fc1, fc2 = run.model[1], run.model[3]
    # snnTorch exports scalar parameters as 0-d arrays that NIR's type inference rejects (snnTorch issue
    # #410): give its neurons per-neuron tensors
    net = torch.nn.Sequential(
        torch.nn.Flatten(),
        fc1,
        snn.Leaky(beta=torch.full((64,), 0.5), threshold=torch.ones(64), init_hidden=True, reset_mechanism="zero"),
        fc2,
        snn.Leaky(beta=torch.full((10,), 0.5), threshold=torch.ones(10), init_hidden=True, reset_mechanism="zero"),
    )
    theirs = export_to_nir(net, torch.zeros(1, 1, 28, 28), ignore_dims=[0])
    pairs = [("l00_flatten", "0"), ("l01_affine", "1"), ("l02_lif", "2"), ("l03_affine", "3"), ("l04_lif", "4")]
    for mine, snntorch_name in pairs:
        a, b = ours.graph.nodes[mine], theirs.nodes[snntorch_name]
        assert type(a) is type(b), (mine, a, b)
        for field in a.__dataclass_fields__:
            if field in ("input_type", "output_type", "metadata"):
                continue
            np.testing.assert_allclose(
                np.asarray(getattr(a, field), dtype=np.float64),
                np.asarray(getattr(b, field), dtype=np.float64),
                rtol=1e-6,
                err_msg=f"{mine}.{field}",
            )


def test_the_quickstart_as_shipped_is_refused_naming_max_pooling_and_the_subtractive_reset(plugins, quickstart_run):
    with pytest.raises(NIRExportError) as info:
        export_run(quickstart_run, plugins=plugins)
    message = str(info.value)
    assert "cannot be exported to NIR (2 problems)" in message
    assert "max-pooling: NIR has no max-pool node" in message
    assert 'in layers 2 "MP2" and 4 "MP2" of 12C5-MP2-64C5-MP2-1024FC10: train with AP2 instead of MP2' in message
    assert "subtractive reset" in message
    neurons = 'in spiking layers 1, 2 and 3 (neuron "leaky", [model.neuron]): train with reset_mechanism = "zero"'
    assert neurons in message
    assert "--approximate" not in message  # max-pooling has no nearest node
    assert not (quickstart_run / "model.nir").exists()


def test_layers_notation_errors_point_at_the_token(plugins):
    net = layers_net(plugins, "8C5-MP2-FC10", reset_mechanism="zero")
    with pytest.raises(NIRExportError, match='model.spec token 2 "MP2" .*train with AP2 instead of MP2'):
        export_model(net, (1, 28, 28), plugins=plugins)
    arch = plugins.registry("architectures").get("layers")
    leaky = plugins.registry("neurons").get("leaky")
    tables = [{"type": "conv", "channels": 4, "kernel": 5}, {"type": "maxpool", "kernel": 3}, {"type": "fc"}]
    net = arch(input_shape=(1, 28, 28), num_classes=10, neuron=NeuronFactory(leaky, {}), layers=tables)
    with pytest.raises(NIRExportError) as info:
        export_model(net, (1, 28, 28), plugins=plugins)
    assert 'model.layers[1] ("MP3")' in str(info.value)
    assert 'train with type = "avgpool" instead of "maxpool"' in str(info.value)


@pytest.mark.parametrize(
    "neuron, params, advice",
    [
        ("synaptic", {"reset_mechanism": "zero"}, 'train with kind = "nir_synaptic"'),
        ("synaptic", {}, 'train with kind = "nir_synaptic"'),
        ("rleaky", {"reset_mechanism": "zero"}, 'train with kind = "nir_rleaky"'),
        ("rsynaptic", {"reset_mechanism": "zero"}, 'train with kind = "nir_rsynaptic"'),
        ("alif", {"reset_mechanism": "zero"}, 'train with kind = "leaky" and reset_mechanism = "zero"'),
        ("plif", {"reset_mechanism": "subtract"}, 'train with reset_mechanism = "zero" (plif\'s default)'),
    ],
)
def test_neurons_nir_cannot_hold_are_refused_with_what_would_work(plugins, neuron, params, advice):
    net = layers_net(plugins, "8C5-AP2-FC10", neuron, **params)
    with pytest.raises(NIRExportError) as info:
        export_model(net, (1, 28, 28), plugins=plugins)
    message = str(info.value)
    assert advice in message and f'neuron "{neuron}"' in message
    assert "(or pass --approximate to export the nearest NIR nodes)" in message


def test_approximate_writes_the_nearest_node_and_says_what_changes(plugins):
    net = layers_net(plugins, "8C5-AP2-FC10", "leaky")  # subtract, the default
    exported = export_model(net, (1, 28, 28), plugins=plugins, approximate=True)
    assert len(exported.warnings) == 2
    assert exported.warnings[0].startswith('spiking layer 1 (module 2, neuron "leaky", after "8C5")')
    assert "a reset to 0 within the step instead of subtracting the threshold" in exported.warnings[0]
    lif = exported.graph.nodes["l02_lif"]
    assert "snnframe" not in lif.metadata and "instead of subtracting" in lif.metadata["snnframe.approximated"]
    alif = layers_net(plugins, "8C5-AP2-FC10", "alif", reset_mechanism="zero")
    exported = export_model(alif, (1, 28, 28), plugins=plugins, approximate=True)
    assert "a LIF without the adaptation (beta_a = 0.2 dropped)" in exported.warnings[0]
    alpha = layers_net(plugins, "8C5-AP2-FC10", "alpha")  # nothing comes near: refused even so
    with pytest.raises(NIRExportError, match='neuron "alpha": NIR has no node .*kind = "nir_synaptic"'):
        export_model(alpha, (1, 28, 28), plugins=plugins, approximate=True)
    maxpool = layers_net(plugins, "8C5-MP2-FC10", "leaky", reset_mechanism="zero")
    with pytest.raises(NIRExportError, match="max-pooling"):
        export_model(maxpool, (1, 28, 28), plugins=plugins, approximate=True)


def test_a_neuron_no_plugin_maps_is_named(plugins):
    from snnframe.engine import StepNeuron

    class Mine(StepNeuron):
        def charge(self, x, mem):
            return 0.5 * mem + x

    net = layers_net(plugins, "FC10", lambda: Mine(reset_mechanism="zero"), input_shape=(16,))
    with pytest.raises(NIRExportError, match=r"neuron Mine: NIR has no node for its dynamics"):
        export_model(net, (16,), plugins=plugins)


def test_reset_none_synaptic_and_plif_and_no_leak_are_exact_nodes(plugins):
    types = lambda graph: [type(n).__name__ for n in graph.nodes.values()]  # noqa: E731
    net = layers_net(plugins, "FC10", "leaky", input_shape=(16,), reset_mechanism="none")
    assert types(read_back(export_model(net, (16,), plugins=plugins).graph)) == [
        "Input",
        "Affine",
        "LI",
        "Threshold",
        "Output",
    ]
    net = layers_net(plugins, "FC10", "synaptic", input_shape=(16,), reset_mechanism="none")
    assert "CubaLI" in types(read_back(export_model(net, (16,), plugins=plugins).graph))
    net = layers_net(plugins, "FC10", "leaky", input_shape=(16,), beta=1.0, reset_mechanism="zero")
    graph = read_back(export_model(net, (16,), plugins=plugins).graph)
    assert "IF" in types(graph)
    np.testing.assert_allclose(graph.nodes["l01_if"].r, 1 / DT)  # v += dt * r * I = I
    net = layers_net(plugins, "FC10", "plif", input_shape=(16,), init_tau=4.0)
    lif = read_back(export_model(net, (16,), plugins=plugins).graph).nodes["l01_lif"]
    np.testing.assert_allclose(lif.tau, DT * 4, rtol=1e-5)  # k = 1 / tau_steps: beta = 1 - k
    np.testing.assert_allclose(lif.r, 1.0, rtol=1e-5)  # decay_input: the input is scaled by k too


def test_nir_neurons_and_recurrent_cells_are_nested_subgraphs(plugins):
    recurrent = layers_net(plugins, "FC12-FC10", nir_rleaky, input_shape=(16,), beta=0.7)
    graph = read_back(export_model(recurrent, (16,), plugins=plugins).graph)
    cell = graph.nodes["l01_lif_rnn"]
    assert isinstance(cell, nir.NIRGraph)
    assert sorted(cell.edges) == sorted(
        [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
    )  # input -> lif, not input -> w_rec (snnTorch bug 3)
    assert isinstance(cell.nodes["w_rec"], nir.Linear)  # bias-free: no question what happens at t = 0
    np.testing.assert_array_equal(cell.nodes["w_rec"].weight, recurrent[1].recurrent.weight.detach().numpy())
    synaptic = layers_net(plugins, "FC10", nir_synaptic, input_shape=(16,), alpha=0.6, beta=0.8)
    node = read_back(export_model(synaptic, (16,), plugins=plugins).graph).nodes["l01_cubalif"]
    np.testing.assert_allclose(node.tau_syn, DT / 0.4, rtol=1e-6)
    np.testing.assert_allclose(node.w_in, 1 / 0.4, rtol=1e-6)  # w_in = tau_syn / dt
    np.testing.assert_allclose(node.r, 1 / 0.2, rtol=1e-6)
    onetoone = layers_net(plugins, "FC10", nir_rsynaptic, input_shape=(16,), all_to_all=False, V=0.3)
    cell = read_back(export_model(onetoone, (16,), plugins=plugins).graph).nodes["l01_cubalif_rnn"]
    np.testing.assert_allclose(cell.nodes["w_rec"].weight, 0.3 * np.eye(10), rtol=1e-6)
    conv = layers_net(plugins, "4C3-AP2-FC10", nir_rleaky, input_shape=(1, 8, 8), beta=0.6, kernel_size=3)
    cell = read_back(export_model(conv, (1, 8, 8), plugins=plugins).graph).nodes["l02_lif_rnn"]
    assert isinstance(cell.nodes["w_rec"], nir.Conv2d) and cell.nodes["w_rec"].padding.tolist() == [1, 1]


def test_builtin_recurrent_bias_is_folded_into_the_layer_before(plugins):
    net = layers_net(plugins, "FC10", "rleaky", input_shape=(16,), reset_mechanism="zero")
    exported = export_model(net, (16,), plugins=plugins, approximate=True)
    affine = exported.graph.nodes["l00_affine"]
    expected = net[0].bias.detach().double() + net[1].recurrent.bias.detach().double()
    np.testing.assert_allclose(affine.bias, expected.numpy(), rtol=1e-6)
    assert any("recurrent bias was added" in w for w in exported.warnings)


def test_batch_norm_is_folded_into_the_layer_before(plugins):
    net = layers_net(plugins, "8C5-BN-AP2-FC10", "leaky", reset_mechanism="zero")
    bn = net[1]
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    exported = export_model(net, (1, 28, 28), plugins=plugins)
    types = [type(n).__name__ for n in exported.graph.nodes.values()]
    assert "BatchNorm2d" not in types and types[1:4] == ["Conv2d", "AvgPool2d", "LIF"]
    conv = exported.graph.nodes["l00_conv2d"]
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        want = bn(net[0](x))
        got = torch.nn.functional.conv2d(x, torch.from_numpy(conv.weight), torch.from_numpy(conv.bias))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_a_model_that_is_not_a_layer_stack_is_refused(plugins):
    class Net(torch.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(NIRExportError, match="not a layer stack"):
        export_model(Net(), (4,), plugins=plugins)
