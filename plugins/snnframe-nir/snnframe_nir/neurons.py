r"""Neurons with NIR's semantics: the reset acts within the step, to ``v_reset``.

snnframe's built-in neurons follow snnTorch's ``reset_delay=True``: a spike at step ``t - 1``
resets at the start of step ``t``. For ``leaky`` with ``reset_mechanism = "zero"`` that gives the
same spikes as NIR's in-step reset, but ``synaptic``, ``rleaky`` and ``rsynaptic`` then hold the
whole step after a spike at 0, input included, which no NIR node does. :class:`NIRNeuron` steps
NIR's equations (see :mod:`snnframe_nir.convention`); with ``R`` the recurrent weights
(bias-free, applied to the previous step's spikes) and :math:`S_{-1} = 0`:

.. math::
    D_t &= X_t + R(S_{t-1}) \\
    I_t &= α I_{t-1} + w D_t \quad \text{(synaptic; else } I_t = D_t) \\
    U_t &= β U'_{t-1} + g I_t + c, \qquad S_t = H(U_t - θ) \\
    U'_t &= U_t - S_t (U_t - v_{reset}) \quad \text{(or } U_t \text{ for a neuron that never resets)}

With :math:`w = g = 1`, :math:`c = v_{reset} = 0` this is snnTorch's ``Synaptic`` / ``RLeaky`` /
``RSynaptic`` with ``reset_mechanism="zero", reset_delay=False``, the neurons snnTorch's NIR import
builds, operation for operation. The reset is detached from the graph (snnTorch's default); the
fed-back spikes carry the surrogate gradient. The time loop is plain PyTorch with autograd.

Recipes use it as ``nir_synaptic``, ``nir_rleaky`` and ``nir_rsynaptic`` (the parameters of
``synaptic``, ``rleaky`` and ``rsynaptic``, without ``reset_mechanism``): train with those and
``snnframe export-nir`` writes the network exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from snnframe.engine import SpikingNeuron, check_positive, check_surrogate, check_unit_interval
from snnframe.engine.surrogate import Surrogate

_PARAMS = ("alpha", "syn_gain", "beta", "gain", "offset", "threshold", "v_reset")


class Scale(nn.Module):
    """``x * scale`` elementwise (NIR's ``Scale``; a one-to-one recurrent weight ``V``)."""

    def __init__(self, scale, learn: bool = False):
        super().__init__()
        tensor = torch.as_tensor(scale, dtype=torch.float32).clone()
        if learn:
            self.scale = nn.Parameter(tensor)
        else:
            self.register_buffer("scale", tensor)

    def forward(self, x):
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale.item():g}" if self.scale.dim() == 0 else f"scale=<{tuple(self.scale.shape)}>"


class NIRNeuron(SpikingNeuron):
    """A spiking layer with NIR's discrete semantics over ``[T, B, ...]`` (module docstring).

    Every parameter is a number or an array broadcast against one step of the layer (per-neuron
    values, as NIR files may hold). ``alpha = None``: no synaptic current (LIF). ``reset = False``:
    the membrane never resets (NIR ``LI`` + ``Threshold``). ``recurrent``: a module applied to the
    previous step's spikes (``nn.Linear`` without bias, ``nn.Conv2d``, :class:`Scale`).
    """

    def __init__(
        self,
        *,
        beta,
        threshold,
        alpha=None,
        gain=1.0,
        syn_gain=1.0,
        offset=0.0,
        v_reset=0.0,
        reset: bool = True,
        recurrent: nn.Module | None = None,
        surrogate: Surrogate | None = None,
        learn_alpha: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
    ):
        super().__init__()
        self.surrogate = check_surrogate(surrogate)
        self.synaptic = alpha is not None
        self.reset = bool(reset)
        learnt = {"alpha": learn_alpha, "beta": learn_beta, "threshold": learn_threshold}
        for name, value in zip(_PARAMS, (alpha, syn_gain, beta, gain, offset, threshold, v_reset)):
            if value is None or (not self.synaptic and name in ("alpha", "syn_gain")):
                continue
            tensor = torch.as_tensor(value, dtype=torch.float32).clone()
            if learnt.get(name, False):
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)
        self.recurrent = recurrent

    def params(self) -> dict[str, torch.Tensor]:
        """The dynamics' tensors by name (``alpha``, ``syn_gain`` only when synaptic)."""
        return {name: getattr(self, name) for name in _PARAMS if hasattr(self, name)}

    def extra_repr(self) -> str:
        shown = []
        for name, value in self.params().items():
            shown.append(f"{name}={value.item():g}" if value.dim() == 0 else f"{name}=<{tuple(value.shape)}>")
        if not self.reset:
            shown.append("reset=False")
        return ", ".join(shown) + f", surrogate={self.surrogate!r}"

    def simulate(self, x, return_mem):
        p = self.params()
        beta = p["beta"].clamp(0, 1).to(x.dtype)
        gain, offset = p["gain"].to(x.dtype), p["offset"].to(x.dtype)
        threshold, v_reset = p["threshold"].to(x.dtype), p["v_reset"].to(x.dtype)
        if self.synaptic:
            alpha, syn_gain = p["alpha"].clamp(0, 1).to(x.dtype), p["syn_gain"].to(x.dtype)
        mem = syn = spikes = None
        out, mems = [], []
        for t in range(x.shape[0]):
            drive = x[t]
            if self.recurrent is not None and t > 0:
                drive = drive + self.recurrent(spikes)
            if self.synaptic:
                syn = syn_gain * drive if syn is None else alpha * syn + syn_gain * drive
                drive = syn
            charged = gain * drive + offset if mem is None else beta * mem + gain * drive + offset
            spikes = self.surrogate(charged - threshold)
            out.append(spikes)
            if return_mem:
                mems.append(charged)
            mem = charged - spikes.detach() * (charged - v_reset) if self.reset else charged
        return torch.stack(out), (torch.stack(mems) if return_mem else None)


# ---- the recipe's neurons --------------------------------------------------------------------

RecurrentInit = Literal["default", "zeros"]


def _below_one(name: str, value: float) -> float:
    value = check_unit_interval(name, value)
    if value >= 1:
        raise ValueError(f"{name} must be below 1 (NIR's CubaLIF needs a finite time constant), got {value}")
    return value


def nir_synaptic(
    *,
    alpha: float = 0.9,
    beta: float = 0.8,
    threshold: float = 1.0,
    surrogate: Surrogate | None = None,
    learn_alpha: bool = False,
    learn_beta: bool = False,
    learn_threshold: bool = False,
) -> NIRNeuron:
    """``synaptic`` with NIR's reset (to 0 within the step): exactly NIR's ``CubaLIF`` at ``dt = 1e-4``."""
    return NIRNeuron(
        alpha=_below_one("alpha", alpha),
        beta=_below_one("beta", beta),
        threshold=check_positive("threshold", threshold),
        surrogate=surrogate,
        learn_alpha=learn_alpha,
        learn_beta=learn_beta,
        learn_threshold=learn_threshold,
    )


def recurrent_weights(
    shape: Sequence[int] | None, all_to_all: bool, kernel_size: int, V: float, learn: bool, init: str, name: str
) -> nn.Module:
    """Bias-free recurrent weights for a layer of ``shape``: ``nn.Linear``, ``nn.Conv2d`` or :class:`Scale`."""
    if init not in ("default", "zeros"):
        raise ValueError(f"recurrent_init must be 'default' or 'zeros', got {init!r}")
    if not all_to_all:
        module = Scale(float(V), learn=learn)
    else:
        if shape is None:
            raise ValueError(
                f"{name} with all_to_all = true needs the shape of its layer to size its recurrent weights "
                "(pass shape=, as the built-in architectures do, or set all_to_all = false)"
            )
        shape = tuple(int(s) for s in shape)
        if len(shape) == 1:
            module = nn.Linear(shape[0], shape[0], bias=False)
        elif len(shape) == 3:
            if kernel_size < 1 or kernel_size % 2 == 0:
                raise ValueError(
                    f"kernel_size of the recurrent convolution must be an odd positive integer, got {kernel_size}"
                )
            module = nn.Conv2d(shape[0], shape[0], kernel_size, padding=kernel_size // 2, bias=False)
        else:
            raise ValueError(f"{name}'s recurrent weights fit a layer of shape (n,) or (C, H, W), got {shape}")
        if init == "zeros":
            with torch.no_grad():
                module.weight.zero_()
    if not learn:
        module.requires_grad_(False)
    return module


def nir_rleaky(
    *,
    shape: tuple[int, ...] | None = None,
    beta: float = 0.5,
    threshold: float = 1.0,
    all_to_all: bool = True,
    kernel_size: int = 3,
    V: float = 1.0,
    learn_recurrent: bool = True,
    recurrent_init: RecurrentInit = "default",
    surrogate: Surrogate | None = None,
    learn_beta: bool = False,
    learn_threshold: bool = False,
) -> NIRNeuron:
    """``rleaky`` with NIR's reset and bias-free recurrent weights: a NIR ``LIF`` with its ``w_rec`` loop."""
    return NIRNeuron(
        beta=_below_one("beta", beta),
        threshold=check_positive("threshold", threshold),
        recurrent=recurrent_weights(shape, all_to_all, kernel_size, V, learn_recurrent, recurrent_init, "nir_rleaky"),
        surrogate=surrogate,
        learn_beta=learn_beta,
        learn_threshold=learn_threshold,
    )


def nir_rsynaptic(
    *,
    shape: tuple[int, ...] | None = None,
    alpha: float = 0.9,
    beta: float = 0.8,
    threshold: float = 1.0,
    all_to_all: bool = True,
    kernel_size: int = 3,
    V: float = 1.0,
    learn_recurrent: bool = True,
    recurrent_init: RecurrentInit = "default",
    surrogate: Surrogate | None = None,
    learn_alpha: bool = False,
    learn_beta: bool = False,
    learn_threshold: bool = False,
) -> NIRNeuron:
    """``rsynaptic`` with NIR's reset and bias-free recurrent weights: a NIR ``CubaLIF`` with its ``w_rec`` loop."""
    return NIRNeuron(
        alpha=_below_one("alpha", alpha),
        beta=_below_one("beta", beta),
        threshold=check_positive("threshold", threshold),
        recurrent=recurrent_weights(
            shape, all_to_all, kernel_size, V, learn_recurrent, recurrent_init, "nir_rsynaptic"
        ),
        surrogate=surrogate,
        learn_alpha=learn_alpha,
        learn_beta=learn_beta,
        learn_threshold=learn_threshold,
    )
