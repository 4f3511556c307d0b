"""Measures of a network that trainers, visualizers and commands share.

* :func:`correct_count`: samples whose most-spiking output is the target;
* :func:`spiking_layers` and :class:`FiringRecorder`: each spiking layer's spikes, recorded
  through forward hooks (mean spikes per neuron per step, per-neuron rates);
* :func:`fan_out` and :class:`SynapticOps`: the synaptic operations (accumulates on spikes) and
  multiply-accumulates a network performs, counted through the real layer shapes, and the MACs
  of the same network run once as an ANN;
* :func:`energy_j` with :data:`ENERGY_PER_AC_J` and :data:`ENERGY_PER_MAC_J`: the usual 45 nm
  estimate (M. Horowitz, "Computing's energy problem (and what we can do about it)",
  ISSCC 2014: a 32-bit float add 0.9 pJ, a multiply 3.7 pJ, so 4.6 pJ per multiply-accumulate).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from snnframe.engine.neuron import SpikingNeuron

ENERGY_PER_AC_J = 0.9e-12  # one 32-bit float accumulate, 45 nm (Horowitz, ISSCC 2014)
ENERGY_PER_MAC_J = 4.6e-12  # one 32-bit float multiply (3.7 pJ) + accumulate (0.9 pJ), 45 nm
ENERGY_SOURCE = 'M. Horowitz, "Computing\'s energy problem (and what we can do about it)", ISSCC 2014'

# Layers whose weights are synapses: each input element drives (weight, output position) pairs.
WEIGHTED_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd)


def correct_count(spikes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Number of samples whose most-spiking output (argmax of counts over ``T``) is the target.

    ``spikes`` is ``[T, B, classes]``, ``targets`` ``[B]``; ties go to the lower class index
    (``argmax``), so a silent output counts as class 0.
    """
    return (spikes.sum(0).argmax(-1) == targets).sum()


def _named(modules: list[nn.Module]) -> list[tuple[str, nn.Module]]:
    return [(f"{i}:{type(m).__name__.lower()}", m) for i, m in enumerate(modules, start=1)]


def spiking_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``("1:leaky", module), ("2:leaky", module), ...``: every :class:`SpikingNeuron` of ``model``.

    Numbered from the input on (``named_modules`` order, the order layers are registered in) and
    named by their class, lower-cased: names are stable across runs of the same architecture.
    """
    return _named([m for _, m in model.named_modules() if isinstance(m, SpikingNeuron)])


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``("1:conv2d", module), ...``: the linear and convolution layers outside neurons.

    Weighted layers inside a :class:`SpikingNeuron` are its recurrent weights (see
    :class:`SynapticOps`).
    """
    inside: set[int] = set()
    for m in model.modules():
        if isinstance(m, SpikingNeuron):
            inside.update(id(sub) for sub in m.modules() if sub is not m)
    return _named([m for m in model.modules() if isinstance(m, WEIGHTED_LAYERS) and id(m) not in inside])


def _spikes_of(output: Any) -> torch.Tensor | None:
    spikes = output[0] if isinstance(output, tuple) else output
    if not isinstance(spikes, torch.Tensor) or spikes.dim() < 2:
        return None
    spikes = spikes.detach()
    return spikes if spikes.is_floating_point() else spikes.float()


class FiringRecorder:
    """Each spiking layer's spikes over the forward passes run inside ``with FiringRecorder(model):``.

    A forward hook on every :func:`spiking_layers` module adds its output spikes ``[T, B, ...]``
    up per neuron (on the spikes' device, no synchronisation). Afterwards :meth:`rates` gives the
    mean spikes per neuron per step of each layer (its firing rate; for 0/1 spikes the fraction
    of neuron-steps that fired) and :meth:`neuron_rates` each neuron's own rate. Under data
    parallelism, :meth:`gather` adds up the processes' counts first.

        >>> with FiringRecorder(model) as recorder:
        ...     for x, _ in batches:
        ...         model(encoder(x))
        >>> recorder.rates()
        {'1:leaky': 0.0821, '2:leaky': 0.0412, '3:leaky': 0.1377}
    """

    def __init__(self, model: nn.Module):
        self.layers = spiking_layers(model)
        self.counts: dict[str, torch.Tensor] = {}  # per-neuron spike sums over T and B, float64
        self.steps: dict[str, float] = {}  # T * B, summed over calls
        self._handles: list[Any] = []

    def __enter__(self) -> FiringRecorder:
        self._handles = [module.register_forward_hook(self._hook(name)) for name, module in self.layers]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            spikes = _spikes_of(output)
            if spikes is None:
                return
            per_neuron = spikes.sum((0, 1))
            held = self.counts.get(name)
            if held is None:
                self.counts[name] = per_neuron.double()
            elif held.shape == per_neuron.shape:
                held += per_neuron
            else:
                raise ValueError(
                    f"spiking layer {name} produced {tuple(per_neuron.shape)} neurons after {tuple(held.shape)}: "
                    "record firing rates over inputs of one shape"
                )
            self.steps[name] = self.steps.get(name, 0.0) + spikes.shape[0] * spikes.shape[1]

        return hook

    def _recorded(self) -> list[str]:
        return [name for name, _ in self.layers if name in self.counts and self.steps[name] > 0]

    def gather(self, all_gather: Callable[[Any], list[Any]]) -> None:
        """Add up every process's counts: ``all_gather(obj)`` returns each process's ``obj`` (in rank order).

        For data parallelism (each process evaluates a shard of the test set); a process that
        saw no batch contributes nothing. Afterwards the counts are on the CPU.
        """
        mine = {n: (self.counts[n].cpu(), self.steps[n]) for n in self._recorded()}
        counts: dict[str, torch.Tensor] = {}
        steps: dict[str, float] = {}
        for state in all_gather(mine):
            for name, (count, step) in state.items():
                counts[name] = count.clone() if name not in counts else counts[name] + count
                steps[name] = steps.get(name, 0.0) + step
        self.counts, self.steps = counts, steps

    def rates(self) -> dict[str, float]:
        """Each recorded layer's mean spikes per neuron per step, in layer order."""
        names = self._recorded()
        if not names:
            return {}
        totals = torch.stack([self.counts[n].sum() for n in names]).tolist()  # one transfer
        return {n: total / (self.steps[n] * self.counts[n].numel()) for n, total in zip(names, totals, strict=True)}

    def neuron_rates(self) -> dict[str, torch.Tensor]:
        """Each neuron's mean spikes per step, flattened, on the CPU (float32), by layer."""
        return {n: (self.counts[n] / self.steps[n]).flatten().float().cpu() for n in self._recorded()}


def fan_out(layer: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """For one sample's input of ``input_shape``, how many synapses each input element drives.

    A synapse is one (weight, output position) pair that reads the element: for a linear layer
    every element drives ``out_features``; for a convolution it is the number of output
    positions whose window covers the element, times the output channels of its group, so
    elements at the borders (padding) or skipped by the stride drive fewer. Computed exactly,
    for any linear layer, as the gradient of the output's sum with every weight set to one.
    Returns a float64 tensor of ``input_shape``.
    """
    clone = copy.copy(layer)  # the layer's settings, its own parameters; forward() skips its hooks
    clone._parameters = {
        name: None if p is None else torch.full_like(p, float(name == "weight"), dtype=torch.float64, device="cpu")
        for name, p in layer._parameters.items()
    }
    probe = torch.ones((1, *input_shape), dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(clone.forward(probe).sum(), probe)
    return grad[0]


def _is_integral(x: torch.Tensor) -> bool:
    if not x.is_floating_point():
        return True
    return bool(torch.equal(x, torch.round(x)))


class SynapticOps:
    """Counts the operations of the forward passes run inside ``with SynapticOps(model):``.

    * **SynOps** (synaptic operations, accumulates): every weighted layer (linear, convolution)
      whose input holds spikes or event counts (whole numbers) does one accumulate per spike
      and synapse it drives: ``Σ |x| × fan_out``, through the layer's real shape (padding,
      stride, groups; pooling and flattening before it are already in its input).
    * **MACs** of the SNN itself: a weighted layer whose input is not whole numbers (the first
      convolution on a static image) multiplies every input element by every weight it meets,
      dense, once per time step it actually runs (the engine runs it once for static input).
    * **ANN MACs**: the same weighted layers, each run once on one sample (the network as an
      ANN with one pass): ``Σ fan_out`` per layer.
    * Weighted layers inside a :class:`SpikingNeuron` are taken as its recurrent weights, driven
      by the neuron's own spikes one step later: ``Σ_{t < T-1} spikes_t × fan_out``. The ANN has
      no steps, so they add nothing there.

    Numbers are per sample: the model's input ``[T, B, ...]`` counts ``B`` samples. Biases,
    pooling comparisons and the neurons' own updates are not counted (the usual convention).
    Hooks on the weighted layers make :class:`~snnframe.engine.SpikingSequential` run them as
    plain modules (slower than its fused paths, same results): count on a few batches.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.layers = weighted_layers(model)
        self.recurrent = [
            (f"{name}.{type(sub).__name__.lower()}", neuron, sub)
            for name, neuron in spiking_layers(model)
            for sub in neuron.modules()
            if sub is not neuron and isinstance(sub, WEIGHTED_LAYERS)
        ]
        self.samples = 0
        self.synops: dict[str, float] = {}
        self.macs: dict[str, float] = {}
        self.ann_macs: dict[str, float] = {}
        self.skipped: list[str] = []  # recurrent weights whose shape did not fit the neuron's output
        self._fan: dict[tuple[int, tuple[int, ...], torch.device], torch.Tensor] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> SynapticOps:
        self._handles = [self.model.register_forward_pre_hook(self._count_samples)]
        self._handles += [m.register_forward_pre_hook(self._layer_hook(name)) for name, m in self.layers]
        for name, neuron, sub in self.recurrent:
            self._handles.append(neuron.register_forward_hook(self._recurrent_hook(name, sub)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _count_samples(self, module: nn.Module, inputs: Any) -> None:
        x = inputs[0] if inputs else None
        if isinstance(x, torch.Tensor) and x.dim() >= 2:
            self.samples += x.shape[1]

    def fan(self, layer: nn.Module, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        key = (id(layer), shape, device)
        if key not in self._fan:
            self._fan[key] = fan_out(layer, shape).to(device)
        return self._fan[key]

    def _layer_hook(self, name: str) -> Callable[..., None]:
        def hook(layer: nn.Module, inputs: Any) -> None:
            x = inputs[0].detach()
            if isinstance(layer, nn.Linear):  # it reads the last dimension: any leading ones ([T, B, F]) are rows
                x = x.reshape(-1, x.shape[-1])
            shape = tuple(x.shape[1:])
            fan = self.fan(layer, shape, x.device)
            self.ann_macs.setdefault(name, float(fan.sum()))
            if _is_integral(x):
                ops = (x.abs().sum(0, dtype=torch.float64) * fan).sum()
                self.synops[name] = self.synops.get(name, 0.0) + float(ops)
            else:
                self.macs[name] = self.macs.get(name, 0.0) + x.shape[0] * float(fan.sum())

        return hook

    def _recurrent_hook(self, name: str, sub: nn.Module) -> Callable[..., None]:
        def hook(neuron: nn.Module, inputs: Any, output: Any) -> None:
            spikes = _spikes_of(output)
            if spikes is None or spikes.shape[0] < 2 or name in self.skipped:
                return
            try:
                fan = self.fan(sub, tuple(spikes.shape[2:]), spikes.device)
            except RuntimeError:
                self.skipped.append(name)
                return
            ops = (spikes[:-1].abs().sum((0, 1), dtype=torch.float64) * fan).sum()
            self.synops[name] = self.synops.get(name, 0.0) + float(ops)

        return hook

    def per_sample(self) -> dict[str, Any]:
        """Totals and per-layer numbers per sample: ``synops``, ``snn_macs``, ``ann_macs``, ``per_layer``."""
        n = max(1, self.samples)
        names = [name for name, _ in self.layers] + [name for name, _, _ in self.recurrent]
        layers = {
            name: {
                "synops": self.synops.get(name, 0.0) / n,
                "macs": self.macs.get(name, 0.0) / n,
                "ann_macs": self.ann_macs.get(name, 0.0),
            }
            for name in names
            if name in self.synops or name in self.macs or name in self.ann_macs
        }
        return {
            "synops": sum(v["synops"] for v in layers.values()),
            "snn_macs": sum(v["macs"] for v in layers.values()),
            "ann_macs": sum(v["ann_macs"] for v in layers.values()),
            "per_layer": layers,
        }


def energy_j(
    synops: float, macs: float = 0.0, *, per_ac: float = ENERGY_PER_AC_J, per_mac: float = ENERGY_PER_MAC_J
) -> float:
    """Energy in joules of ``synops`` accumulates and ``macs`` multiply-accumulates (45 nm figures)."""
    return synops * per_ac + macs * per_mac
