"""Verified against snnTorch, whose conventions NIR's discrete SNNs follow: both directions, spike for spike.

snnframe -> NIR -> ``snntorch.import_nir.import_from_nir`` (stock, with the workaround for its
Flatten bug), and snnTorch -> ``snntorch.export_nir.export_to_nir`` -> NIR -> snnframe's ``nir``
architecture. The outputs are compared element by element on the same input.
"""

import logging

import pytest
import torch

nir = pytest.importorskip("nir", reason="snnframe-nir's tests need the nir package (pip install 'nir>=1.0.7')")
pytest.importorskip("nirtorch", reason="snnTorch's NIR import and export need nirtorch (pip install nirtorch)")

from nir_helpers import agreement, digits_batch, reset_snntorch, run_graph_module, snntorch_import  # noqa: E402

import snnframe  # noqa: E402
from snnframe.contracts import NeuronFactory  # noqa: E402
from snnframe_nir.export import export_model, export_run  # noqa: E402
from snnframe_nir.importer import build_network  # noqa: E402
from snnframe_nir.neurons import nir_rleaky, nir_rsynaptic, nir_synaptic  # noqa: E402

logging.getLogger("nirtorch").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def compare(ours, theirs):
    """Element-wise agreement and spike counts, printed for the record (pytest -s)."""
    share = agreement(ours, theirs)
    print(
        f"  snnframe {int(ours.sum())} spikes, other {int(theirs.sum())} spikes, "
        f"{int((ours != theirs).sum())} of {ours.numel()} elements differ (agreement {100 * share:.3f} %)"
    )
    return share


@pytest.mark.parametrize("which", ["csnn", "mlp"])
def test_a_trained_run_exported_and_imported_by_snntorch_gives_the_same_spikes(
    which, csnn_run, mlp_run, plugins, tmp_path, capsys
):
    run_dir = {"csnn": csnn_run, "mlp": mlp_run}[which]
    run = snnframe.load_run(run_dir, plugins=plugins)
    path, _ = export_run(run_dir, tmp_path / f"{which}.nir", plugins=plugins)
    x, _ = digits_batch(run, 64)
    with torch.no_grad():
        ours = run.model(x)
    with capsys.disabled():
        print(f"\n{which} (trained 5 epochs, {tuple(x.shape)} input) vs snnTorch import_from_nir:")
        theirs = run_graph_module(snntorch_import(path), x)
        assert ours.sum() > 50  # a network that spikes, or the comparison says little
        assert compare(ours, theirs) == 1.0  # exact: the same operations in the same order


def random_net(plugins, spec, neuron, input_shape, gain=3.0, **params):
    torch.manual_seed(1)
    arch = plugins.registry("architectures").get("layers")
    net = arch(input_shape=input_shape, num_classes=10, neuron=NeuronFactory(neuron, params), spec=spec).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) and module.weight.requires_grad:
                module.weight.mul_(gain)
    return net


@pytest.mark.parametrize(
    "neuron, params",
    [
        (nir_synaptic, {"alpha": 0.6, "beta": 0.8}),
        (nir_rleaky, {"beta": 0.7}),
        (nir_rleaky, {"beta": 0.7, "all_to_all": False, "V": 0.5}),
        (nir_rsynaptic, {"alpha": 0.5, "beta": 0.7}),
    ],
    ids=["nir_synaptic", "nir_rleaky", "nir_rleaky_one_to_one", "nir_rsynaptic"],
)
def test_nir_neurons_and_recurrent_cells_give_snntorchs_spikes(neuron, params, plugins, tmp_path, capsys):
    net = random_net(plugins, "48FC32-FC10", neuron, (48,), **params)
    path = tmp_path / "net.nir"
    export_model(net, (48,), plugins=plugins).write(path)
    x = (torch.rand(25, 16, 48) < 0.3).float()
    with torch.no_grad():
        ours = net(x)
    with capsys.disabled():
        print(f"\n{neuron.__name__} {params} MLP vs snnTorch import_from_nir:")
        theirs = run_graph_module(snntorch_import(path), x)
        assert ours.sum() > 50
        assert compare(ours, theirs) == 1.0


def snntorch_network():
    """An snnTorch network with every node type its exporter writes (parameters per neuron: snnTorch issue #410)."""
    import snntorch as snn

    torch.manual_seed(2)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.AvgPool2d(2),
        snn.Leaky(  # snnTorch's default subtractive reset would be exported as a plain LIF all the same
            beta=torch.full((4, 4, 4), 0.8),
            threshold=torch.full((4, 4, 4), 0.5),
            init_hidden=True,
            reset_mechanism="zero",
        ),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 12),
        snn.Synaptic(
            alpha=torch.full((12,), 0.6),
            beta=torch.full((12,), 0.8),
            threshold=torch.ones(12),
            init_hidden=True,
            reset_mechanism="zero",
            reset_delay=False,  # NIR resets within the step (reset_delay=True holds the next step at 0)
        ),
        torch.nn.Linear(12, 8),
        snn.RLeaky(
            beta=torch.full((8,), 0.7),
            threshold=torch.ones(8),
            linear_features=8,
            all_to_all=True,
            init_hidden=True,
            reset_mechanism="zero",
            reset_delay=False,
        ),
        torch.nn.Linear(8, 10),
        snn.Leaky(beta=torch.full((10,), 0.9), threshold=torch.ones(10), init_hidden=True, reset_mechanism="zero"),
    )
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        net[4].weight.mul_(2.0)
        net[6].weight.mul_(2.0)
        net[7].recurrent.weight.mul_(2.0)
        # snnTorch's RLeaky adds its recurrent bias at t = 0 too (recurrent(0) = b); in a NIR graph the
        # recurrent edge carries nothing at t = 0 (nirtorch, Norse and snnframe agree), so only a bias-free
        # cell compares step for step
        net[7].recurrent.bias.zero_()
        net[8].weight.mul_(3.0)
    return net


def run_snntorch(net, x):
    reset_snntorch(net)
    with torch.no_grad():
        return torch.stack([net(x[t]) for t in range(x.shape[0])])


def test_a_graph_snntorch_exported_runs_in_snnframe_with_the_same_spikes(plugins, tmp_path, capsys):
    from snntorch.export_nir import export_to_nir

    net = snntorch_network()
    graph = export_to_nir(net, torch.zeros(1, 1, 8, 8), ignore_dims=[0])
    path = tmp_path / "snntorch.nir"
    nir.write(str(path), graph)
    read = nir.read(str(path))
    assert {type(n).__name__ for n in read.nodes.values()} >= {"Conv2d", "AvgPool2d", "LIF", "CubaLIF", "Affine"}
    ours_net = build_network(read, (1, 8, 8), 10, plugins=plugins)
    names = [type(m).__name__ for m in ours_net]
    assert names == [
        "Conv2d",
        "AvgPool2d",
        "Leaky",  # snnframe's own leaky: a uniform LIF with snnTorch's fields
        "Flatten",
        "Linear",
        "NIRNeuron",  # CubaLIF: NIR's in-step reset
        "Linear",
        "NIRNeuron",  # the flat lif <-> w_rec cycle snnTorch writes, as one recurrent layer
        "Linear",
        "Leaky",
    ]
    x = (torch.rand(30, 8, 1, 8, 8) < 0.4).float()
    theirs = run_snntorch(net, x)
    with torch.no_grad():
        ours = ours_net(x)
    with capsys.disabled():
        print("\nsnnTorch net -> export_to_nir -> snnframe nir architecture, vs the snnTorch net itself:")
        assert theirs.sum() > 50
        share = compare(ours, theirs)
    assert share == 1.0  # exact (beta = 1 - dt / tau comes back as the float32 snnTorch holds)


def test_the_worked_example_of_docs_nir_md_runs(csnn_run, plugins, capsys):
    """docs/nir.md's snnTorch example, on the small trained run instead of runs/quickstart_nir."""
    import re

    from nir_helpers import REPO

    export_run(csnn_run, plugins=plugins, overwrite=True)  # RUN_DIR/model.nir, as snnframe export-nir RUN_DIR

    text = (REPO / "docs" / "nir.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "import_from_nir" in b)
    exec(compile(block.replace("runs/quickstart_nir", str(csnn_run)), "docs/nir.md", "exec"), {})
    assert "identical spikes: True" in capsys.readouterr().out


def test_a_recurrent_bias_enters_from_the_second_step_as_in_snntorchs_import(plugins, tmp_path, capsys):
    """A flat snnTorch cell whose w_rec is an Affine: snnframe runs it as nirtorch does (the recurrent edge is
    empty at t = 0, so the bias enters from t = 1) and writes it back so, as an Affine in the nested cell."""
    from snntorch.export_nir import export_to_nir

    net = snntorch_network()
    with torch.no_grad():
        net[7].recurrent.bias.uniform_(-0.5, 0.5)
    graph = export_to_nir(net, torch.zeros(1, 1, 8, 8), ignore_dims=[0])
    path = tmp_path / "bias.nir"
    nir.write(str(path), graph)
    ours_net = build_network(nir.read(str(path)), (1, 8, 8), 10, plugins=plugins)
    assert ours_net[7].recurrent.bias is not None
    x = (torch.rand(30, 8, 1, 8, 8) < 0.4).float()
    with torch.no_grad():
        ours = ours_net(x)
    again = tmp_path / "again.nir"
    exported = export_model(ours_net, (1, 8, 8), plugins=plugins)
    assert not exported.warnings
    assert isinstance(exported.graph.nodes["l07_lif_rnn"].nodes["w_rec"], nir.Affine)  # the bias stays there
    exported.write(again)
    with capsys.disabled():
        print("\nsnnTorch graph with a recurrent bias, in snnframe vs snnTorch's import of snnframe's export of it:")
        assert compare(ours, run_graph_module(snntorch_import(again), x)) == 1.0
        # snnTorch's import of its own flat file feeds the input through w_rec (bug 3): not a reference
        flat = run_graph_module(snntorch_import(path, snntorch_file=True), x)
        print("  (snnTorch's import of its own file, bug 3:)")
        assert compare(ours, flat) < 1.0
