"""Helpers for the plugin's tests: small trained runs, test inputs, and the other libraries' NIR imports."""

from pathlib import Path

import snnframe_nir  # the checkout's (conftest.py puts it first on sys.path)

REPO = Path(__file__).resolve().parents[3]

# The quick start, small: 5 epochs on every 8th digit, 10 steps (about 6 s on 2 cores), enough for
# every layer to spike
SMALL = [
    "--set",
    "train.epochs=5",
    "--set",
    "train.lr=1e-2",
    "--set",
    "train.milestones=[]",
    "--set",
    "encoder.num_steps=10",
    "--set",
    "data.subset=8",
    "--set",
    "data.test_subset=8",
    "--set",
    "visualize=[]",
]
AVGPOOL_ZERO = [  # the "Done when" network: average pooling and reset_mechanism = "zero"
    "--set",
    "model.kind=layers",
    "--set",
    "model.spec=12C5-AP2-64C5-AP2-FC10",
    "--set",
    'model.neuron.reset_mechanism="zero"',
]


def nir_plugins():
    """The installed plugins plus this checkout's snnframe-nir (once: also when it is installed)."""
    from snnframe.plugins import load_plugins

    plugins = load_plugins()
    if "nir" not in plugins.registry("architectures"):
        plugins = load_plugins(extra=[("nir", snnframe_nir)])
    return plugins


def train(plugins, out: Path, name: str, *args: str) -> Path:
    """``snnframe run`` the quick start with :data:`SMALL` and ``args`` into ``out/name``."""
    from click.testing import CliRunner

    from snnframe.cli import make_cli

    result = CliRunner().invoke(
        make_cli(plugins),
        [
            "run",
            str(REPO / "recipes" / "quickstart.toml"),
            "--set",
            f"experiment.out_dir={out}",
            "--set",
            f"experiment.name={name}",
            *SMALL,
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    return out / name


def digits_batch(run, count=64):
    """``(encoded input [T, B, ...], labels)`` of the first test digits of a loaded run."""
    from torch.utils.data import default_collate

    _, test = run.splits()
    batch = default_collate([test[i] for i in range(min(count, len(test)))])
    images, labels = batch
    return run.encoder(images).contiguous(), labels


# ---- the other libraries -----------------------------------------------------------------------


def reset_snntorch(module):
    """Zero every snnTorch hidden state inside ``module`` (recursively, sub-GraphModules too)."""
    import torch

    for m in module.modules():
        if hasattr(m, "reset_mem") and hasattr(m, "init_hidden"):
            m.reset_mem()
            for name in ("mem", "syn", "spk"):
                if hasattr(m, name):
                    setattr(m, name, torch.zeros(0))


def run_graph_module(gm, x):
    """A nirtorch ``GraphModule`` (what ``snntorch.import_nir.import_from_nir`` returns) over ``x [T, B, ...]``.

    ``gm(x_t, state) -> (y_t, state)`` is one step; the state must be passed back in, or recurrent
    edges silently start from zero every step. snnTorch neurons keep their own state: reset first.
    """
    import torch

    reset_snntorch(gm)
    state, out = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            y, state = gm(x[t], state)
            out.append(y)
    return torch.stack(out)


def fix_flattens(module):
    """snnTorch 1.0.0 bug 2 (docs/nir.md): its importer maps NIR ``Flatten(0, -1)`` (per sample) to
    ``torch.nn.Flatten(0, -1)``, which flattens the batch too; shift the non-negative dims by one."""
    import torch

    for m in module.modules():
        if isinstance(m, torch.nn.Flatten):
            if m.start_dim >= 0:
                m.start_dim += 1
            if m.end_dim >= 0:
                m.end_dim += 1
    return module


def fix_pools(graph):
    """snnTorch 1.0.0 bug 1: its exporter writes ``AvgPool2d(kernel_size=2)`` with an int, which its importer
    cannot read (``tuple(2)``); make every pool's sizes pairs. snnframe's files need nothing."""
    import nir
    import numpy as np

    for node in graph.nodes.values():
        if isinstance(node, nir.NIRGraph):
            fix_pools(node)
        elif isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
            for field in ("kernel_size", "stride", "padding"):
                value = np.asarray(getattr(node, field)).astype(np.int64).reshape(-1)
                setattr(node, field, np.repeat(value, 2) if value.size == 1 else value)
    return graph


def topo_order(graph):
    """snnTorch 1.0.0 / nirtorch 2.6 bug 4: ``nir.read`` returns nodes alphabetically, and nirtorch re-wires a
    recurrent sub-graph met before its predecessor, then crashes (``'GraphModule' object has no attribute
    'items'``); re-insert the nodes in graph order. snnframe's node names already sort in graph order."""
    import nir

    order, seen = [], set()
    queue = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    while queue:
        key = queue.pop(0)
        if key not in seen:
            seen.add(key)
            order.append(key)
            queue += [b for a, b in graph.edges if a == key and b not in seen]
    graph.nodes = {k: graph.nodes[k] for k in order + [k for k in graph.nodes if k not in seen]}
    return graph


def snntorch_import(path, snntorch_file=False):
    """``snntorch.import_nir.import_from_nir(nir.read(path))`` with the workaround for bug 2; for a file
    snnTorch wrote itself, also for bugs 1 and 4."""
    import nir
    from snntorch.import_nir import import_from_nir

    graph = nir.read(str(path))
    return fix_flattens(import_from_nir(topo_order(fix_pools(graph)) if snntorch_file else graph))


def agreement(a, b) -> float:
    """The fraction of elements (spike or no spike) on which two spike tensors agree."""
    return float((a == b).float().mean())
