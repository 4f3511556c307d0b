r"""``synaptic``: snnTorch's second-order LIF neuron (a decaying synaptic current feeds the membrane).

With input :math:`X_t`, synaptic decay :math:`α`, membrane decay :math:`β`, threshold
:math:`θ` and :math:`I_0 = U_0 = 0` (snnTorch's ``Synaptic``, ``reset_delay=True``):

.. math::
    r_t &= H(U_{t-1} - θ) \quad \text{(detached)} \\
    I_t &= α I_{t-1} + X_t \\
    U_t &= β U_{t-1} + I_t - θ r_t &\text{(subtract)} \\
    U_t &= (1 - r_t)(β U_{t-1} + I_t) &\text{(zero)} \\
    U_t &= β U_{t-1} + I_t &\text{(none)} \\
    S_t &= H(U_t - θ)

Backward, with :math:`c_t = 1 - r_t` for ``zero`` and :math:`c_t = 1` otherwise:

.. math::
    G^U_t &= g^S_t σ'(U_t - θ) + ∂L/∂U_t|_{\text{direct}} + β c_{t+1} G^U_{t+1} \\
    G^I_t &= c_t G^U_t + α G^I_{t+1}, \qquad ∂L/∂X_t = G^I_t
"""

from __future__ import annotations

import torch

from snnframe.engine.buffers import step_buffer
from snnframe.engine.kernels import synaptic as synaptic_kernels
from snnframe.engine.kernels.lif import state_dtype
from snnframe.engine.lif import lif_threshold_grad
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


class Synaptic(SpikingNeuron):
    r"""Synaptic-current LIF neuron with snnTorch ``Synaptic`` semantics over ``[T, B, ...]``.

    Example::

        >>> neuron = Synaptic(alpha=0.9, beta=0.8)
        >>> spikes = neuron(torch.rand(100, 32, 64))     # [100, 32, 64]

    Args:
        surrogate: spike surrogate gradient; snnTorch's default ``ATan(alpha=2)`` if omitted.
        alpha: synaptic current decay per step, in [0, 1].
        beta: membrane decay per step, in [0, 1].
        threshold: firing threshold :math:`θ > 0`.
        reset_mechanism: ``"subtract"``, ``"zero"`` or ``"none"``.
        learn_alpha, learn_beta, learn_threshold: make the scalar trainable.
    """

    low_precision_input = True  # the Triton kernels read float16/bfloat16 input (CUDA)

    def __init__(
        self,
        *,
        surrogate: Surrogate | None = None,
        alpha: float = 0.9,
        beta: float = 0.8,
        threshold: float = 1.0,
        reset_mechanism: ResetMechanism = "subtract",
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

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha.item():g}, beta={self.beta.item():g}, threshold={self.threshold.item():g}, "
            f"reset_mechanism={self.reset_mechanism!r}, surrogate={self.surrogate!r}"
        )

    def simulate(self, x, return_mem):
        x, _ = synaptic_kernels.kernel_input(x)  # upcast unless the Triton kernels read it as it is
        state = state_dtype(x.dtype)
        alpha = self.alpha.clamp(0, 1).to(state)
        beta = self.beta.clamp(0, 1).to(state)
        threshold = self.threshold.to(state)
        params = (x, alpha, beta, threshold)
        if needs_grad(*params):
            return _SynapticFunction.apply(*params, self.surrogate, self.reset_mechanism)
        with torch.no_grad():
            spikes, _, mem = synaptic_forward(*params, self.reset_mechanism, keep_mem=return_mem, keep_syn=False)
            return spikes, mem


def synaptic_forward(x, alpha, beta, threshold, reset, keep_mem, keep_syn):
    """Spikes, synaptic current (``keep_syn``) and membrane (``keep_mem``), each ``[T, ...]``.

    Triton kernels on CUDA, else the PyTorch loop (float32 state; float64 for float64 input).
    """
    steps, state = x.shape[0], state_dtype(x.dtype)
    spikes = step_buffer(x, dtype=state)
    triton = synaptic_kernels.triton_kernels(x)
    if triton is not None:
        syn = step_buffer(x, dtype=state) if keep_syn else None
        mem = step_buffer(x, dtype=state) if keep_mem else None
        if synaptic_kernels.triton_forward(triton, x, alpha, beta, threshold, reset, spikes, mem, syn):
            return spikes, syn, mem
    syn = step_buffer(x, dtype=state) if keep_syn else step_buffer(x, steps=2, dtype=state)
    mem = step_buffer(x, dtype=state) if keep_mem else step_buffer(x, steps=2, dtype=state)
    neg_threshold = -threshold
    for t in range(steps):
        i = syn[t] if keep_syn else syn[t % 2]
        u = mem[t] if keep_mem else mem[t % 2]
        if t == 0:
            i.copy_(x[0])
            u.copy_(i)
        else:
            i_prev = syn[t - 1] if keep_syn else syn[(t - 1) % 2]
            u_prev = mem[t - 1] if keep_mem else mem[(t - 1) % 2]
            s_prev = spikes[t - 1]
            torch.mul(i_prev, alpha, out=i)  # snnTorch's order: alpha * I + X, then beta * U + I
            i.add_(x[t])
            torch.mul(u_prev, beta, out=u)
            u.add_(i)
            if reset == "subtract":
                u.addcmul_(s_prev, neg_threshold)
            elif reset == "zero":
                u.addcmul_(u, s_prev, value=-1)
        torch.gt(u, threshold, out=spikes[t])
    return spikes, (syn if keep_syn else None), (mem if keep_mem else None)


class _SynapticFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, beta, threshold, surrogate, reset):
        want_alpha = ctx.needs_input_grad[1]
        spikes, syn, mem = synaptic_forward(x, alpha, beta, threshold, reset, keep_mem=True, keep_syn=want_alpha)
        ctx.save_for_backward(mem, syn, alpha, beta, threshold)
        ctx.surrogate, ctx.reset, ctx.x_dtype = surrogate, reset, x.dtype
        ctx.set_materialize_grads(False)
        return spikes, mem

    @staticmethod
    def backward(ctx, grad_spikes, grad_mem):
        mem, syn, alpha, beta, threshold = ctx.saved_tensors
        reset, surrogate = ctx.reset, ctx.surrogate
        _, want_alpha, want_beta, want_threshold = ctx.needs_input_grad[:4]
        triton = synaptic_kernels.triton_kernels(mem)
        if triton is not None:
            out = synaptic_kernels.triton_backward(
                triton,
                mem,
                syn,
                grad_spikes,
                grad_mem,
                alpha,
                beta,
                threshold,
                reset,
                surrogate,
                ctx.x_dtype,
                (want_alpha, want_beta, want_threshold),
            )
            if out is not None:
                return *out, None, None
        steps = mem.shape[0]
        shifted = mem - threshold
        grad_mem_total = step_buffer(mem)  # G^U
        surrogate_sum = mem.new_zeros(())
        if grad_spikes is not None:  # the surrogate for all steps at once: few operations per step
            torch.mul(grad_spikes, surrogate.derivative(shifted), out=grad_mem_total)
            if want_threshold:
                surrogate_sum = grad_mem_total.sum()
        else:
            grad_mem_total.zero_()
        if grad_mem is not None:
            grad_mem_total.add_(grad_mem)
        kept = shifted <= 0 if reset == "zero" else None  # c_{t+1} = 1 - r_{t+1}
        decay = beta * kept if reset == "zero" else beta
        grad_syn = step_buffer(mem)  # G^I, which is also ∂L/∂X
        for t in range(steps - 1, -1, -1):
            gu, gi = grad_mem_total[t], grad_syn[t]
            if t + 1 < steps:
                gu.addcmul_(grad_mem_total[t + 1], decay[t] if reset == "zero" else decay)
            if reset == "zero" and t > 0:
                torch.mul(gu, kept[t - 1], out=gi)
            else:
                gi.copy_(gu)
            if t + 1 < steps:
                gi.addcmul_(grad_syn[t + 1], alpha)
        fired_before = mem[:-1] > threshold
        grad_alpha = grad_beta = grad_threshold = None
        if want_alpha:
            grad_alpha = torch.sum(grad_syn[1:] * syn[:-1])
        if want_beta:
            through = grad_mem_total[1:] if reset != "zero" else grad_mem_total[1:] * ~fired_before
            grad_beta = torch.sum(through * mem[:-1])
        if want_threshold:
            grad_threshold = lif_threshold_grad(grad_mem_total, surrogate_sum, fired_before, reset)
        return grad_syn, grad_alpha, grad_beta, grad_threshold, None, None
