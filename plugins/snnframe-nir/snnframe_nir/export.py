"""snnframe network -> ``nir.NIRGraph``: what ``snnframe export-nir`` runs.

The network is walked module by module (a ``SpikingSequential``: ``layers``, ``csnn``, ``mlp``,
``nir``). Stateless layers map to NIR nodes one to one, neurons to the NIR neuron with the same
dynamics under the convention of :mod:`snnframe_nir.convention` (``dt = 1e-4``). Built-in
neurons are recognised through the plugin registry (the class registered as ``leaky`` and so
on) and read through their documented attributes (``beta``, ``alpha``, ``threshold``,
``reset_mechanism``, ``recurrent``, ``V``; ``plif``'s ``w``); no built-in module is imported.

Whatever NIR cannot express exactly is a :class:`Problem`; :func:`export_model` raises one
:class:`NIRExportError` listing them all, each with the layer and what would work. With
``approximate=True`` the problems that have a nearest NIR node become warnings instead.
Node metadata records how to rebuild each exactly exported neuron (``"snnframe"``: its kind,
options and scalar state), so that snnframe's own import reproduces the run bit for bit.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from snnframe.engine import SpikingNeuron
from snnframe.errors import SnnframeError
from snnframe_nir.convention import DT, ConventionError, Dynamics, to_nodes
from snnframe_nir.neurons import NIRNeuron, Scale

METADATA_KEY = "snnframe"  # node metadata: JSON {"kind", "args", "state"} to rebuild the neuron exactly
DEFAULT_FILE = "model.nir"


class NIRExportError(SnnframeError):
    """The network cannot be written as NIR (the message lists every layer, and what would work)."""

    exit_code = 2


@dataclasses.dataclass
class Problem:
    what: str  # "max-pooling: NIR has no max-pool node"
    where: str  # 'model.spec token 2 "MP2" (module 1)', a Place
    advice: str  # "train with AP2 instead of MP2"
    approximation: str | None = None  # what --approximate writes instead; None: nothing comes near


@dataclasses.dataclass
class Exported:
    graph: Any  # nir.NIRGraph
    warnings: list[str]
    layers: list[str]  # one line per node, for the command's report

    def write(self, path: str | Path) -> Path:
        """``nir.write`` to ``path`` atomically (a failed write leaves no partial file)."""
        import nir

        from snnframe.io import atomic_write

        buffer = io.BytesIO()
        nir.write(buffer, self.graph)
        atomic_write(path, buffer.getvalue())
        return Path(path)


# ---- naming the layers in messages ---------------------------------------------------------


class Place(str):
    """How a message names one layer (the string), and how to name several together ("spiking layers 1 and 2")."""

    def __new__(cls, text: str, unit: str = "", number: str = "", context: str = ""):
        place = super().__new__(cls, text)
        place.unit, place.number, place.context = unit, number, context
        return place


def _places(places: list[str]) -> str:
    keys = {(getattr(p, "unit", ""), getattr(p, "context", "")) for p in places}
    if len(places) > 1 and len(keys) == 1 and next(iter(keys))[0]:
        unit, context = next(iter(keys))
        return f"{unit}s {_join([p.number for p in places])}{context}"
    return _join(places)


class Names:
    """How messages name a module: by its token of the ``layers`` notation where the model keeps them."""

    def __init__(self, model: nn.Module, tables: dict[int, str] | None = None):
        self.tokens: dict[int, tuple[str, str, str, str]] = {}  # module index -> (token, unit, number, context)
        self.stage_of: dict[int, int] = {}  # neuron module index -> stage index
        self.spec = getattr(model, "spec", None)
        self.tables = tables or {}
        specs, stages = getattr(model, "layer_specs", None), getattr(model, "stages", None)
        if specs is None or stages is None:
            return
        flat = [i for stage in stages for i in stage[:-1]]
        for n, (index, layer) in enumerate(zip(flat, specs), start=1):
            where = getattr(layer, "where", None)
            token = layer.token()
            if where is None:  # built in code (csnn): the notation it stands for
                self.tokens[index] = (token, "layer", f'{n} "{token}"', f" of {self.spec}")
            elif getattr(where, "start", -1) < 0:  # the table form
                self.tokens[index] = (token, "", f'model.layers[{where.index - 1}] ("{token}")', "")
            else:
                self.tokens[index] = (token, "model.spec token", f'{where.index} "{where.text}"', "")
        for s, stage in enumerate(stages):
            self.stage_of[stage[-1]] = s
        self.stages = stages

    def module(self, index: int, module: nn.Module) -> Place:
        if index in self.tokens:
            _, unit, number, context = self.tokens[index]
            return Place(f"{unit} {number}{context} (module {index})".lstrip(), unit, number, context)
        kind = type(module).__name__
        return Place(f"module {index} ({kind})", "module", str(index), f" ({kind})")

    def table_form(self, index: int) -> bool:
        return index in self.tokens and not self.tokens[index][1]

    def token(self, index: int) -> str | None:
        return self.tokens.get(index, (None, None))[0]

    def neuron(self, index: int, number: int, kind: str) -> Place:
        after = ""
        stage = self.stage_of.get(index)
        if stage is not None and self.stages[stage][0] in self.tokens:
            after = f', after "{self.tokens[self.stages[stage][0]][0]}"'
        table = f", [{self.tables[number]}]" if number in self.tables else ""
        text = f'spiking layer {number} (module {index}, neuron "{kind}"{after}{table})'
        return Place(text, "spiking layer", str(number), f' (neuron "{kind}"{table})')


# ---- neurons ---------------------------------------------------------------------------------


@dataclasses.dataclass
class NeuronForm:
    """A neuron as NIR sees it: its dynamics, recurrent weights and how to rebuild it in snnframe."""

    dynamics: Dynamics
    # None, ("linear", W, b|None), ("conv", W, b|None, padding), ("scale", V); "bias_from_t0": the bias of
    # the recurrent weights enters at t = 0 too (the built-ins, snnTorch), so it moves to the layer before
    recurrent: Any = None
    bias_from_t0: bool = True
    restore: dict | None = None  # {"kind", "args", "state"}: metadata for an exact re-import
    problems: list[Problem] = dataclasses.field(default_factory=list)


def _value(tensor) -> float:
    return float(torch.as_tensor(tensor).detach().double().item())


def _learnt(module: nn.Module, name: str) -> bool:
    return isinstance(getattr(module, name, None), nn.Parameter)


def _scalar_state(module: nn.Module) -> dict[str, float]:
    return {k: _value(v) for k, v in module.state_dict().items() if v.dim() == 0}


def neuron_kinds(plugins) -> dict[type, str]:
    """Neuron class -> registered name, for every registered neuron factory that is a class."""
    kinds: dict[type, str] = {}
    if plugins is None:
        return kinds
    registry = plugins.registry("neurons")
    for entry in registry:
        try:
            factory = registry.get(entry.name)
        except Exception:  # a plugin whose module fails to import: its neurons are not in this model
            continue
        if isinstance(factory, type):
            kinds.setdefault(factory, entry.name)
    return kinds


def _reset_problem(kind: str, where: str, reset: str, advice: str) -> Problem:
    if reset == "subtract":
        what = (
            "subtractive reset: NIR's neurons reset the membrane to v_reset (subtracting the threshold is not "
            "expressible)"
        )
        approx = "a reset to 0 within the step instead of subtracting the threshold"
    else:
        what = (
            f"delayed zero reset: snnframe's \"{kind}\" holds the whole step after a spike at 0 (snnTorch's "
            "reset_delay=True, input included); NIR's neurons reset within the step and integrate the next input"
        )
        approx = "NIR's in-step reset instead of holding the step after a spike at 0"
    return Problem(what, where, advice, approx)


def describe_neuron(module: nn.Module, kind: str | None, where: str) -> NeuronForm:
    """The :class:`NeuronForm` of one neuron module; problems for what NIR cannot hold."""
    if isinstance(module, NIRNeuron):
        return _nir_neuron(module)
    if kind == "leaky":
        reset = module.reset_mechanism
        d = Dynamics(np.float64(_value(module.beta.clamp(0, 1))), np.float64(_value(module.threshold)))
        d.reset = reset != "none"
        form = NeuronForm(d, restore=_restore("leaky", module, ["beta", "threshold"]))
        if reset == "subtract":
            form.problems.append(_reset_problem(kind, where, reset, 'train with reset_mechanism = "zero"'))
        return form
    if kind == "synaptic":
        reset = module.reset_mechanism
        d = Dynamics(
            np.float64(_value(module.beta.clamp(0, 1))),
            np.float64(_value(module.threshold)),
            alpha=np.float64(_value(module.alpha.clamp(0, 1))),
            reset=reset != "none",
        )
        form = NeuronForm(d, restore=_restore("synaptic", module, ["alpha", "beta", "threshold"]))
        if reset != "none":
            advice = (
                "train with kind = \"nir_synaptic\" (snnframe-nir's synaptic neuron with NIR's reset; "
                "same parameters, no reset_mechanism)"
            )
            form.problems.append(_reset_problem(kind, where, reset, advice))
        return form
    if kind in ("rleaky", "rsynaptic"):
        return _builtin_recurrent(module, kind, where)
    if kind == "plif":
        k = 1.0 / (1.0 + math.exp(-_value(module.w)))  # sigmoid(w) = 1 / tau
        d = Dynamics(np.float64(1.0 - k), np.float64(float(module.threshold)), gain=k if module.decay_input else 1.0)
        args = {
            "threshold": float(module.threshold),
            "reset_mechanism": module.reset_mechanism,
            "decay_input": bool(module.decay_input),
            "detach_reset": bool(module.detach_reset),
        }
        form = NeuronForm(d, restore={"kind": "plif", "args": args, "state": _scalar_state(module)})
        if module.reset_mechanism != "zero":
            form.problems.append(
                _reset_problem(kind, where, "subtract", 'train with reset_mechanism = "zero" (plif\'s default)')
            )
        return form
    if kind == "alif":
        d = Dynamics(np.float64(_value(module.beta.clamp(0, 1))), np.float64(_value(module.threshold)))
        form = NeuronForm(d)
        form.problems.append(
            Problem(
                "adaptive threshold: NIR has no neuron whose threshold adapts",
                where,
                'train with kind = "leaky" and reset_mechanism = "zero"',
                f"a LIF without the adaptation (beta_a = {module.beta_a:g} dropped)"
                + (", reset to 0 within the step" if module.reset_mechanism != "zero" else ""),
            )
        )
        return form
    name = f'"{kind}"' if kind else type(module).__name__
    hint = (
        'train with kind = "nir_synaptic" (a NIR CubaLIF)'
        if kind == "alpha"
        else 'train with kind = "leaky" and reset_mechanism = "zero" (or another neuron NIR has: see docs/nir.md)'
    )
    return NeuronForm(
        Dynamics(np.float64(0.0), np.float64(1.0)),
        problems=[Problem(f"neuron {name}: NIR has no node for its dynamics", where, hint, None)],
    )


def _restore(kind: str, module: nn.Module, learnable: Sequence[str]) -> dict:
    args: dict[str, Any] = {"reset_mechanism": module.reset_mechanism}
    args.update({f"learn_{name}": _learnt(module, name) for name in learnable if name != "threshold"})
    args["learn_threshold"] = _learnt(module, "threshold")
    return {"kind": kind, "args": args, "state": _scalar_state(module)}


def _recurrent_of(module: nn.Module) -> Any:
    """The recurrent weights of a neuron module, in :class:`NeuronForm`'s notation."""
    rec = getattr(module, "recurrent", None)
    if rec is None and hasattr(module, "V"):
        return ("scale", _value(module.V))
    if rec is None:
        return None
    if isinstance(rec, Scale):
        return ("scale", rec.scale.detach().double().numpy())
    bias = None if rec.bias is None else rec.bias.detach().double().numpy()
    if isinstance(rec, nn.Linear):
        return ("linear", rec.weight.detach().double().numpy(), bias)
    if isinstance(rec, nn.Conv2d):
        if rec.stride != (1, 1) or rec.dilation != (1, 1) or rec.groups != 1 or rec.padding_mode != "zeros":
            raise ConventionError("the recurrent convolution has stride, dilation, groups or a padding mode NIR lacks")
        return ("conv", rec.weight.detach().double().numpy(), bias, tuple(rec.padding))
    raise ConventionError(f"recurrent weights of type {type(rec).__name__} have no NIR node")


def _nir_neuron(module: NIRNeuron) -> NeuronForm:
    p = {name: value.detach().double().numpy() for name, value in module.params().items()}
    if "beta" in p:
        p["beta"] = np.clip(p["beta"], 0, 1)
    if "alpha" in p:
        p["alpha"] = np.clip(p["alpha"], 0, 1)
    d = Dynamics(
        p["beta"],
        p["threshold"],
        p["gain"],
        p["offset"],
        p["v_reset"],
        alpha=p.get("alpha"),
        syn_gain=p.get("syn_gain", 1.0),
        reset=module.reset,
    )
    restore = None
    if all(value.ndim == 0 for value in p.values()):
        args = {
            "reset": module.reset,
            "learn_alpha": _learnt(module, "alpha"),
            "learn_beta": _learnt(module, "beta"),
            "learn_threshold": _learnt(module, "threshold"),
            "synaptic": module.synaptic,
        }
        restore = {"kind": "nir", "args": args, "state": _scalar_state(module)}
    # NIRNeuron applies its recurrent weights from t = 1, as NIR graphs do: a bias stays where it is
    return NeuronForm(d, recurrent=_recurrent_of(module), restore=restore, bias_from_t0=False)


def _builtin_recurrent(module: nn.Module, kind: str, where: str) -> NeuronForm:
    reset = module.reset_mechanism
    d = Dynamics(
        np.float64(_value(module.beta.clamp(0, 1))),
        np.float64(_value(module.threshold)),
        alpha=np.float64(_value(module.alpha.clamp(0, 1))) if kind == "rsynaptic" else None,
        reset=reset != "none",
    )
    form = NeuronForm(d, recurrent=_recurrent_of(module))  # no restore: the recurrent bias moves (see below)
    if reset != "none":
        advice = (
            f"train with kind = \"nir_{kind}\" (snnframe-nir's {kind} with NIR's reset and bias-free recurrent "
            "weights; same parameters, no reset_mechanism)"
        )
        form.problems.append(_reset_problem(kind, where, reset, advice))
    return form


# ---- the graph -------------------------------------------------------------------------------


def _pair(value) -> np.ndarray:
    array = np.asarray(value, dtype=np.int64).reshape(-1)
    return np.repeat(array, 2) if array.size == 1 else array


def _f32(array) -> np.ndarray:
    """A float32 copy (a graph shares no memory with the model it was written from)."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.array(array, dtype=np.float32, copy=True, order="C")


class _Builder:
    def __init__(self, dt: float):
        self.dt = dt
        self.nodes: list[tuple[str, Any]] = []  # (type name, node), in order
        self.problems: list[Problem] = []
        self.notes: list[str] = []

    def add(self, node, label: str | None = None) -> None:
        self.nodes.append((label or type(node).__name__.lower(), node))

    def fold(self, bias: np.ndarray) -> bool:
        """Add ``bias`` (per feature or channel) to the nearest Affine/Conv2d before, through pools."""
        import nir

        factor = 1.0
        for _, node in reversed(self.nodes):
            if isinstance(node, nir.SumPool2d):
                factor *= float(np.prod(_pair(node.kernel_size)))
            elif isinstance(node, nir.AvgPool2d):
                continue
            elif isinstance(node, (nir.Affine, nir.Conv2d)):
                node.bias = _f32(np.asarray(node.bias, dtype=np.float64) + bias / factor)
                return True
            else:
                return False
        return False


def export_model(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    plugins: Any = None,
    approximate: bool = False,
    dt: float = DT,
    tables: dict[int, str] | None = None,
    metadata: dict[str, Any] | None = None,
    name: str = "the network",
) -> Exported:
    """Convert a trained ``SpikingSequential`` for ``[T, B, *input_shape]`` input to a ``nir.NIRGraph``.

    ``plugins`` (a ``snnframe.plugins.Plugins``; by default the installed ones) tells which
    registered neuron each module is. ``tables`` maps spiking layer numbers to the recipe table
    that built them, for the messages. A network NIR cannot express exactly is a
    :class:`NIRExportError` listing every problem; ``approximate=True`` writes the nearest NIR
    node where there is one and lists what changes in :attr:`Exported.warnings`.
    """
    import nir

    if plugins is None:
        from snnframe.plugins import load_plugins

        plugins = load_plugins()
    if not isinstance(model, nn.Sequential):
        raise NIRExportError(
            f"{name} is a {type(model).__name__}, not a layer stack (SpikingSequential); export-nir writes the "
            "networks of the layers, csnn, mlp and nir architectures"
        )
    kinds = neuron_kinds(plugins)
    names = Names(model, tables)
    neuron_indices = set(getattr(model, "neuron_indices", ()))
    b = _Builder(dt)
    shape = tuple(int(s) for s in input_shape)
    probe = torch.zeros(1, *shape)
    spiking = 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for index, module in enumerate(model):
                if isinstance(module, SpikingNeuron) or index in neuron_indices:
                    spiking += 1
                    _neuron(b, module, index, spiking, kinds.get(type(module)), shape, names)
                    continue
                _stateless(b, module, index, shape, names)
                try:
                    probe = module(probe)
                except Exception as exc:
                    raise NIRExportError(f"{names.module(index, module)} fails on a {shape} input: {exc}") from None
                shape = tuple(probe.shape[1:])
    finally:
        model.train(was_training)
    warnings = []
    if b.problems:
        hard = [p for p in b.problems if not approximate or p.approximation is None]
        if hard:
            raise NIRExportError(_report(name, hard, approximate))
        warnings = [f"{p.where}: exported as {p.approximation} ({p.what.split(':')[0]})" for p in b.problems]
    if not b.nodes or not _is_neuron_node(b.nodes[-1][1]):
        raise NIRExportError(f"{name} does not end with a spiking layer; NIR graphs of snnframe output spikes")
    width = max(2, len(str(len(b.nodes) - 1)))
    keyed = {"input": nir.Input(input_type={"input": np.array(input_shape, dtype=np.int64)})}
    order = ["input"]
    lines = [f"input {tuple(input_shape)}"]
    for k, (label, node) in enumerate(b.nodes):
        key = f"l{k:0{width}d}_{label}"
        keyed[key] = node
        order.append(key)
        lines.append(f"{key}: {_describe(node)}")
    keyed["output"] = nir.Output(output_type={"output": np.array(shape, dtype=np.int64)})
    order.append("output")
    lines.append(f"output {shape}")
    graph_meta = {"snnframe.dt": float(dt)}
    graph_meta.update(metadata or {})
    try:
        graph = nir.NIRGraph(nodes=keyed, edges=list(zip(order[:-1], order[1:])), metadata=graph_meta)
    except Exception as exc:  # our own shapes disagree with NIR's type inference: a bug, said plainly
        raise NIRExportError(f"NIR's type check rejected the graph written for {name}: {exc}") from None
    return Exported(graph, warnings + b.notes, lines)


def _is_neuron_node(node) -> bool:
    import nir

    return isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF, nir.Threshold, nir.NIRGraph))


def _report(name: str, problems: list[Problem], approximate: bool) -> str:
    groups: dict[tuple[str, str], list[str]] = {}
    for p in problems:
        groups.setdefault((p.what, p.advice), []).append(p.where)
    items = []
    for (what, advice), wheres in groups.items():
        items.append(f"{what}, in {_places(wheres)}: {advice}")
    can = [p for p in problems if p.approximation is not None]
    tail = "" if approximate or len(can) < len(problems) else " (or pass --approximate to export the nearest NIR nodes)"
    if len(items) == 1:
        return f"{name} cannot be exported to NIR: {items[0]}{tail}"
    listed = "\n".join(f"  - {item}" for item in items)
    return f"{name} cannot be exported to NIR ({len(items)} problems){tail}:\n{listed}"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _describe(node) -> str:
    import nir

    if isinstance(node, nir.NIRGraph):
        inner = [k for k in node.nodes if k not in ("input", "output")]
        return "recurrent cell {" + ", ".join(f"{k}: {type(node.nodes[k]).__name__}" for k in inner) + "}"
    kind = type(node).__name__
    if isinstance(node, nir.Conv2d):
        w = np.asarray(node.weight)
        return f"Conv2d {w.shape[1]}->{w.shape[0]}, {w.shape[2]}x{w.shape[3]}"
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight)
        return f"{kind} {w.shape[1]}->{w.shape[0]}"
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        return f"{kind} {'x'.join(map(str, _pair(node.kernel_size)))}"
    if isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF, nir.LI, nir.CubaLI, nir.I, nir.Threshold)):
        field = "threshold" if isinstance(node, nir.Threshold) else ("r" if hasattr(node, "r") else "v_threshold")
        return f"{kind} {tuple(np.shape(getattr(node, field)))}"
    return kind


def _stateless(b: _Builder, module: nn.Module, index: int, shape: tuple[int, ...], names: Names) -> None:
    import nir

    where = names.module(index, module)
    if isinstance(module, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity)):
        return  # the identity at inference
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros":
            what = f"padding mode {module.padding_mode!r}: NIR pads with zeros"
            b.problems.append(Problem(what, where, "pad with zeros"))
            return
        padding = module.padding if isinstance(module.padding, str) else _pair(module.padding)
        bias = np.zeros(module.out_channels) if module.bias is None else module.bias.detach().double().numpy()
        b.add(
            nir.Conv2d(
                input_shape=tuple(int(s) for s in shape[1:]),
                weight=_f32(module.weight.detach()),
                stride=_pair(module.stride),
                padding=padding,
                dilation=_pair(module.dilation),
                groups=int(module.groups),
                bias=_f32(bias),
            )
        )
        return
    if isinstance(module, nn.Linear):
        weight = _f32(module.weight.detach())
        if module.bias is None:
            b.add(nir.Linear(weight=weight))
        else:
            b.add(nir.Affine(weight=weight, bias=_f32(module.bias.detach())))
        return
    if isinstance(module, nn.Flatten):
        start, end = module.start_dim, module.end_dim
        if start == 0 or end == 0:
            b.problems.append(Problem("a Flatten over the batch dimension", where, "flatten from dimension 1"))
            return
        b.add(
            nir.Flatten(
                input_type={"input": np.array(shape, dtype=np.int64)},
                start_dim=start - 1 if start > 0 else start,
                end_dim=end - 1 if end > 0 else end,
            )
        )
        return
    if isinstance(module, nn.MaxPool2d):
        k = int(_pair(module.kernel_size)[0])
        token = names.token(index)
        if token is not None and names.table_form(index):
            advice = 'train with type = "avgpool" instead of "maxpool" (or "sumpool")'
        else:
            advice = f"train with AP{k} instead of MP{k} (average pooling; or SP{k}, sum pooling)"
        b.problems.append(Problem("max-pooling: NIR has no max-pool node", where, advice))
        return
    if isinstance(module, nn.AvgPool2d):
        if _pair(module.padding).any() or module.ceil_mode:
            b.problems.append(
                Problem(
                    "average pooling with padding or ceil_mode: NIR's pools do not say how the border counts",
                    where,
                    "pool without padding",
                )
            )
            return
        fields = dict(
            kernel_size=_pair(module.kernel_size),
            stride=_pair(module.stride if module.stride is not None else module.kernel_size),
            padding=np.zeros(2, dtype=np.int64),
        )
        if module.divisor_override is None:
            b.add(nir.AvgPool2d(**fields))
        elif module.divisor_override == 1:
            b.add(nir.SumPool2d(**fields))
        else:
            b.problems.append(Problem("a pool dividing by divisor_override", where, "use AP or SP pooling"))
        return
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if module.running_mean is None or module.running_var is None:
            b.problems.append(Problem("batch norm without running statistics", where, "keep track_running_stats"))
            return
        scale = 1 / np.sqrt(module.running_var.double().numpy() + module.eps)
        shift = -module.running_mean.double().numpy() * scale
        if module.affine:
            gamma, beta = module.weight.detach().double().numpy(), module.bias.detach().double().numpy()
            scale, shift = scale * gamma, shift * gamma + beta
        if not _fold_batchnorm(b, scale, shift):
            b.problems.append(
                Problem(
                    "batch norm that does not follow a convolution or FC layer (through pooling only)",
                    where,
                    "put BN right after the convolution or FC layer",
                )
            )
        else:
            b.notes.append(f"{where}: folded into the layer before (weights and bias scaled per channel)")
        return
    b.problems.append(Problem(f"{type(module).__name__}: NIR has no node for it", where, "leave the layer out"))


def _fold_batchnorm(b: _Builder, scale: np.ndarray, shift: np.ndarray) -> bool:
    import nir

    factor = 1.0
    for _, node in reversed(b.nodes):
        if isinstance(node, nir.SumPool2d):
            factor *= float(np.prod(_pair(node.kernel_size)))
        elif isinstance(node, nir.AvgPool2d):
            continue
        elif isinstance(node, (nir.Affine, nir.Conv2d)):
            w = np.asarray(node.weight, dtype=np.float64)
            node.weight = _f32(w * scale.reshape(-1, *([1] * (w.ndim - 1))))
            node.bias = _f32(np.asarray(node.bias, dtype=np.float64) * scale + shift / factor)
            return True
        else:
            return False
    return False


def _neuron(
    b: _Builder, module: nn.Module, index: int, number: int, kind: str | None, shape: tuple[int, ...], names: Names
) -> None:
    import nir

    where = names.neuron(index, number, kind or type(module).__name__)
    try:
        form = describe_neuron(module, kind, where)
    except ConventionError as exc:
        b.problems.append(Problem(str(exc), where, "change the neuron's recurrent weights"))
        return
    b.problems += form.problems
    approximated = bool(form.problems)
    meta: dict[str, Any] = {"snnframe.layer": where}
    if form.restore is not None and not approximated:
        meta[METADATA_KEY] = json.dumps(form.restore, sort_keys=True)
    if approximated:
        meta["snnframe.approximated"] = "; ".join(p.approximation or p.what for p in form.problems)
    try:
        neuron_nodes = to_nodes(form.dynamics, shape, b.dt, meta)
    except ConventionError as exc:
        b.problems.append(Problem(str(exc), where, "train with beta and alpha below 1"))
        return
    if form.recurrent is None:
        for node in neuron_nodes:
            b.add(node)
        return
    w_rec = _recurrent_node(b, form.recurrent, shape, where, form.bias_from_t0)
    if w_rec is None:
        return
    inner = {"input": nir.Input(input_type={"input": np.array(shape, dtype=np.int64)})}
    keys = [type(node).__name__.lower() for node in neuron_nodes]  # "lif", "cubalif", or "li", "threshold"
    for key, node in zip(keys, neuron_nodes):
        inner[key] = node
    inner["w_rec"] = w_rec
    inner["output"] = nir.Output(output_type={"output": np.array(shape, dtype=np.int64)})
    edges = [("input", keys[0]), *zip(keys[:-1], keys[1:]), (keys[-1], "w_rec"), ("w_rec", keys[0])]
    edges.append((keys[-1], "output"))
    cell = nir.NIRGraph(nodes=inner, edges=edges, metadata={"snnframe.layer": where})
    b.add(cell, f"{keys[0]}_rnn")


def _recurrent_node(b: _Builder, recurrent: Any, shape: tuple[int, ...], where: str, bias_from_t0: bool = True):
    """The NIR node of recurrent weights; a bias that enters from t = 0 is folded into the layer before."""
    import nir

    kind = recurrent[0]
    if kind == "scale":
        value = np.asarray(recurrent[1], dtype=np.float64)
        if len(shape) == 1:
            return nir.Linear(weight=_f32(np.diag(np.broadcast_to(value, shape))))
        return nir.Scale(scale=_f32(np.broadcast_to(value, shape)))
    weight, bias = recurrent[1], recurrent[2]
    if bias is not None and not bias_from_t0:  # NIR's own semantics: the recurrent edge is empty at t = 0
        if kind == "linear":
            return nir.Affine(weight=_f32(weight), bias=_f32(bias))
        return _recurrent_conv(weight, bias, shape, recurrent[3])
    if bias is not None and np.any(bias != 0):
        if not b.fold(bias):
            b.problems.append(
                Problem(
                    "a recurrent bias with no convolution or FC layer before the neuron to take it",
                    where,
                    'start the stage with a weight layer, or train with kind = "nir_rleaky" / "nir_rsynaptic"',
                )
            )
            return None
        b.notes.append(
            f"{where}: the recurrent bias was added to the bias of the layer before (the same input at every step)"
        )
    if kind == "linear":
        return nir.Linear(weight=_f32(weight))
    return _recurrent_conv(weight, None, shape, recurrent[3])


def _recurrent_conv(weight, bias, shape: tuple[int, ...], padding):
    import nir

    return nir.Conv2d(
        input_shape=tuple(int(s) for s in shape[1:]),
        weight=_f32(weight),
        stride=np.array([1, 1]),
        padding=_pair(padding),
        dilation=np.array([1, 1]),
        groups=1,
        bias=_f32(np.zeros(weight.shape[0]) if bias is None else bias),
    )


# ---- runs ------------------------------------------------------------------------------------


def export_run(
    run_dir: str | Path,
    output: str | Path | None = None,
    *,
    approximate: bool = False,
    overrides: Sequence[str] = (),
    plugins: Any = None,
    overwrite: bool = False,
) -> tuple[Path, Exported]:
    """Load the run with ``snnframe.load_run``, convert its model and write ``output`` (``RUN_DIR/model.nir``).

    An existing file is replaced only with ``overwrite`` (a ``UsageError`` names it otherwise, before
    anything is loaded).
    """
    import snnframe
    from snnframe.errors import UsageError
    from snnframe.plugins import load_plugins

    target = Path(output) if output is not None else Path(run_dir) / DEFAULT_FILE
    if target.exists() and not overwrite:
        raise UsageError(f"{target} exists; pass --force to replace it, or -o another file")

    if plugins is None:
        plugins = load_plugins()
        if "nir" not in plugins.registry("architectures"):  # run from a source checkout, not installed
            import snnframe_nir

            plugins = load_plugins(extra=[("nir", snnframe_nir)])
    run = snnframe.load_run(run_dir, list(overrides), plugins=plugins)
    recipe = run.recipe
    tables: dict[int, str] = {}
    model_table = recipe.table("model")
    if model_table is not None and model_table.kind != "nir":
        neurons = getattr(run.model, "neuron_indices", ())
        for number in range(1, len(neurons) + 1):
            path = f"model.neurons.{number}"
            tables[number] = path if recipe.table(path) is not None else "model.neuron"
    meta = {"snnframe.run": Path(run_dir).resolve().name, "snnframe.epoch": int(run.epoch)}
    spec = getattr(run.model, "spec", None)
    if isinstance(spec, str):
        meta["snnframe.spec"] = spec
    exported = export_model(
        run.model,
        tuple(run.encoder.input_shape(run.info)),
        plugins=plugins,
        approximate=approximate,
        tables=tables,
        metadata=meta,
        name=str(run_dir),
    )
    return exported.write(target), exported
