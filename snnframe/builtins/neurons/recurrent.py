r"""``rleaky`` and ``rsynaptic``: snnTorch's recurrent LIF neurons, all steps in one autograd function.

Each layer feeds its own spikes of the previous step back through recurrent weights
:math:`R`: all-to-all, an ``nn.Linear(n, n)`` for a layer of ``n`` features or an
``nn.Conv2d(c, c, k, padding=k // 2)`` for a ``(c, h, w)`` layer (snnTorch's ``RLeaky`` /
``RSynaptic`` with ``linear_features`` / ``conv2d_channels`` + ``kernel_size``), or one-to-one,
:math:`R(S) = V S` with a scalar :math:`V` (``all_to_all = false``). With :math:`S_{-1} = 0`,
:math:`U_{-1} = I_{-1} = 0` and :math:`r_t = H(U_{t-1} - θ)` (detached; snnTorch's
``reset_delay=True``):

.. math::
    Q_t &= R(S_{t-1}) \quad \text{(the bias of } R \text{ enters at every step, } t = 0 \text{ too)} \\
    B_t &= β U_{t-1} + X_t + Q_t &\text{(rleaky)} \\
    I_t &= α I_{t-1} + X_t + Q_t, \qquad B_t = β U_{t-1} + I_t &\text{(rsynaptic)} \\
    U_t &= B_t - θ r_t \ \text{(subtract)}, \quad B_t (1 - r_t) \ \text{(zero)}, \quad B_t \ \text{(none)} \\
    S_t &= H(U_t - θ)

Unlike the reset, the fed-back spikes carry the surrogate gradient (as in snnTorch), so the
adjoint couples the neurons through :math:`R^\top`. With :math:`b_t = ∂L/∂B_t`,
:math:`h_t = ∂L/∂Q_t` (:math:`b_t` for rleaky, :math:`∂L/∂I_t` for rsynaptic) and
:math:`c_t = 1 - r_t` (zero) or 1:

.. math::
    G_t &= σ'(U_t - θ)\,\bigl(g^S_t + R^\top h_{t+1}\bigr) + ∂L/∂U_t|_{\text{direct}} + β b_{t+1},
        \qquad b_t = c_t G_t \\
    ∂L/∂I_t &= b_t + α\, ∂L/∂I_{t+1} \ \text{(rsynaptic)}, \qquad ∂L/∂X_t = h_t \\
    ∂L/∂W &= \sum_{t \ge 1} h_t S_{t-1}^\top, \quad ∂L/∂b = \sum_t h_t, \quad
    ∂L/∂β = \sum_{t \ge 1} b_t U_{t-1}, \quad ∂L/∂α = \sum_{t \ge 1} (∂L/∂I_t) I_{t-1}

The forward runs snnTorch's operations in snnTorch's order, so spikes and membrane equal
``snntorch.RLeaky`` / ``RSynaptic`` stepped over time (tested); only :math:`U` is kept for the
backward pass (and :math:`I` when :math:`α` is learnt). The loop is PyTorch (any device): one
matrix product (or convolution) and a few elementwise operations per step, both ways; the
weight gradients are one product over all steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from snnframe.engine.buffers import step_buffer
from snnframe.engine.neuron import (
    ResetMechanism,
    SpikingNeuron,
    check_positive,
    check_reset,
    check_surrogate,
    check_unit_interval,
    needs_grad,
    scalar,
)
from snnframe.engine.surrogate import Surrogate

RecurrentInit = Literal["default", "zeros"]


class _Recurrent(SpikingNeuron):
    """What ``rleaky`` and ``rsynaptic`` share: the recurrent weights and the fused time loop."""

    def _init_recurrent(
        self,
        shape: Sequence[int] | None,
        all_to_all: bool,
        kernel_size: int,
        V: float,
        learn_recurrent: bool,
        recurrent_init: str,
    ) -> None:
        self.shape = tuple(int(s) for s in shape) if shape is not None else None
        self.all_to_all = bool(all_to_all)
        self.learn_recurrent = bool(learn_recurrent)
        if recurrent_init not in ("default", "zeros"):
            raise ValueError(f"recurrent_init must be 'default' or 'zeros', got {recurrent_init!r}")
        self.recurrent_init = recurrent_init
        self.kernel_size = None
        if not all_to_all:
            scalar(self, "V", float(V), learn_recurrent)
            self.recurrent = None
            return
        name = type(self).__name__
        if self.shape is None:
            raise ValueError(
                f"{name} with all_to_all = true needs the shape of its layer to size its recurrent weights "
                "(pass shape=, as the built-in architectures do, or set all_to_all = false)"
            )
        if len(self.shape) == 1:
            n = self.shape[0]
            self.recurrent = nn.Linear(n, n)
        elif len(self.shape) == 3:
            if kernel_size < 1 or kernel_size % 2 == 0:
                raise ValueError(
                    f"kernel_size of the recurrent convolution must be an odd positive integer, got {kernel_size}"
                )
            self.kernel_size = int(kernel_size)
            channels = self.shape[0]
            self.recurrent = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        else:
            raise ValueError(
                f"{name}'s recurrent weights fit a layer of features (n,) or of channels (C, H, W), got shape "
                f"{self.shape}"
            )
        if recurrent_init == "zeros":
            with torch.no_grad():
                self.recurrent.weight.zero_()
                self.recurrent.bias.zero_()
        if not learn_recurrent:
            self.recurrent.requires_grad_(False)

    def _recurrent_tensors(self, x):
        """``(weight, bias, V)`` for the autograd function: the weights, or the one-to-one ``V``."""
        if self.shape is not None and tuple(x.shape[2:]) != self.shape:
            raise ValueError(
                f"{type(self).__name__} was built for layers of shape {self.shape}, got input {tuple(x.shape)}"
            )
        if self.recurrent is None:
            return None, None, self.V.to(x.dtype)
        return self.recurrent.weight.to(x.dtype), self.recurrent.bias.to(x.dtype), None

    def _recurrent_repr(self) -> str:
        if self.recurrent is None:
            return f"V={self.V.item():g}"
        return f"shape={self.shape}" + (f", kernel_size={self.kernel_size}" if self.kernel_size else "")

    def _run(self, x, alpha, beta, threshold, return_mem):
        weight, bias, v = self._recurrent_tensors(x)
        padding = (self.kernel_size or 1) // 2
        tensors = (x, alpha, beta, threshold, weight, bias, v)
        if needs_grad(*(t for t in tensors if t is not None)):
            return _RecurrentFunction.apply(*tensors, padding, self.surrogate, self.reset_mechanism)
        with torch.no_grad():
            spikes, mem, _ = recurrent_forward(
                x, alpha, beta, threshold, _apply(weight, bias, v, padding), self.reset_mechanism, return_mem, False
            )
        return spikes, mem


class RLeaky(_Recurrent):
    r"""Recurrent leaky integrate-and-fire neuron with snnTorch ``RLeaky`` semantics over ``[T, B, ...]``.

    Example::

        >>> neuron = RLeaky(shape=(128,), beta=0.9)          # all-to-all: nn.Linear(128, 128)
        >>> spikes, mem = neuron(torch.rand(100, 32, 128), return_mem=True)

    Args:
        shape: one step of one sample of the layer's input, ``(n,)`` or ``(C, H, W)``; passed by
            the architecture (``neuron(shape=...)``), needed for all-to-all weights.
        beta: membrane decay per step, in [0, 1] (clamped when learnt, as snnTorch does).
        threshold: firing threshold :math:`θ > 0`.
        reset_mechanism: ``"subtract"``, ``"zero"`` (the whole new membrane, as snnTorch's
            ``RLeaky``) or ``"none"``.
        all_to_all: recurrent weights between all neurons (``nn.Linear``, or ``nn.Conv2d`` for
            convolutional layers); ``false``: each neuron to itself with weight ``V``.
        kernel_size: the recurrent convolution's kernel (odd; padding keeps the image size).
        V: the one-to-one weight (``all_to_all = false``).
        learn_recurrent: train the recurrent weights (or ``V``), snnTorch's default.
        recurrent_init: ``"default"`` (PyTorch's initialisation, as snnTorch) or ``"zeros"``
            (start as a feed-forward layer).
        learn_beta, learn_threshold: make :math:`β` / :math:`θ` trainable scalars.
        surrogate: spike surrogate gradient; snnTorch's default ``ATan(alpha=2)`` if omitted.
    """

    def __init__(
        self,
        *,
        shape: tuple[int, ...] | None = None,
        surrogate: Surrogate | None = None,
        beta: float = 0.5,
        threshold: float = 1.0,
        reset_mechanism: ResetMechanism = "subtract",
        all_to_all: bool = True,
        kernel_size: int = 3,
        V: float = 1.0,
        learn_recurrent: bool = True,
        recurrent_init: RecurrentInit = "default",
        learn_beta: bool = False,
        learn_threshold: bool = False,
    ):
        super().__init__()
        self.surrogate = check_surrogate(surrogate)
        self.reset_mechanism = check_reset(reset_mechanism)
        scalar(self, "beta", check_unit_interval("beta", beta), learn_beta)
        scalar(self, "threshold", check_positive("threshold", threshold), learn_threshold)
        self._init_recurrent(shape, all_to_all, kernel_size, V, learn_recurrent, recurrent_init)

    def extra_repr(self) -> str:
        return (
            f"{self._recurrent_repr()}, beta={self.beta.item():g}, threshold={self.threshold.item():g}, "
            f"reset_mechanism={self.reset_mechanism!r}, surrogate={self.surrogate!r}"
        )

    def simulate(self, x, return_mem):
        beta = self.beta.clamp(0, 1).to(x.dtype)
        return self._run(x, None, beta, self.threshold.to(x.dtype), return_mem)


class RSynaptic(_Recurrent):
    r"""Recurrent synaptic-current LIF neuron with snnTorch ``RSynaptic`` semantics over ``[T, B, ...]``.

    Example::

        >>> neuron = RSynaptic(shape=(12, 12, 12), alpha=0.9, beta=0.8, kernel_size=3)   # nn.Conv2d(12, 12, 3)
        >>> spikes = neuron(torch.rand(50, 8, 12, 12, 12))

    Args:
        alpha: synaptic current decay per step, in [0, 1].
        learn_alpha: make :math:`α` a trainable scalar.

    The other arguments are :class:`RLeaky`'s; ``"zero"`` resets the membrane, not the current
    (snnTorch's ``RSynaptic``).
    """

    def __init__(
        self,
        *,
        shape: tuple[int, ...] | None = None,
        surrogate: Surrogate | None = None,
        alpha: float = 0.9,
        beta: float = 0.8,
        threshold: float = 1.0,
        reset_mechanism: ResetMechanism = "subtract",
        all_to_all: bool = True,
        kernel_size: int = 3,
        V: float = 1.0,
        learn_recurrent: bool = True,
        recurrent_init: RecurrentInit = "default",
        learn_alpha: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
    ):
        super().__init__()
        self.surrogate = check_surrogate(surrogate)
        self.reset_mechanism = check_reset(reset_mechanism)
        scalar(self, "alpha", check_unit_interval("alpha", alpha), learn_alpha)
        scalar(self, "beta", check_unit_interval("beta", beta), learn_beta)
        scalar(self, "threshold", check_positive("threshold", threshold), learn_threshold)
        self._init_recurrent(shape, all_to_all, kernel_size, V, learn_recurrent, recurrent_init)

    def extra_repr(self) -> str:
        return (
            f"{self._recurrent_repr()}, alpha={self.alpha.item():g}, beta={self.beta.item():g}, "
            f"threshold={self.threshold.item():g}, reset_mechanism={self.reset_mechanism!r}, "
            f"surrogate={self.surrogate!r}"
        )

    def simulate(self, x, return_mem):
        alpha = self.alpha.clamp(0, 1).to(x.dtype)
        beta = self.beta.clamp(0, 1).to(x.dtype)
        return self._run(x, alpha, beta, self.threshold.to(x.dtype), return_mem)


# ---- the time loop -------------------------------------------------------------------------


def _apply(weight, bias, v, padding):
    """:math:`R`: spikes of one step ``[B, ...]`` to the recurrent current."""
    if weight is None:
        return lambda s: s * v  # snnTorch's RecurrentOneToOne
    if weight.dim() == 2:
        return lambda s: F.linear(s, weight, bias)
    return lambda s: F.conv2d(s, weight, bias, padding=padding)


def _apply_transposed(weight, v, padding):
    """:math:`R^\\top` (without the bias): a cotangent of the recurrent current back to the spikes."""
    if weight is None:
        return lambda g: g * v
    if weight.dim() == 2:
        return lambda g: g @ weight
    return lambda g: F.conv_transpose2d(g, weight, padding=padding)


def recurrent_forward(x, alpha, beta, threshold, recurrent, reset, keep_mem, keep_syn):
    """Spikes, membrane (``keep_mem``) and synaptic current (``keep_syn``), each ``[T, ...]``.

    ``alpha`` is ``None`` for rleaky (no synaptic current).
    """
    steps = x.shape[0]
    spikes = step_buffer(x)
    mem = step_buffer(x) if keep_mem else step_buffer(x, steps=2)
    synaptic = alpha is not None
    syn = (step_buffer(x) if keep_syn else step_buffer(x, steps=2)) if synaptic else None
    zeros = torch.zeros_like(x[0])
    neg_threshold = -threshold
    for t in range(steps):
        u = mem[t] if keep_mem else mem[t % 2]
        u_prev = zeros if t == 0 else (mem[t - 1] if keep_mem else mem[(t - 1) % 2])
        s_prev = zeros if t == 0 else spikes[t - 1]
        q = recurrent(s_prev)
        if synaptic:  # snnTorch's order: alpha * I + X + R(S), then beta * U + I
            i = syn[t] if keep_syn else syn[t % 2]
            i_prev = zeros if t == 0 else (syn[t - 1] if keep_syn else syn[(t - 1) % 2])
            torch.mul(i_prev, alpha, out=i)
            i.add_(x[t])
            i.add_(q)
            torch.mul(u_prev, beta, out=u)
            u.add_(i)
        else:  # beta * U + X + R(S)
            torch.mul(u_prev, beta, out=u)
            u.add_(x[t])
            u.add_(q)
        if t > 0:
            if reset == "subtract":
                u.addcmul_(s_prev, neg_threshold)
            elif reset == "zero":
                u.addcmul_(u, s_prev, value=-1)
        torch.gt(u, threshold, out=spikes[t])
    return spikes, (mem if keep_mem else None), (syn if keep_syn else None)


class _RecurrentFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, beta, threshold, weight, bias, v, padding, surrogate, reset):
        want_alpha = alpha is not None and ctx.needs_input_grad[1]
        recurrent = _apply(weight, bias, v, padding)
        spikes, mem, syn = recurrent_forward(x, alpha, beta, threshold, recurrent, reset, True, want_alpha)
        ctx.save_for_backward(mem, syn, alpha, beta, threshold, weight, v)
        ctx.padding, ctx.surrogate, ctx.reset = padding, surrogate, reset
        ctx.has_bias = bias is not None
        ctx.set_materialize_grads(False)
        return spikes, mem

    @staticmethod
    def backward(ctx, grad_spikes, grad_mem):
        mem, syn, alpha, beta, threshold, weight, v = ctx.saved_tensors
        reset = ctx.reset
        want = ctx.needs_input_grad
        steps = mem.shape[0]
        synaptic = alpha is not None
        spikes = (mem > threshold).to(mem.dtype)  # S_t, and r_{t+1}
        slope = ctx.surrogate.derivative(mem - threshold)  # σ'(U_t - θ), all steps at once
        transposed = _apply_transposed(weight, v, ctx.padding)
        grad_b = step_buffer(mem)  # b_t = ∂L/∂B_t
        grad_i = step_buffer(mem) if synaptic else grad_b  # h_t = ∂L/∂Q_t
        spike_part = mem.new_zeros(())  # Σ σ'_t (g^S_t + R^T h_{t+1}), for θ
        for t in range(steps - 1, -1, -1):
            into_spike = grad_spikes[t] if grad_spikes is not None else None
            if t + 1 < steps:
                fed_back = transposed(grad_i[t + 1])
                into_spike = fed_back if into_spike is None else into_spike + fed_back
            g = grad_b[t]
            if into_spike is None:
                g.zero_()
            else:
                torch.mul(into_spike, slope[t], out=g)
                if want[3]:
                    spike_part += g.sum()
            if grad_mem is not None:
                g.add_(grad_mem[t])
            if t + 1 < steps:
                g.add_(grad_b[t + 1] * beta)
            if reset == "zero" and t > 0:
                g.mul_(1 - spikes[t - 1])
            if synaptic and t + 1 < steps:
                torch.add(g, grad_i[t + 1] * alpha, out=grad_i[t])
            elif synaptic:
                grad_i[t].copy_(g)
        grad_x = grad_i if want[0] else None
        grad_alpha = torch.sum(grad_i[1:] * syn[:-1]) if synaptic and want[1] else None
        grad_beta = torch.sum(grad_b[1:] * mem[:-1]) if want[2] else None
        grad_threshold = None
        if want[3]:
            grad_threshold = -spike_part
            if reset == "subtract":
                grad_threshold = grad_threshold - torch.sum(grad_b[1:] * spikes[:-1])
        grad_weight = grad_bias = grad_v = None
        if weight is not None and want[4]:
            grad_weight = _weight_grad(weight, grad_i, spikes, ctx.padding)
        if ctx.has_bias and want[5]:
            dims = (0, 1) if weight.dim() == 2 else (0, 1, 3, 4)
            grad_bias = grad_i.sum(dims)
        if weight is None and want[6]:
            grad_v = torch.sum(grad_i[1:] * spikes[:-1])
        return grad_x, grad_alpha, grad_beta, grad_threshold, grad_weight, grad_bias, grad_v, None, None, None


def _weight_grad(weight, grad_i, spikes, padding):
    r""":math:`\sum_{t \ge 1} h_t S_{t-1}^\top` (or the convolution's weight gradient) over all steps at once."""
    if grad_i.shape[0] < 2:
        return torch.zeros_like(weight)
    h, s = grad_i[1:].flatten(0, 1), spikes[:-1].flatten(0, 1)
    if weight.dim() == 2:
        return h.t() @ s
    return torch.nn.grad.conv2d_weight(s, weight.shape, h, padding=padding)
