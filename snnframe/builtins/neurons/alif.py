r"""``alif``: leaky integrate-and-fire with an adaptive threshold.

The threshold rises by :math:`β_a` with every spike and decays back to its base value
:math:`θ` with factor :math:`ρ` per step (the adaptive LIF of Bellec et al. 2018, "Long
short-term memory and learning-to-learn in networks of spiking neurons", and of e-prop,
Bellec et al. 2020, where :math:`A_t = v_{th} + β a_t`, :math:`a_{t+1} = ρ a_t + z_t`).
With :math:`U_0 = a_0 = 0`, the membrane follows ``leaky`` (reset by the base threshold, as
in e-prop):

.. math::
    r_t &= S_{t-1} \quad \text{(detached)} \\
    a_t &= ρ\, a_{t-1} + β_a S_{t-1}, \qquad Θ_t = θ + a_t \\
    U_t &= β U_{t-1} + X_t - θ r_t  &\text{(subtract)} \\
    U_t &= β (1 - r_t) U_{t-1} + X_t &\text{(zero)} \\
    U_t &= β U_{t-1} + X_t &\text{(none)} \\
    S_t &= H(U_t - Θ_t)

Like the reset, the adaptation :math:`a_t` is treated as a constant in the backward pass (it is
driven by detached spikes), so the adjoint is ``leaky``'s with :math:`σ'(U_t - Θ_t)`.
"""

from __future__ import annotations

import torch

from snnframe.engine.buffers import step_buffer
from snnframe.engine.kernels import lif as lif_kernels
from snnframe.engine.lif import lif_backward
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


class ALIF(SpikingNeuron):
    r"""Adaptive-threshold LIF neuron over ``[T, B, ...]``.

    Example::

        >>> neuron = ALIF(beta=0.9, beta_a=0.2, adapt_decay=0.95)
        >>> spikes, mem = neuron(torch.rand(100, 32, 64), return_mem=True)

    Args:
        surrogate: spike surrogate gradient; snnTorch's default ``ATan(alpha=2)`` if omitted.
        beta: membrane decay per step, in [0, 1].
        threshold: base threshold :math:`θ > 0`.
        beta_a: threshold increase per spike, :math:`β_a \ge 0`.
        adapt_decay: decay :math:`ρ` of the threshold increase per step, in [0, 1].
        reset_mechanism: ``"subtract"`` (:math:`θ`), ``"zero"`` or ``"none"``.
        learn_beta, learn_threshold: make :math:`β` / :math:`θ` trainable scalars.
    """

    low_precision_input = True  # the Triton kernels read float16/bfloat16 input (CUDA)

    def __init__(
        self,
        *,
        surrogate: Surrogate | None = None,
        beta: float = 0.9,
        threshold: float = 1.0,
        beta_a: float = 0.2,
        adapt_decay: float = 0.95,
        reset_mechanism: ResetMechanism = "subtract",
        learn_beta: bool = False,
        learn_threshold: bool = False,
    ):
        super().__init__()
        self.surrogate = check_surrogate(surrogate)
        self.reset_mechanism = check_reset(reset_mechanism)
        if not beta_a >= 0:
            raise ValueError(f"beta_a must be zero or positive, got {beta_a}")
        self.beta_a = float(beta_a)
        self.adapt_decay = check_unit_interval("adapt_decay", adapt_decay)
        scalar(self, "beta", check_unit_interval("beta", beta), learn_beta)
        scalar(self, "threshold", check_positive("threshold", threshold), learn_threshold)

    def extra_repr(self) -> str:
        return (
            f"beta={self.beta.item():g}, threshold={self.threshold.item():g}, beta_a={self.beta_a:g}, "
            f"adapt_decay={self.adapt_decay:g}, reset_mechanism={self.reset_mechanism!r}, "
            f"surrogate={self.surrogate!r}"
        )

    def simulate(self, x, return_mem):
        x, _ = lif_kernels.kernel_input(x)  # upcast unless the Triton kernels read it as it is
        state = lif_kernels.state_dtype(x.dtype)
        beta = self.beta.clamp(0, 1).to(state)
        threshold = self.threshold.to(state)
        adaptation = (self.beta_a, self.adapt_decay)
        if needs_grad(x, beta, threshold):
            return _ALIFFunction.apply(x, beta, threshold, adaptation, self.surrogate, self.reset_mechanism)
        with torch.no_grad():
            spikes, mem, _ = alif_forward(x, beta, threshold, adaptation, self.reset_mechanism, keep=return_mem)
            return spikes, mem


def alif_forward(x, beta, threshold, adaptation, reset, keep):
    """Spikes and, if ``keep``, the membrane :math:`U` and :math:`D = U - Θ` (all ``[T, ...]``).

    The engine's Triton LIF kernels on CUDA (with the adaptive threshold), else the PyTorch loop.
    """
    beta_a, decay = adaptation
    steps, state = x.shape[0], lif_kernels.state_dtype(x.dtype)
    spikes = step_buffer(x, dtype=state)
    triton = lif_kernels.triton_kernels(x)
    if triton is not None:
        mem = step_buffer(x, dtype=state) if keep else None
        shifted = step_buffer(x, dtype=state) if keep else None
        if lif_kernels.triton_forward(triton, x, beta, threshold, reset, spikes, mem, shifted, adaptation):
            return spikes, mem, shifted
    mem = step_buffer(x, dtype=state) if keep else step_buffer(x, steps=2, dtype=state)
    shifted = step_buffer(x, dtype=state) if keep else step_buffer(x, steps=2, dtype=state)
    adapt = torch.zeros_like(spikes[0])
    neg_threshold = -threshold
    for t in range(steps):
        u, d = (mem[t], shifted[t]) if keep else (mem[t % 2], shifted[t % 2])
        if t == 0:
            u.copy_(x[0])
        else:
            u_prev, s_prev = (mem[t - 1] if keep else mem[(t - 1) % 2]), spikes[t - 1]
            adapt.mul_(decay).add_(s_prev, alpha=beta_a)
            torch.mul(u_prev, beta, out=u)
            if reset == "zero":
                u.addcmul_(u, s_prev, value=-1)
            u.add_(x[t])
            if reset == "subtract":
                u.addcmul_(s_prev, neg_threshold)
        torch.sub(u, adapt, out=d)
        d.sub_(threshold)
        torch.gt(d, 0, out=spikes[t])
    return spikes, (mem if keep else None), (shifted if keep else None)


class _ALIFFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, beta, threshold, adaptation, surrogate, reset):
        spikes, mem, shifted = alif_forward(x, beta, threshold, adaptation, reset, keep=True)
        want_beta = ctx.needs_input_grad[1]
        ctx.save_for_backward(shifted, mem if want_beta else None, beta, threshold)
        ctx.surrogate, ctx.reset, ctx.x_dtype = surrogate, reset, x.dtype
        ctx.set_materialize_grads(False)
        return spikes, mem

    @staticmethod
    def backward(ctx, grad_spikes, grad_mem):
        shifted, mem, beta, threshold = ctx.saved_tensors
        grad, grad_beta, grad_threshold = lif_backward(
            grad_spikes,
            grad_mem,
            mem,
            shifted,
            beta,
            threshold,
            ctx.reset,
            ctx.surrogate,
            want_beta=ctx.needs_input_grad[1],
            want_threshold=ctx.needs_input_grad[2],
            grad_dtype=ctx.x_dtype,
        )
        return grad, grad_beta, grad_threshold, None, None, None
