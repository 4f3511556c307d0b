"""NIR graph -> snnframe network: the ``nir`` architecture (``model.kind = "nir"``).

The graph must be a chain from its ``Input`` to its ``Output``: stateless nodes (``Conv2d``,
``Affine``, ``Linear``, ``Flatten``, ``AvgPool2d``, ``SumPool2d``, ``Scale``), neurons (``LIF``,
``CubaLIF``, ``IF``; ``LI``, ``CubaLI`` or ``I`` followed by ``Threshold``) and recurrent cells,
either nested (a sub-graph ``input -> lif -> w_rec -> lif -> output``, as this plugin writes
them) or flat (``lif <-> w_rec`` in the graph itself, as snnTorch writes them). Node order in
the file does not matter.

Neurons follow NIR's equations under the time-step convention of
:mod:`snnframe_nir.convention` (``dt`` = the ``dt`` parameter, 1e-4 by default): a uniform LIF
with snnTorch's fields becomes the built-in ``leaky`` (``reset_mechanism = "zero"``, the same
spikes), anything else a :class:`~snnframe_nir.neurons.NIRNeuron`. A neuron written by
``snnframe export-nir`` is rebuilt from its node's ``"snnframe"`` metadata as it was trained
(kind, options, exact values) once the metadata is checked to give the node's fields; the
fields win when they disagree (the file was edited).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from snnframe.engine import SpikingSequential
from snnframe.errors import ParameterError
from snnframe_nir.convention import DT, ConventionError, from_nodes, same_fields, to_nodes, uniform
from snnframe_nir.neurons import NIRNeuron, Scale

NIR_INSTALL = "pip install 'nir>=1.0.7'"


class ImportProblem(ValueError):
    """A graph the ``nir`` architecture cannot build (the message names the node)."""


class NIRNetwork(SpikingSequential):
    """The network built from a NIR graph; ``nir_nodes[i]`` names the node(s) module ``i`` came from."""

    def __init__(self, modules, names, source):
        super().__init__(*modules)
        self.nir_nodes = tuple(names)
        self.source = source


@dataclasses.dataclass
class Item:
    """One link of the chain: a stateless node, or a neuron (with its Threshold and recurrent weights)."""

    name: str
    node: Any
    threshold: Any = None  # the Threshold after an LI / CubaLI / I
    w_rec: Any = None  # recurrent weights (a node), for a recurrent cell


def require_nir():
    try:
        import nir
    except ImportError:
        raise ImportError(f"snnframe-nir needs the nir package ({NIR_INSTALL})") from None
    return nir


# ---- the graph as a chain --------------------------------------------------------------------

_WEIGHTS = ("Affine", "Linear", "Conv2d", "Scale")


def _is_neuron(node) -> bool:
    return type(node).__name__ in ("LIF", "CubaLIF", "IF", "LI", "CubaLI", "I")


def chain(graph, where: str = "") -> tuple[Any, list[Item], Any]:
    """``(Input, the items from the input to the output, Output)`` of ``graph``; ``ImportProblem`` if no chain."""
    nir = require_nir()
    nodes = dict(graph.nodes)
    edges = [tuple(e) for e in graph.edges]
    preds: dict[str, list[str]] = {k: [] for k in nodes}
    succs: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        if a not in nodes or b not in nodes:
            raise ImportProblem(f"{where}the edge {a} -> {b} names a node the graph does not have")
        succs[a].append(b)
        preds[b].append(a)
    # recurrent loops: a weight node fed by a neuron (or its Threshold) that feeds that neuron back
    loops: dict[str, str] = {}  # neuron node -> its w_rec node
    for w, node in nodes.items():
        if type(node).__name__ not in _WEIGHTS or len(preds[w]) != 1 or len(succs[w]) != 1:
            continue
        src, dst = preds[w][0], succs[w][0]
        if not _is_neuron(nodes[dst]):
            continue
        if src == dst or (isinstance(nodes[src], nir.Threshold) and preds[src] == [dst]):
            loops[dst] = w
    for neuron, w in loops.items():
        src = preds[w][0]
        succs[src].remove(w)
        preds[neuron].remove(w)
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ImportProblem(
            f"{where}the graph has {len(inputs)} Input and {len(outputs)} Output nodes; the nir architecture "
            "reads graphs with one of each"
        )
    items: list[Item] = []
    seen = {inputs[0]}
    current = inputs[0]
    while True:
        nxt = succs[current]
        if len(nxt) != 1:
            what = "feeds nothing" if not nxt else f"feeds {len(nxt)} nodes ({', '.join(nxt)})"
            raise ImportProblem(
                f"{where}node {current} {what}; the nir architecture reads chains (feed-forward layers and "
                "recurrent cells), not branching graphs"
            )
        current = nxt[0]
        if current in seen:
            raise ImportProblem(f"{where}node {current} closes a loop that is not a recurrent cell")
        seen.add(current)
        if len(preds[current]) != 1:
            raise ImportProblem(
                f"{where}node {current} sums {len(preds[current])} inputs ({', '.join(preds[current])}); the nir "
                "architecture reads chains"
            )
        node = nodes[current]
        if isinstance(node, nir.Output):
            break
        if isinstance(node, nir.NIRGraph):
            _, inner, _ = chain(node, f"{where}{current}.")
            items += inner
        elif isinstance(node, nir.Threshold) and items and items[-1].threshold is None and _spikeless(items[-1].node):
            items[-1].threshold = node
            items[-1].name += f"+{current}"
        else:
            items.append(Item(f"{where}{current}", node, w_rec=nodes[loops[current]] if current in loops else None))
    unused = [k for k in nodes if k not in seen and k not in loops.values()]
    if unused:
        listed = ", ".join(sorted(unused))
        raise ImportProblem(f"{where}nodes {listed} are not on the path from the input to the output")
    return nodes[inputs[0]], items, nodes[outputs[0]]


def _spikeless(node) -> bool:
    return type(node).__name__ in ("LI", "CubaLI", "I")


def _shape_of(node, key: str) -> tuple[int, ...] | None:
    types = node.input_type if key == "input" else node.output_type
    value = (types or {}).get(key)
    return None if value is None else tuple(int(s) for s in np.asarray(value).reshape(-1))


# ---- modules ---------------------------------------------------------------------------------


def _ints(value, name: str) -> tuple[int, int] | str:
    if isinstance(value, (str, bytes)):
        return value.decode() if isinstance(value, bytes) else value
    array = np.asarray(value).reshape(-1).astype(np.int64)
    if array.size == 1:
        return (int(array[0]), int(array[0]))
    if array.size != 2:
        raise ImportProblem(f"{name} must be one or two integers, got {value!r}")
    return (int(array[0]), int(array[1]))


def _tensor(array) -> torch.Tensor:
    return torch.tensor(np.asarray(array, dtype=np.float32))


def stateless_module(item: Item, shape: tuple[int, ...]) -> nn.Module:
    """The torch module of a stateless node, for an input of one-sample ``shape``."""
    nir = require_nir()
    node, name = item.node, item.name
    if isinstance(node, nir.Conv2d):
        weight = np.asarray(node.weight)
        if len(shape) != 3 or weight.ndim != 4:
            raise ImportProblem(f"node {name} (Conv2d) needs a (C, H, W) input, got {shape}")
        groups = int(node.groups)
        if shape[0] != weight.shape[1] * groups:
            raise ImportProblem(
                f"node {name} (Conv2d) takes {weight.shape[1] * groups} channels, its input has {shape[0]}"
            )
        bias = getattr(node, "bias", None)
        module = nn.Conv2d(
            shape[0],
            weight.shape[0],
            tuple(weight.shape[2:]),
            stride=_ints(node.stride, f"node {name} stride"),
            padding=_ints(node.padding, f"node {name} padding"),
            dilation=_ints(node.dilation, f"node {name} dilation"),
            groups=groups,
            bias=bias is not None,
        )
        with torch.no_grad():
            module.weight.copy_(_tensor(weight))
            if bias is not None:
                module.bias.copy_(_tensor(np.broadcast_to(np.asarray(bias, dtype=np.float32), (weight.shape[0],))))
        return module
    if isinstance(node, (nir.Affine, nir.Linear)):
        weight = np.asarray(node.weight)
        if weight.ndim != 2:
            kind = type(node).__name__
            raise ImportProblem(f"node {name} ({kind}) has a weight of shape {weight.shape}, not [out, in]")
        if shape != (weight.shape[1],):
            raise ImportProblem(
                f"node {name} ({type(node).__name__}) takes {weight.shape[1]} features, its input has shape {shape}"
                + (" (a Flatten is missing before it)" if len(shape) > 1 else "")
            )
        affine = isinstance(node, nir.Affine)
        module = nn.Linear(weight.shape[1], weight.shape[0], bias=affine)
        with torch.no_grad():
            module.weight.copy_(_tensor(weight))
            if affine:
                module.bias.copy_(_tensor(np.broadcast_to(np.asarray(node.bias, dtype=np.float32), (weight.shape[0],))))
        return module
    if isinstance(node, nir.Flatten):
        start, end = int(node.start_dim), int(node.end_dim)
        return nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        if len(shape) != 3:
            raise ImportProblem(f"node {name} ({type(node).__name__}) needs a (C, H, W) input, got {shape}")
        kernel = _ints(node.kernel_size, f"node {name} kernel_size")
        stride = _ints(node.stride, f"node {name} stride") if node.stride is not None else kernel
        padding = _ints(node.padding, f"node {name} padding") if node.padding is not None else (0, 0)
        divisor = 1 if isinstance(node, nir.SumPool2d) else None
        return nn.AvgPool2d(kernel, stride, padding, divisor_override=divisor)
    if isinstance(node, nir.Scale):
        return Scale(_broadcast(node.scale, shape, f"node {name} (Scale) scale"))
    if isinstance(node, nir.Threshold):  # a Threshold on its own: spikes of the input, no state
        return NIRNeuron(beta=0.0, threshold=_broadcast(node.threshold, shape, f"node {name} threshold"), reset=False)
    kind = type(node).__name__
    raise ImportProblem(
        f"node {name} is a {kind}; the nir architecture reads Conv2d, Affine, Linear, Flatten, AvgPool2d, "
        "SumPool2d, Scale, Threshold, LIF, CubaLIF, IF, LI/CubaLI/I + Threshold and recurrent cells"
    )


def _broadcast(value, shape: tuple[int, ...], what: str):
    """``value`` as a float (uniform) or an array of ``shape``; ``ImportProblem`` if it does not fit."""
    array = np.asarray(value, dtype=np.float64)
    one = uniform(array)
    if one is not None:
        return one
    try:
        return np.broadcast_to(array, shape).copy()
    except ValueError:
        if array.size == int(np.prod(shape)):
            return array.reshape(shape)
        raise ImportProblem(f"{what} has shape {array.shape}, which does not fit the layer's {shape}") from None


def recurrent_module(item: Item, shape: tuple[int, ...]) -> nn.Module:
    nir = require_nir()
    node, name = item.w_rec, item.name
    if isinstance(node, nir.Scale):
        return Scale(_broadcast(node.scale, shape, f"recurrent weights of {name}"))
    module = stateless_module(Item(f"{name}.w_rec", node), shape)
    probe = module(torch.zeros(1, *shape))
    if tuple(probe.shape[1:]) != shape:
        raise ImportProblem(
            f"the recurrent weights of {name} map the layer's {shape} to {tuple(probe.shape[1:])}; they must keep "
            "its shape"
        )
    return module


@functools.lru_cache(maxsize=1)
def _plugins():
    from snnframe.plugins import load_plugins

    return load_plugins()


def neuron_module(item: Item, shape: tuple[int, ...], dt: float, surrogate: Any, plugins: Any = None) -> nn.Module:
    """The spiking layer of a neuron item: rebuilt from snnframe metadata, the built-in ``leaky``, or a NIRNeuron."""
    recurrent = recurrent_module(item, shape) if item.w_rec is not None else None
    try:
        d = from_nodes(item.node, item.threshold, dt)
    except ConventionError as exc:
        raise ImportProblem(f"node {item.name}: {exc}") from None
    plugins = plugins if plugins is not None else _plugins()
    restored = _restore(item, shape, dt, surrogate, recurrent, plugins)
    if restored is not None:
        return restored
    values = {}
    for key, value in d.arrays().items():
        values[key] = _broadcast(value, shape, f"node {item.name} {key}")
    simple = (
        recurrent is None
        and not d.synaptic
        and d.reset
        and all(isinstance(values[k], float) for k in values)
        and values["gain"] == 1.0
        and values["offset"] == 0.0
        and values["v_reset"] == 0.0
        and values["threshold"] > 0
    )
    if simple and "leaky" in plugins.registry("neurons"):
        try:
            leaky = plugins.registry("neurons").get("leaky")
            return leaky(
                beta=values["beta"], threshold=values["threshold"], reset_mechanism="zero", surrogate=surrogate
            )
        except Exception:  # a leaky that is not the built-in one: NIR's own form below
            pass
    return NIRNeuron(
        beta=values["beta"],
        threshold=values["threshold"],
        gain=values["gain"],
        offset=values["offset"],
        v_reset=values["v_reset"],
        alpha=values.get("alpha"),
        syn_gain=values.get("syn_gain", 1.0),
        reset=d.reset,
        recurrent=recurrent,
        surrogate=surrogate,
    )


def _restore(item: Item, shape, dt, surrogate, recurrent, plugins) -> nn.Module | None:
    """The neuron as snnframe trained it (``"snnframe"`` metadata), if that gives the node's fields; else ``None``."""
    from snnframe_nir.export import METADATA_KEY, describe_neuron

    text = (getattr(item.node, "metadata", None) or {}).get(METADATA_KEY)
    if not isinstance(text, str):
        return None
    try:
        spec = json.loads(text)
        kind, args, state = spec["kind"], dict(spec["args"]), dict(spec["state"])
        if kind == "nir":
            synaptic = args.pop("synaptic")
            params = {k: state[k] for k in ("beta", "threshold", "gain", "offset", "v_reset")}
            if synaptic:
                params.update(alpha=state["alpha"], syn_gain=state["syn_gain"])
            module = NIRNeuron(**params, **args, recurrent=recurrent, surrogate=surrogate)
            module_kind = None
        else:
            if recurrent is not None:
                return None
            factory = plugins.registry("neurons").get(kind)
            module = factory(**args, surrogate=surrogate)
            missing, unexpected = module.load_state_dict(
                {k: torch.tensor(v, dtype=torch.float32) for k, v in state.items()}, strict=False
            )
            if unexpected:
                return None
            module_kind = kind
        form = describe_neuron(module, module_kind, item.name)
        if form.problems:
            return None
        expected = to_nodes(form.dynamics, shape, dt)
    except Exception:  # metadata from another version, or a kind not installed here: read the fields
        return None
    found = [item.node] + ([item.threshold] if item.threshold is not None else [])
    if len(found) != len(expected) or not all(same_fields(a, b) for a, b in zip(expected, found)):
        warnings.warn(
            f"NIR node {item.name}: its snnframe metadata ({kind}) disagrees with its fields (edited after export?); "
            "the fields are used",
            stacklevel=2,
        )
        return None
    return module


def build_network(
    graph,
    input_shape: Sequence[int],
    num_classes: int | None = None,
    *,
    dt: float = DT,
    surrogate: Any = None,
    plugins: Any = None,
    source: str = "graph",
) -> NIRNetwork:
    """The snnframe network of a NIR graph, for ``[T, B, *input_shape]`` input; ``ImportProblem`` if unfit."""
    first, items, _ = chain(graph)
    shape = tuple(int(s) for s in input_shape)
    modules: list[nn.Module] = []
    names: list[str] = []
    declared = _shape_of(first, "input") or _shape_of(first, "output")
    if declared is not None and declared != shape:
        if len(declared) == 1 and declared[0] == int(np.prod(shape)):
            modules.append(nn.Flatten())  # a graph for flat input (an MLP) on image data
            names.append("(flatten the input)")
            shape = declared
        else:
            raise ImportProblem(
                f"the graph's input is {declared} per step, but the data gives {shape} (after the encoder)"
            )
    probe = torch.zeros(1, *shape)
    for item in items:
        if _is_neuron(item.node):
            module = neuron_module(item, shape, dt, surrogate, plugins)
        else:
            module = stateless_module(item, shape)
            with torch.no_grad():
                try:
                    probe = module(probe)
                except Exception as exc:
                    raise ImportProblem(f"node {item.name} fails on its input of shape {shape}: {exc}") from None
            shape = tuple(probe.shape[1:])
        modules.append(module)
        names.append(item.name)
    if not modules or not _spiking(modules[-1]):
        raise ImportProblem("the graph does not end with a spiking neuron; snnframe networks output spikes")
    if num_classes is not None and shape != (num_classes,):
        raise ImportProblem(f"the graph outputs {shape} per step, but the data set has {num_classes} classes")
    return NIRNetwork(modules, names, source)


def _spiking(module: nn.Module) -> bool:
    from snnframe.engine import SpikingNeuron

    return isinstance(module, SpikingNeuron)


def nir_architecture(
    *,
    input_shape: Sequence[int],
    num_classes: int,
    neuron: Any,
    path: str = "model.nir",
    dt: float = DT,
) -> NIRNetwork:
    """The network a NIR file describes (``path``, read relative to the current directory, like ``data.root``).

    ``dt`` is the time step the file's time constants were written for: 1e-4 (snnTorch, SpikingJelly,
    ``snnframe export-nir``) or 1e-3 (Norse). The recipe's ``[model.neuron.surrogate]`` table, if
    any, is the surrogate gradient of every spiking layer (for fine-tuning); the other
    ``[model.neuron]`` keys are not used (the neurons come from the file).
    """
    if not dt > 0:
        raise ParameterError("dt", f"must be a positive number of seconds, got {dt}")
    try:
        nir = require_nir()
    except ImportError as exc:
        raise ValueError(str(exc)) from None
    file = Path(path)
    if not file.is_file():
        where = "" if file.is_absolute() else f" (relative to the current directory, {Path.cwd()})"
        raise ParameterError(
            "path", f"{path} is not a file{where}; write one with snnframe export-nir RUN_DIR, or give its path"
        )
    try:
        graph = nir.read(str(file), type_check=False)
    except Exception as exc:
        raise ParameterError("path", f"{path} is not a readable NIR file ({type(exc).__name__}: {exc})") from None
    default = getattr(neuron, "default", None)
    surrogate = getattr(default, "kwargs", {}).get("surrogate") if default is not None else None
    try:
        return build_network(graph, input_shape, num_classes, dt=dt, surrogate=surrogate, source=str(path))
    except ImportProblem as exc:
        raise ParameterError("path", f"{path}: {exc}") from None
