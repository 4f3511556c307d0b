"""Checked against Norse 1.1's NIR import and export, for what they support (docs/nir.md: "Norse").

Norse's ``from_nir`` reads ``LIF`` without its ``r`` (the input enters as ``dt / tau * I``), has no
``AvgPool2d`` (the node is dropped) and flattens the batch like snnTorch. The graph handed to Norse
is therefore rewritten exactly where the semantics allow it: each LIF's threshold divided by ``r``
(with ``v_leak = v_reset = 0`` the membrane scales with its input) and an average pool written as a
sum pool with the next LIF's threshold times the window size. ``CubaLIF`` (``nir_synaptic``) goes in
unchanged: Norse honours its ``r`` and ``w_in``. Norse steps ``v + dt / tau (v_leak - v + I)``, not
``beta v + I``: the same numbers up to rounding, so spikes agree on at least 99 %, not bit for bit.
"""

import copy
import logging

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir", reason="snnframe-nir's tests need the nir package (pip install 'nir>=1.0.7')")
norse_torch = pytest.importorskip("norse.torch", reason="the Norse checks need norse (pip install norse)")

from nir_helpers import agreement, digits_batch, fix_flattens  # noqa: E402

import snnframe  # noqa: E402
from snnframe.contracts import NeuronFactory  # noqa: E402
from snnframe_nir.convention import DT  # noqa: E402
from snnframe_nir.export import export_model, export_run  # noqa: E402
from snnframe_nir.importer import ImportProblem, build_network  # noqa: E402
from snnframe_nir.neurons import nir_rleaky, nir_synaptic  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]
logging.getLogger().setLevel(logging.ERROR)  # Norse logs a warning for every LIF whose r is not 1


def for_norse(graph):
    """The rewrite described in the module docstring (exact for this plugin's graphs)."""
    graph = copy.deepcopy(graph)
    names = list(graph.nodes)
    pending = 1.0  # a window size waiting for the next LIF's threshold
    for name in names:
        node = graph.nodes[name]
        if isinstance(node, nir.NIRGraph):
            graph.nodes[name] = for_norse(node)
        elif isinstance(node, nir.AvgPool2d):
            pending *= float(np.prod(node.kernel_size))
            graph.nodes[name] = nir.SumPool2d(kernel_size=node.kernel_size, stride=node.stride, padding=node.padding)
        elif isinstance(node, nir.LIF):
            node.v_threshold = node.v_threshold * pending / node.r
            node.r = np.ones_like(node.r)
            pending = 1.0
        elif pending != 1.0 and not isinstance(node, (nir.Flatten, nir.SumPool2d)):
            raise AssertionError(f"{name}: a layer with a bias between a pool and its LIF (not exact)")
    return graph


def run_norse(graph, x, dt=DT):
    """Norse's ``from_nir`` executor, one step at a time with its state carried."""
    executor = fix_flattens(norse_torch.from_nir(graph, dt=dt))
    state, out = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            y, state = executor(x[t], state)
            out.append(y)
    return torch.stack(out)


def report(label, ours, theirs):
    share = agreement(ours, theirs)
    print(
        f"\n{label}: snnframe {int(ours.sum())} spikes, Norse {int(theirs.sum())}, "
        f"{int((ours != theirs).sum())} of {ours.numel()} elements differ (agreement {100 * share:.3f} %)"
    )
    return share


@pytest.mark.parametrize("which", ["csnn", "mlp"])
def test_a_trained_run_in_norse_gives_the_same_spikes(which, csnn_run, mlp_run, plugins, tmp_path, capsys):
    run_dir = {"csnn": csnn_run, "mlp": mlp_run}[which]
    run = snnframe.load_run(run_dir, plugins=plugins)
    path, _ = export_run(run_dir, tmp_path / "model.nir", plugins=plugins)
    x, _ = digits_batch(run, 64)
    with torch.no_grad():
        ours = run.model(x)
    theirs = run_norse(for_norse(nir.read(str(path))), x)
    with capsys.disabled():
        share = report(f"{which} (trained) vs Norse from_nir(dt=1e-4)", ours, theirs)
    assert ours.sum() > 50 and share >= 0.99


def norse_graph_unchanged_but_flatten(neuron, params, plugins):
    torch.manual_seed(4)
    arch = plugins.registry("architectures").get("layers")
    net = arch(input_shape=(48,), num_classes=10, neuron=NeuronFactory(neuron, params), spec="FC32-FC10").eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Linear) and module.weight.requires_grad:
                module.weight.mul_(3.0)
    return net, export_model(net, (48,), plugins=plugins).graph


@pytest.mark.parametrize(
    "neuron, params",
    [(nir_synaptic, {"alpha": 0.6, "beta": 0.8}), (nir_rleaky, {"beta": 0.7})],
    ids=["nir_synaptic", "nir_rleaky"],
)
def test_cubalif_and_recurrent_cells_run_in_norse(neuron, params, plugins, capsys):
    net, graph = norse_graph_unchanged_but_flatten(neuron, params, plugins)
    x = (torch.rand(25, 16, 48) < 0.3).float()
    with torch.no_grad():
        ours = net(x)
    graph = graph if neuron is nir_synaptic else for_norse(graph)  # the recurrent cell's LIF: r as above
    theirs = run_norse(graph, x)
    with capsys.disabled():
        share = report(f"{neuron.__name__} MLP vs Norse from_nir(dt=1e-4)", ours, theirs)
    assert ours.sum() > 50 and share >= 0.99


def test_a_graph_norse_exported_runs_in_snnframe_at_norses_time_step(plugins, capsys):
    """Norse 1.1's ``to_nir`` writes a LIFBoxCell as a LIF with r = 1 and ``tau = dt / tau_mem_inv`` = dt * tau
    (norse/norse issue #411, open): the time constants are dt times too short, and its own ``from_nir`` at the
    same dt does not give its spikes back. Read with dt = 1e-3 ** 2 = 1e-6, the graph is Norse's network."""
    from norse.torch import LIFBoxCell, LIFBoxParameters, SequentialState
    from norse.torch.utils.export_nir import to_nir

    def lif(n, tau_mem_inv, v_th):  # every parameter per neuron, or NIR's LIF refuses Norse's export
        full = lambda value: torch.full((n,), value)  # noqa: E731
        return LIFBoxCell(LIFBoxParameters(tau_mem_inv=full(tau_mem_inv), v_th=full(v_th), v_leak=full(0.0)))

    torch.manual_seed(5)
    model = SequentialState(torch.nn.Linear(20, 16), lif(16, 100.0, 0.2), torch.nn.Linear(16, 10), lif(10, 200.0, 0.1))
    with torch.no_grad():
        model[0].weight.mul_(3.0)
        model[2].weight.mul_(3.0)
    graph = to_nir(model, torch.zeros(20))  # one unbatched step: Norse writes the sample's shape as the input
    with pytest.raises(ImportProblem, match="shorter than the time step dt = 0.001 s"):
        build_network(graph, (20,), 10, dt=1e-3, plugins=plugins)
    net = build_network(graph, (20,), 10, dt=1e-6, plugins=plugins)
    x = (torch.rand(40, 8, 20) < 0.5).float()
    state, out = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            y, state = model(x[t], state)
            out.append(y)
        theirs, ours = torch.stack(out), net(x)
    with capsys.disabled():
        share = report("Norse LIFBoxCell net -> to_nir -> snnframe (dt=1e-6), vs Norse itself", ours, theirs)
    assert theirs.sum() > 50 and share >= 0.99
