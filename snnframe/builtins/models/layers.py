"""``layers``: any feed-forward stack of the seed's notation, ``12C5-MP2-64C5-MP2-FC10``.

Tokens, separated by ``-`` (letters in either case):

==================  ============================================================================
``{c}C{k}``         convolution, ``c`` filters of ``k x k``, stride 1, no padding; suffixes
                    ``p{n}`` (padding) and ``s{n}`` (stride): ``32C3p1``, ``64C3p1s2``
``MP{k}``           max-pool ``k x k`` (stride ``k``)
``AP{k}``           average pool ``k x k`` (``nn.AvgPool2d``)
``SP{k}``           sum pool ``k x k`` (:class:`SumPool2d`: ``nn.AvgPool2d`` without the division)
``FC{m}``           fully connected to ``m`` outputs; ``{n}FC{m}`` also checks that its input
                    has ``n`` features (the seed writes ``1024FC10``); ``FC`` alone, last only:
                    as many outputs as the data has classes
``BN``              batch norm (``BatchNorm2d`` after a convolution, ``BatchNorm1d`` after an FC)
``DO{p}``           dropout with probability ``p`` (``DO0.2``)
==================  ============================================================================

A *stage* is a weight layer (a convolution or an FC) with the pooling, batch-norm and dropout
tokens that follow it; a spiking neuron ends every stage, so ``12C5-MP2-64C5-MP2-FC10`` is
conv, max-pool, neuron, conv, max-pool, neuron, flatten, linear, neuron: the seed's CSNN. The
flatten before the first FC is implied. The neurons come from the ``neuron`` factory, one call
per stage with the shape of the stage's output (``neuron(shape=(12, 12, 12))``), so per-layer
neuron tables and recurrent neurons work.

The same network as a list of tables (``[[model.layers]]``), which can also say what a token
cannot (``bias = false``, a pool's ``stride``)::

    [[model.layers]]
    type = "conv"      # channels, kernel, padding = 0, stride = 1, bias = true
    channels = 12
    kernel = 5
    [[model.layers]]
    type = "maxpool"   # or "avgpool", "sumpool": kernel, stride = kernel
    kernel = 2
    [[model.layers]]
    type = "fc"        # size (left out: the number of classes; last FC only), features, bias = true
    [[model.layers]]
    type = "batchnorm"
    [[model.layers]]
    type = "dropout"   # p
    p = 0.2

The built network is a :class:`LayerNetwork` (a ``SpikingSequential``): the engine's time
folding, static-input hoisting, compact saves and event-driven first layer apply as for
``csnn``. It keeps what it was built from: ``net.layer_specs`` (the parsed layers, one
:class:`Conv`/:class:`Pool`/:class:`FC`/:class:`BatchNorm`/:class:`Dropout` each, with their
module indices) and ``net.spec`` (the notation with every size filled in).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from snnframe.engine.sequential import SpikingSequential
from snnframe.errors import ParameterError, did_you_mean

TOKENS = "{c}C{k} (p{n}, s{n}), MP{k}, AP{k}, SP{k}, FC{m}, {n}FC{m}, FC, BN or DO{p}"


class SumPool2d(nn.AvgPool2d):
    """Sum pooling: ``nn.AvgPool2d`` with ``divisor_override=1`` (the window's sum, exactly)."""

    def __init__(self, kernel_size: int, stride: int | None = None):
        super().__init__(kernel_size, stride, divisor_override=1)


# ---- the parsed layers ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Where:
    """Where a layer was written: token ``index`` (from 1) of the spec at ``start``, or a table."""

    index: int
    text: str
    start: int = -1  # character offset in the spec string; -1: the table form

    @property
    def table(self) -> bool:
        return self.start < 0


@dataclasses.dataclass(frozen=True)
class Conv:
    channels: int
    kernel: int
    padding: int = 0
    stride: int = 1
    bias: bool = True
    where: Where | None = dataclasses.field(default=None, compare=False, repr=False)

    def token(self) -> str:
        suffix = (f"p{self.padding}" if self.padding else "") + (f"s{self.stride}" if self.stride != 1 else "")
        return f"{self.channels}C{self.kernel}{suffix}"


@dataclasses.dataclass(frozen=True)
class Pool:
    mode: str  # "max", "avg", "sum"
    kernel: int
    stride: int | None = None  # None: the kernel size
    where: Where | None = dataclasses.field(default=None, compare=False, repr=False)

    def token(self) -> str:
        return f"{self.mode[0].upper()}P{self.kernel}"


@dataclasses.dataclass(frozen=True)
class FC:
    size: int | None = None  # None: the number of classes (last FC only)
    features: int | None = None  # the input size it was written for (checked)
    bias: bool = True
    where: Where | None = dataclasses.field(default=None, compare=False, repr=False)

    def token(self) -> str:
        return f"{self.features or ''}FC{self.size or ''}"


@dataclasses.dataclass(frozen=True)
class BatchNorm:
    where: Where | None = dataclasses.field(default=None, compare=False, repr=False)

    def token(self) -> str:
        return "BN"


@dataclasses.dataclass(frozen=True)
class Dropout:
    p: float
    where: Where | None = dataclasses.field(default=None, compare=False, repr=False)

    def token(self) -> str:
        return f"DO{self.p:g}"


LayerSpec = Conv | Pool | FC | BatchNorm | Dropout


class SpecError(ValueError):
    """A bad layer, with where it was written (turned into a recipe error at ``spec`` or ``layers[i]``)."""

    def __init__(self, where: Where | None, message: str):
        super().__init__(message)
        self.where = where


# ---- the notation ---------------------------------------------------------------------------

_CONV = re.compile(r"(\d+)C(\d+)((?:[PS]\d+)*)", re.IGNORECASE)
_POOL = re.compile(r"([MAS])P(\d+)", re.IGNORECASE)
_FC = re.compile(r"(\d+)?FC(\d+)?", re.IGNORECASE)
_BN = re.compile(r"BN", re.IGNORECASE)
_DROPOUT = re.compile(r"DO(\d*\.?\d+)", re.IGNORECASE)
_POOL_MODES = {"m": "max", "a": "avg", "s": "sum"}


def parse_spec(spec: str) -> list[LayerSpec]:
    """The layers of ``spec`` (``"12C5-MP2-64C5-MP2-FC10"``), each knowing its token; ``SpecError`` if bad."""
    if not spec.strip():
        raise SpecError(None, f"the spec is empty; write the layers as tokens separated by '-', e.g. {_EXAMPLE}")
    layers: list[LayerSpec] = []
    offset = 0
    for index, raw in enumerate(spec.split("-"), start=1):
        start = offset + len(raw) - len(raw.lstrip())
        offset += len(raw) + 1
        text = raw.strip()
        if text:
            where = Where(index, text, start)
        else:  # point at the dashes around the gap
            where = Where(index, "--" if 0 < start < len(spec) else "-", max(0, start - 1))
        if not text:
            raise SpecError(where, f"token {index} is empty (two '-' in a row, or one at an end)")
        layers.append(_parse_token(text, where))
    return layers


_EXAMPLE = '"12C5-MP2-64C5-MP2-FC10"'


def _parse_token(text: str, where: Where) -> LayerSpec:
    if m := _CONV.fullmatch(text):
        options = {"p": 0, "s": 1}
        seen = set()
        for letter, number in re.findall(r"([PS])(\d+)", m.group(3), flags=re.IGNORECASE):
            letter = letter.lower()
            if letter in seen:
                raise SpecError(where, f'token {where.index} "{text}" sets {_SUFFIX[letter]} twice')
            seen.add(letter)
            options[letter] = int(number)
        channels, kernel = int(m.group(1)), int(m.group(2))
        if channels < 1 or kernel < 1:
            raise SpecError(where, f'token {where.index} "{text}": channels and kernel size must be at least 1')
        if options["s"] < 1:
            raise SpecError(where, f'token {where.index} "{text}": the stride must be at least 1')
        return Conv(channels, kernel, options["p"], options["s"], where=where)
    if m := _POOL.fullmatch(text):
        kernel = int(m.group(2))
        if kernel < 1:
            raise SpecError(where, f'token {where.index} "{text}": the pool size must be at least 1')
        return Pool(_POOL_MODES[m.group(1).lower()], kernel, where=where)
    if m := _FC.fullmatch(text):
        features = int(m.group(1)) if m.group(1) else None
        size = int(m.group(2)) if m.group(2) else None
        if size == 0 or features == 0:
            raise SpecError(where, f'token {where.index} "{text}": an FC layer needs at least 1 input and 1 output')
        return FC(size, features, where=where)
    if _BN.fullmatch(text):
        return BatchNorm(where=where)
    if m := _DROPOUT.fullmatch(text):
        p = float(m.group(1))
        if not 0 <= p < 1:
            raise SpecError(
                where, f'token {where.index} "{text}": the dropout probability must be in [0, 1), got {p:g}'
            )
        return Dropout(p, where=where)
    raise SpecError(where, f'token {where.index} "{text}" is not a layer; tokens are {TOKENS}')


_SUFFIX = {"p": "the padding", "s": "the stride"}


# ---- the table form -------------------------------------------------------------------------

# type -> {key: (type, default)}; a default of ... means required
_TABLE_KEYS: dict[str, dict[str, tuple[type, Any]]] = {
    "conv": {
        "channels": (int, ...),
        "kernel": (int, ...),
        "padding": (int, 0),
        "stride": (int, 1),
        "bias": (bool, True),
    },
    "maxpool": {"kernel": (int, ...), "stride": (int, None)},
    "avgpool": {"kernel": (int, ...), "stride": (int, None)},
    "sumpool": {"kernel": (int, ...), "stride": (int, None)},
    "fc": {"size": (int, None), "features": (int, None), "bias": (bool, True)},
    "batchnorm": {},
    "dropout": {"p": (float, ...)},
}


class _TableError(ValueError):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def parse_tables(tables: Sequence[dict[str, Any]]) -> list[LayerSpec]:
    """The layers of the table form (``[[model.layers]]``); ``_TableError`` names the key."""
    if not tables:
        raise _TableError("layers", "the list of layers is empty")
    layers = []
    for i, table in enumerate(tables):
        where = Where(i + 1, f"layers[{i}]")
        if not isinstance(table, dict):
            raise _TableError(f"layers[{i}]", f"expected a table, got {table!r}")
        kind = table.get("type")
        if not isinstance(kind, str) or kind not in _TABLE_KEYS:
            hint = did_you_mean(kind, _TABLE_KEYS) if isinstance(kind, str) else ""
            got = "missing" if kind is None else f"got {kind!r}{hint}"
            raise _TableError(f"layers[{i}].type", f"{got}; types are {', '.join(_TABLE_KEYS)}")
        keys = _TABLE_KEYS[kind]
        values = {}
        for key, value in table.items():
            if key == "type":
                continue
            if key not in keys:
                raise _TableError(
                    f"layers[{i}].{key}",
                    f"unknown key for a {kind} layer{did_you_mean(key, keys)}; keys are: {', '.join(keys) or 'none'}",
                )
            want = keys[key][0]
            ok = isinstance(value, (int, float)) if want is float else isinstance(value, want)
            if isinstance(value, bool) and want is not bool:
                ok = False
            if not ok:
                name = {int: "an integer", float: "a number", bool: "a boolean"}[want]
                raise _TableError(f"layers[{i}].{key}", f"expected {name}, got {value!r}")
            values[key] = value
        for key, (_, default) in keys.items():
            if default is ... and key not in values:
                raise _TableError(f"layers[{i}].{key}", f"missing (required by a {kind} layer)")
        layers.append(_from_table(kind, values, where, i))
    return layers


def _from_table(kind: str, v: dict[str, Any], where: Where, i: int) -> LayerSpec:
    def positive(key: str, at_least: int = 1) -> None:
        if key in v and v[key] < at_least:
            raise _TableError(f"layers[{i}].{key}", f"must be at least {at_least}, got {v[key]}")

    if kind == "conv":
        positive("channels"), positive("kernel"), positive("stride"), positive("padding", 0)
        return Conv(v["channels"], v["kernel"], v.get("padding", 0), v.get("stride", 1), v.get("bias", True), where)
    if kind.endswith("pool"):
        positive("kernel"), positive("stride")
        return Pool(kind[: -len("pool")], v["kernel"], v.get("stride"), where)
    if kind == "fc":
        positive("size"), positive("features")
        return FC(v.get("size"), v.get("features"), v.get("bias", True), where)
    if kind == "batchnorm":
        return BatchNorm(where)
    if not 0 <= v["p"] < 1:
        raise _TableError(f"layers[{i}].p", f"the dropout probability must be in [0, 1), got {v['p']}")
    return Dropout(float(v["p"]), where)


# ---- building -------------------------------------------------------------------------------


class LayerNetwork(SpikingSequential):
    """The ``SpikingSequential`` a layer list builds, keeping what it was built from.

    Attributes:
        layer_specs: the parsed layers, in order (sizes as written; ``None`` where left to the data).
        spec: the notation with every size filled in (``"12C5-MP2-64C5-MP2-1024FC10"``).
        stages: per stage, the indices of its modules (weight layer first, its neuron last).
        input_shape: one step of one sample of the input.
    """

    def __init__(self, modules, neurons, layer_specs, spec, stages, input_shape):
        super().__init__(*modules, neurons=neurons)
        self.layer_specs = tuple(layer_specs)
        self.spec = spec
        self.stages = tuple(tuple(s) for s in stages)
        self.input_shape = tuple(input_shape)


def build_network(
    layer_specs: Sequence[LayerSpec], input_shape: Sequence[int], num_classes: int, neuron: Callable[..., nn.Module]
) -> LayerNetwork:
    """Modules for ``layer_specs`` on ``input_shape`` (a neuron ends each stage); ``SpecError`` if they do not fit."""
    shape = tuple(int(s) for s in input_shape)
    modules: list[nn.Module] = []
    neurons: list[int] = []
    stages: list[list[int]] = []
    tokens: list[str] = []
    open_stage: list[int] | None = None  # module indices of the stage that waits for its neuron
    last_fc: FC | None = None
    fcs = [layer for layer in layer_specs if isinstance(layer, FC)]

    def end_stage() -> None:
        nonlocal open_stage
        if open_stage is not None:
            neurons.append(len(modules))
            open_stage.append(len(modules))
            modules.append(call_neuron(neuron, shape))
            stages.append(open_stage)
            open_stage = None

    def add(module: nn.Module) -> None:
        if open_stage is not None:
            open_stage.append(len(modules))
        modules.append(module)

    for layer in layer_specs:
        where = layer.where
        name = _name(layer)
        if isinstance(layer, Conv):
            if last_fc is not None:
                raise SpecError(where, f"{name}: a convolution cannot follow an FC layer; convolutions come first")
            if len(shape) != 3:
                raise SpecError(
                    where, f"{name}: a convolution needs image input (C, H, W), but the data gives {_shape(shape)}"
                )
            end_stage()
            c, h, w = shape
            k, p, s = layer.kernel, layer.padding, layer.stride
            out_h, out_w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            if out_h < 1 or out_w < 1:
                how = f"{k}x{k} kernel" + (f", padding {p}" if p else "") + (f", stride {s}" if s != 1 else "")
                raise SpecError(
                    where,
                    f"{name} shrinks the image below 1 pixel: {h}x{w} in, {how} -> {max(out_h, 0)}x{max(out_w, 0)}",
                )
            open_stage = []
            add(nn.Conv2d(c, layer.channels, k, stride=s, padding=p, bias=layer.bias))
            shape = (layer.channels, out_h, out_w)
        elif isinstance(layer, FC):
            end_stage()
            if len(shape) > 1:
                add(nn.Flatten())
            features = math.prod(shape)
            if layer.features is not None and layer.features != features:
                raise SpecError(
                    where,
                    f"{name} expects {layer.features} input features, but its input has {features}"
                    + (f" ({'x'.join(map(str, shape))})" if len(shape) > 1 else ""),
                )
            size = layer.size
            if size is None:
                if layer is not fcs[-1]:
                    raise SpecError(
                        where, f"{name}: only the last FC may leave out its size (it takes the number of classes)"
                    )
                size = num_classes
            open_stage = []
            add(nn.Linear(features, size, bias=layer.bias))
            shape = (size,)
            last_fc = layer
            tokens.append(FC(size, features).token())
            continue
        elif open_stage is None:
            what = {Pool: "a pool", BatchNorm: "batch norm", Dropout: "dropout"}[type(layer)]
            raise SpecError(
                where, f"{name}: {what} before any convolution or FC; every stage starts with a weight layer"
            )
        elif isinstance(layer, Pool):
            if len(shape) != 3:
                raise SpecError(where, f"{name}: pooling needs an image, but it follows an FC layer")
            c, h, w = shape
            stride = layer.stride or layer.kernel
            out_h, out_w = (h - layer.kernel) // stride + 1, (w - layer.kernel) // stride + 1
            if out_h < 1 or out_w < 1:
                raise SpecError(
                    where,
                    f"{name} shrinks the image below 1 pixel: {h}x{w} in, {layer.kernel}x{layer.kernel} pool -> "
                    f"{max(out_h, 0)}x{max(out_w, 0)}",
                )
            cls = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d, "sum": SumPool2d}[layer.mode]
            add(cls(layer.kernel, stride))
            shape = (c, out_h, out_w)
        elif isinstance(layer, BatchNorm):
            add(nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0]))
        else:
            add(nn.Dropout(layer.p))
        tokens.append(layer.token())
    if last_fc is None:  # (a convolution after an FC is reported above)
        where = layer_specs[-1].where if layer_specs else None
        raise SpecError(
            where,
            f"the network must end with an FC layer of {num_classes} outputs, one per class of the data "
            "(append FC, which takes the number from the data)",
        )
    if shape != (num_classes,):
        raise SpecError(
            last_fc.where,
            f"{_name(last_fc)}: the last FC has {last_fc.size} outputs, but the data set has {num_classes} classes; "
            f"write FC{num_classes}, or FC to take the number from the data",
        )
    end_stage()
    return LayerNetwork(modules, neurons, layer_specs, "-".join(tokens), stages, input_shape)


def call_neuron(neuron: Callable[..., nn.Module], shape: tuple[int, ...]) -> nn.Module:
    """``neuron(shape=shape)``, or ``neuron()`` for a plain callable without a ``shape`` parameter."""
    try:
        parameters = inspect.signature(neuron).parameters
    except (TypeError, ValueError):
        return neuron()
    if "shape" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return neuron(shape=shape)
    return neuron()


def _name(layer: LayerSpec) -> str:
    where = layer.where
    if where is None:
        return f'"{layer.token()}"'
    if where.table:
        return f"this {_TABLE_TYPE[type(layer)]} layer"
    return f'token {where.index} "{where.text}"'


_TABLE_TYPE = {Conv: "conv", Pool: "pooling", FC: "fc", BatchNorm: "batchnorm", Dropout: "dropout"}


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")


def _pointed(spec: str, where: Where | None) -> str:
    """The spec, and a caret line under the token."""
    if where is None or where.table:
        return f"\n      {spec}"
    width = max(1, len(where.text))
    return f"\n      {spec}\n      {' ' * where.start}{'^' * width}"


def layers(
    *,
    input_shape: Sequence[int],
    num_classes: int,
    neuron: Callable[..., nn.Module],
    spec: str | None = None,
    layers: list[dict] | None = None,
) -> LayerNetwork:
    """Build the network ``spec`` (or the table form ``layers``) describes; see the module docstring."""
    if (spec is None) == (layers is None):
        raise ValueError(
            f'give the network either as spec = "..." (e.g. spec = {_EXAMPLE}) or as [[model.layers]] tables'
            + (", not both" if spec is not None else "")
        )
    if spec is not None:
        try:
            return build_network(parse_spec(spec), input_shape, num_classes, neuron)
        except SpecError as exc:
            raise ParameterError("spec", f"{exc}{_pointed(spec, exc.where)}") from None
    try:
        return build_network(parse_tables(layers), input_shape, num_classes, neuron)
    except _TableError as exc:
        raise ParameterError(exc.key, str(exc)) from None
    except SpecError as exc:
        key = f"layers[{exc.where.index - 1}]" if exc.where is not None else "layers"
        raise ParameterError(key, str(exc)) from None
