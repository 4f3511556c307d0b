"""The neuron contract, and the checks every neuron shares.

A neuron module maps an input current ``x`` of shape ``[T, B, ...]`` (time-major) to spikes of
the same shape, starting from a fresh (zero) state on every call:

    >>> neuron = Leaky(beta=0.5)
    >>> x = torch.randn(50, 128, 12, 12, 12)
    >>> spikes = neuron(x)                           # [50, 128, 12, 12, 12]
    >>> spikes, mem = neuron(x, return_mem=True)     # mem: the potential compared with the threshold

Stateless layers around a neuron see time folded into the batch (``[T * B, ...]``); a neuron
receives the whole sequence, so it can run its recurrence in one fused kernel. Visualizers and
metrics find neuron layers with ``isinstance(m, SpikingNeuron)`` and read spikes through forward
hooks: with ``return_mem=False`` the module's output *is* the spike tensor.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from snnframe.engine.buffers import as_compute_dtype
from snnframe.engine.surrogate import DEFAULT_SURROGATE, Surrogate

ResetMechanism = Literal["subtract", "zero", "none"]
RESET_MECHANISMS = ("subtract", "zero", "none")


class SpikingNeuron(nn.Module):
    """Base class of spiking neuron layers.

    Subclasses implement :meth:`simulate`. :meth:`forward` fixes the calling convention for all
    of them: it checks that the input is time-major, runs :meth:`simulate` in float32 (float64
    input stays float64) with autocast switched off, so the recurrence never runs in fp16/bf16,
    and returns ``spikes`` or, with ``return_mem=True``, ``(spikes, mem)``.

    ``binary_spikes = True`` promises spikes that are exactly 0 or 1, which lets the layers after
    the neuron store them compactly for the backward pass (:mod:`snnframe.engine.compact`); a
    subclass emitting graded spikes must set it to ``False``.

    ``low_precision_input = True`` lets float16/bfloat16 input (autocast) reach :meth:`simulate`
    as it is; the subclass then upcasts it itself or hands it to a kernel that reads it and
    computes in float32 (the built-in neurons' Triton kernels do: no float32 copy of the input).
    """

    binary_spikes = True
    low_precision_input = False

    def forward(self, x: torch.Tensor, return_mem: bool = False):
        if x.dim() < 2:
            raise ValueError(f"{type(self).__name__} expects time-major input [T, B, ...], got shape {tuple(x.shape)}")
        with torch.autocast(x.device.type, enabled=False):
            spikes, mem = self.simulate(x if self.low_precision_input else as_compute_dtype(x), return_mem)
        return (spikes, mem) if return_mem else spikes

    def simulate(self, x: torch.Tensor, return_mem: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run all ``T`` steps of float32/float64 ``x`` (see ``low_precision_input``) from the initial state.

        Return spikes ``[T, B, ...]`` and, if ``return_mem``, the membrane (else ``None``).
        """
        raise NotImplementedError


def needs_grad(*tensors: torch.Tensor) -> bool:
    """Whether autograd must see this call: grad mode is on and some input requires a gradient."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def check_unit_interval(name: str, value: float) -> float:
    """``value`` as a float if it lies in [0, 1], else ``ValueError`` naming ``name``."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")
    return float(value)


def check_positive(name: str, value: float) -> float:
    """``value`` as a float if it is finite and > 0, else ``ValueError`` naming ``name``."""
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {value}")
    return float(value)


def check_reset(reset_mechanism: str, allowed: tuple[str, ...] = RESET_MECHANISMS) -> str:
    """``reset_mechanism`` if it is one of ``allowed``, else a ``ValueError`` listing them."""
    if reset_mechanism not in allowed:
        choices = ", ".join(repr(r) for r in allowed)
        raise ValueError(f"reset_mechanism must be one of {choices}, got {reset_mechanism!r}")
    return reset_mechanism


def check_surrogate(surrogate: Surrogate | None) -> Surrogate:
    """The surrogate to use: ``surrogate``, or snnTorch's default ``ATan(alpha=2)`` for ``None``."""
    if surrogate is None:
        return DEFAULT_SURROGATE()
    if not callable(surrogate) or not callable(getattr(surrogate, "derivative", None)):
        raise ValueError(f"surrogate must have __call__ and derivative(x), got {surrogate!r}")
    return surrogate


def scalar(module: nn.Module, name: str, value: float, learn: bool) -> None:
    """Register ``value`` as a 0-d parameter (``learn``) or buffer called ``name``."""
    tensor = torch.tensor(float(value))
    if learn:
        module.register_parameter(name, nn.Parameter(tensor))
    else:
        module.register_buffer(name, tensor)
