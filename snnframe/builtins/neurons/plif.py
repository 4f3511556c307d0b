r"""``plif``: parametric LIF with a learnable membrane time constant (Fang et al. 2021).

W. Fang et al., "Incorporating Learnable Membrane Time Constant to Enhance Learning of Spiking
Neural Networks", ICCV 2021; formulated as SpikingJelly's ``ParametricLIFNode`` (``v_reset=0``).
With :math:`k = 1/τ = \mathrm{sigmoid}(w)`, :math:`w` learnable and initialised to
:math:`-\ln(τ_0 - 1)`, and :math:`V_0 = 0`:

.. math::
    H_t &= V_{t-1} + k (X_t - V_{t-1}) &\text{(decay\_input)} \\
    H_t &= (1 - k) V_{t-1} + X_t &\text{(otherwise)} \\
    S_t &= H(H_t - θ) \\
    V_t &= (1 - S_t) H_t &\text{(zero: hard reset to 0)} \\
    V_t &= H_t - θ S_t &\text{(subtract: soft reset)}

Unlike ``leaky`` the reset acts on the same step and, as in SpikingJelly (``detach_reset=False``),
gradients flow through it. The returned membrane is :math:`H_t`, the potential compared with the
threshold. Backward, with :math:`h_t = σ'(H_t - θ)`:

.. math::
    G_t = g^S_t h_t + ∂L/∂H_t|_{\text{direct}} + (1 - k)\, G_{t+1}\, \frac{∂V_t}{∂H_t}, \quad
    \frac{∂V_t}{∂H_t} = \begin{cases} 1 - S_t - H_t h_t & \text{zero} \\ 1 - θ h_t & \text{subtract}
    \end{cases}

(without the :math:`h_t` terms when ``detach_reset``), :math:`∂L/∂X_t = k G_t` (or :math:`G_t`)
and :math:`∂L/∂k = \sum_t G_t (X_t - V_{t-1})` (or :math:`-\sum_t G_t V_{t-1}`).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from snnframe.engine.buffers import step_buffer
from snnframe.engine.kernels import plif as plif_kernels
from snnframe.engine.kernels.lif import state_dtype
from snnframe.engine.neuron import SpikingNeuron, check_positive, check_reset, check_surrogate, needs_grad
from snnframe.engine.surrogate import Surrogate


class PLIF(SpikingNeuron):
    r"""Parametric LIF neuron over ``[T, B, ...]``; one learnable time constant per layer.

    Example::

        >>> neuron = PLIF(init_tau=2.0)
        >>> spikes = neuron(torch.rand(50, 128, 64))
        >>> 1 / torch.sigmoid(neuron.w)      # the current time constant: tensor(2.0000)

    Args:
        surrogate: spike surrogate gradient; snnTorch's default ``ATan(alpha=2)`` if omitted.
        init_tau: initial membrane time constant :math:`τ_0 > 1` (in steps).
        threshold: firing threshold :math:`θ > 0`.
        reset_mechanism: ``"zero"`` (hard reset, SpikingJelly's default) or ``"subtract"``.
        decay_input: whether the input is scaled by :math:`1/τ` too.
        detach_reset: stop gradients through the reset (SpikingJelly's ``detach_reset``).
    """

    low_precision_input = True  # the Triton kernels read float16/bfloat16 input (CUDA)

    def __init__(
        self,
        *,
        surrogate: Surrogate | None = None,
        init_tau: float = 2.0,
        threshold: float = 1.0,
        reset_mechanism: Literal["zero", "subtract"] = "zero",
        decay_input: bool = True,
        detach_reset: bool = False,
    ):
        super().__init__()
        if not init_tau > 1:
            raise ValueError(f"init_tau must be greater than 1, got {init_tau}")
        self.surrogate = check_surrogate(surrogate)
        self.reset_mechanism = check_reset(reset_mechanism, ("zero", "subtract"))
        self.threshold = check_positive("threshold", threshold)
        self.decay_input = bool(decay_input)
        self.detach_reset = bool(detach_reset)
        self.w = nn.Parameter(torch.tensor(-math.log(init_tau - 1.0)))

    def extra_repr(self) -> str:
        return (
            f"tau={1 / torch.sigmoid(self.w).item():g}, threshold={self.threshold:g}, "
            f"reset_mechanism={self.reset_mechanism!r}, decay_input={self.decay_input}, "
            f"detach_reset={self.detach_reset}, surrogate={self.surrogate!r}"
        )

    def simulate(self, x, return_mem):
        x, _ = plif_kernels.kernel_input(x)  # upcast unless the Triton kernels read it as it is
        k = torch.sigmoid(self.w).to(state_dtype(x.dtype))
        options = (self.threshold, self.reset_mechanism, self.decay_input, self.detach_reset)
        if needs_grad(x, k):
            return _PLIFFunction.apply(x, k, options, self.surrogate)
        with torch.no_grad():
            return plif_forward(x, k, options, keep_mem=return_mem)


def plif_forward(x, k, options, keep_mem):
    """Spikes and, if ``keep_mem``, the pre-reset potential :math:`H` (``[T, ...]``).

    Triton kernels on CUDA, else the PyTorch loop (float32 state; float64 for float64 input).
    """
    threshold, reset, decay_input, _ = options
    steps, state = x.shape[0], state_dtype(x.dtype)
    spikes = step_buffer(x, dtype=state)
    triton = plif_kernels.triton_kernels(x)
    if triton is not None:
        charged = step_buffer(x, dtype=state) if keep_mem else None
        if plif_kernels.triton_forward(triton, x, k, threshold, reset, decay_input, spikes, charged):
            return spikes, charged
    charged = step_buffer(x, dtype=state) if keep_mem else step_buffer(x, steps=2, dtype=state)
    v = torch.zeros_like(spikes[0])
    keep = 1 - k
    for t in range(steps):
        h = charged[t] if keep_mem else charged[t % 2]
        if decay_input:  # H = V + k (X - V), SpikingJelly's order of operations
            torch.sub(x[t], v, out=h)
            h.mul_(k).add_(v)
        else:  # H = (1 - k) V + X
            torch.mul(v, keep, out=h)
            h.add_(x[t])
        s = spikes[t]
        torch.gt(h, threshold, out=s)
        if reset == "zero":
            torch.mul(h, 1 - s, out=v)
        else:
            torch.sub(h, s, alpha=threshold, out=v)
    return spikes, (charged if keep_mem else None)


class _PLIFFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, k, options, surrogate):
        spikes, charged = plif_forward(x, k, options, keep_mem=True)
        decay_input = options[2]
        ctx.save_for_backward(charged, k, x if (decay_input and ctx.needs_input_grad[1]) else None)
        ctx.options, ctx.surrogate, ctx.x_dtype = options, surrogate, x.dtype
        ctx.set_materialize_grads(False)
        return spikes, charged

    @staticmethod
    def backward(ctx, grad_spikes, grad_charged):
        charged, k, x = ctx.saved_tensors
        threshold, reset, decay_input, detach_reset = ctx.options
        triton = plif_kernels.triton_kernels(charged)
        if triton is not None:
            out = plif_kernels.triton_backward(
                triton,
                charged,
                x,
                grad_spikes,
                grad_charged,
                k,
                ctx.options,
                ctx.surrogate,
                ctx.x_dtype,
                ctx.needs_input_grad[1],
            )
            if out is not None:
                return *out, None, None
        steps = charged.shape[0]
        grad = step_buffer(charged)  # G_t = ∂L/∂H_t
        for t in range(steps - 1, -1, -1):
            g, d = grad[t], charged[t] - threshold
            surrogate_grad = ctx.surrogate.derivative(d) if (grad_spikes is not None or not detach_reset) else None
            if grad_spikes is not None:
                torch.mul(grad_spikes[t], surrogate_grad, out=g)
            else:
                g.zero_()
            if grad_charged is not None:
                g.add_(grad_charged[t])
            if t + 1 < steps:
                fired = d > 0
                if reset == "zero":
                    dv_dh = (~fired).to(g.dtype)
                    if not detach_reset:
                        dv_dh = dv_dh - charged[t] * surrogate_grad
                else:
                    dv_dh = 1 - threshold * surrogate_grad if not detach_reset else 1.0
                g.add_(grad[t + 1] * (1 - k) * dv_dh)
        grad_x = grad * k if decay_input else grad
        grad_k = None
        if ctx.needs_input_grad[1]:
            v_prev = _after_reset(charged[:-1], threshold, reset)
            if decay_input:
                grad_k = torch.sum(grad[1:] * (x[1:] - v_prev)) + torch.sum(grad[0] * x[0])
            else:
                grad_k = -torch.sum(grad[1:] * v_prev)
        return grad_x, grad_k, None, None


def _after_reset(charged, threshold, reset):
    """:math:`V` from :math:`H` for the given steps."""
    fired = (charged > threshold).to(charged.dtype)
    return charged * (1 - fired) if reset == "zero" else charged - threshold * fired
