r"""The fused LIF time loop: snnTorch's first-order leaky integrate-and-fire neuron over all steps at once.

With input current :math:`X_t`, decay :math:`β`, threshold :math:`θ` and :math:`U_0 = 0`
(snnTorch's ``Leaky`` with its defaults, ``reset_delay=True``):

.. math::
    r_t &= H(U_{t-1} - θ) \quad \text{(the previous step's spike, detached from the graph)} \\
    U_t &= β U_{t-1} + X_t - θ r_t  &\text{(subtract)} \\
    U_t &= β (1 - r_t) U_{t-1} + X_t &\text{(zero)} \\
    U_t &= β U_{t-1} + X_t &\text{(none)} \\
    S_t &= H(U_t - θ)

where :math:`H` is the Heaviside step whose derivative the surrogate :math:`σ'` replaces.
The backward pass runs the adjoint recurrence in reverse time, with
:math:`G_t = ∂L/∂U_t` and :math:`g^S_t = ∂L/∂S_t`:

.. math::
    G_t = g^S_t\, σ'(U_t - θ) + ∂L/∂U_t|_{\text{direct}} + a_{t+1} G_{t+1}, \qquad
    a_{t+1} = β\ \text{(subtract, none)}, \quad β (1 - r_{t+1})\ \text{(zero)},

so :math:`∂L/∂X_t = G_t`. Only the membrane :math:`U` is saved for the backward pass.
"""

from __future__ import annotations

import torch

from snnframe.engine.buffers import step_buffer
from snnframe.engine.kernels import lif as lif_kernels
from snnframe.engine.neuron import needs_grad


def lif(x, beta, threshold, surrogate, reset: str, return_mem: bool = False):
    """Spikes and (``return_mem``, else ``None``) membrane of ``x [T, ...]``; ``beta``/``threshold`` 0-d.

    One autograd function over all steps (Triton kernels on CUDA, numba kernels on CPU, the
    PyTorch loop elsewhere) that keeps only the membrane for the backward pass. Used by the
    built-in ``leaky`` and by :class:`~snnframe.engine.StepNeuron` for affine per-step updates.
    ``x`` may be float16/bfloat16: the Triton kernels read it as it is, the other paths upcast it;
    the state, spikes and membrane are float32 (float64 for float64 input).
    """
    x, _ = lif_kernels.kernel_input(x)
    state = lif_kernels.state_dtype(x.dtype)
    beta, threshold = beta.to(state), threshold.to(state)
    if needs_grad(x, beta, threshold):
        return LIFScan.apply(x, beta, threshold, surrogate, reset)
    with torch.no_grad():
        return leaky_forward(x, beta, threshold, reset, keep_mem=return_mem)


def leaky_forward(x, beta, threshold, reset, keep_mem):
    """Spikes ``[T, ...]`` and (``keep_mem``) the membrane ``[T, ...]`` for input ``x``."""
    state = lif_kernels.state_dtype(x.dtype)
    spikes = step_buffer(x, dtype=state)
    mem = step_buffer(x, dtype=state) if keep_mem else None
    triton = lif_kernels.triton_kernels(x)
    if triton is not None and lif_kernels.triton_forward(triton, x, beta, threshold, reset, spikes, mem):
        return spikes, mem
    if lif_kernels.usable(x):
        lif_kernels.leaky_forward(x, float(beta), float(threshold), reset, spikes, mem)
        return spikes, mem
    buffers = mem if keep_mem else step_buffer(x, steps=2, dtype=state)
    neg_threshold = -threshold
    for t in range(x.shape[0]):  # (float16/bfloat16 x only if Triton failed: the float32 buffers upcast it)
        u = buffers[t] if keep_mem else buffers[t % 2]
        if t == 0:
            u.copy_(x[0])
        else:
            u_prev, s_prev = (mem[t - 1] if keep_mem else buffers[(t - 1) % 2]), spikes[t - 1]
            # Same operation order as snnTorch (beta * U + X - r * threshold), so results are bitwise equal.
            torch.mul(u_prev, beta, out=u)
            if reset == "zero":
                u.addcmul_(u, s_prev, value=-1)
            u.add_(x[t])
            if reset == "subtract":
                u.addcmul_(s_prev, neg_threshold)
        torch.gt(u, threshold, out=spikes[t])
    return spikes, mem


class LIFScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, beta, threshold, surrogate, reset):
        spikes, mem = leaky_forward(x, beta, threshold, reset, keep_mem=True)
        ctx.save_for_backward(mem, beta, threshold)
        ctx.surrogate, ctx.reset, ctx.x_dtype = surrogate, reset, x.dtype
        ctx.set_materialize_grads(False)
        return spikes, mem

    @staticmethod
    def backward(ctx, grad_spikes, grad_mem):
        mem, beta, threshold = ctx.saved_tensors
        grad, grad_beta, grad_threshold = lif_backward(
            grad_spikes,
            grad_mem,
            mem,
            None,
            beta,
            threshold,
            ctx.reset,
            ctx.surrogate,
            want_beta=ctx.needs_input_grad[1],
            want_threshold=ctx.needs_input_grad[2],
            grad_dtype=ctx.x_dtype,
        )
        return grad, grad_beta, grad_threshold, None, None


def lif_backward(
    grad_spikes,
    grad_mem,
    mem,
    shifted,
    beta,
    threshold,
    reset,
    surrogate,
    want_beta: bool,
    want_threshold: bool,
    grad_dtype: torch.dtype | None = None,
):
    r"""``(∂L/∂X, ∂L/∂β, ∂L/∂θ)`` of the LIF scan (``None`` for a parameter not wanted).

    ``shifted`` is :math:`D = U - Θ` when the threshold the membrane was compared with varies
    (``alif``: then ``mem`` is needed only for ``want_beta``); ``None`` means :math:`D = U - θ`.
    Runs the Triton adjoint kernel on CUDA, the numba kernel on CPU (fixed threshold), else the
    PyTorch adjoint. ``grad_dtype``: the input's dtype, which the Triton kernel writes directly.
    """
    ref = shifted if shifted is not None else mem
    triton = lif_kernels.triton_kernels(ref)
    if triton is not None:
        out = lif_kernels.triton_backward(
            triton,
            mem,
            shifted,
            grad_spikes,
            grad_mem,
            beta,
            threshold,
            reset,
            surrogate,
            grad_dtype or ref.dtype,
            want_beta,
            want_threshold,
        )
        if out is not None:
            return out
    if shifted is None and lif_kernels.usable(mem):
        grad = step_buffer(mem)
        surrogate_sum = lif_kernels.leaky_backward(
            mem, grad_spikes, grad_mem, float(beta), float(threshold), reset, surrogate, grad
        )
        surrogate_sum = mem.new_tensor(surrogate_sum)
    else:
        d = shifted if shifted is not None else mem - threshold
        grad, surrogate_sum = lif_adjoint(grad_spikes, grad_mem, d, beta, reset, surrogate, want_threshold)
    fired_before = None  # r_t for t >= 1
    if want_beta or want_threshold:
        fired_before = shifted[:-1] > 0 if shifted is not None else mem[:-1] > threshold
    grad_beta = lif_beta_grad(grad, mem, fired_before, reset) if want_beta else None
    grad_threshold = lif_threshold_grad(grad, surrogate_sum, fired_before, reset) if want_threshold else None
    return grad, grad_beta, grad_threshold


def lif_adjoint(grad_spikes, grad_mem, shifted, beta, reset, surrogate, want_surrogate_sum):
    r"""Run :math:`G_t = g^S_t σ'(D_t) + ∂L/∂U_t + a_{t+1} G_{t+1}` backwards in time.

    ``shifted`` holds :math:`D_t = U_t - Θ_t` for all steps, the membrane minus the threshold it
    was compared with (so :math:`r_{t+1} = [D_t > 0]`). The surrogate is applied to all steps at
    once, leaving one operation per step (few kernel launches on a GPU). Returns ``G`` and, if
    asked, :math:`\sum_t g^S_t σ'(D_t)` (part of the threshold's gradient).
    """
    grad = step_buffer(shifted)
    surrogate_sum = grad.new_zeros(())
    if grad_spikes is not None:
        torch.mul(grad_spikes, surrogate.derivative(shifted), out=grad)
        if want_surrogate_sum:
            surrogate_sum = grad.sum()
    else:
        grad.zero_()
    if grad_mem is not None:
        grad.add_(grad_mem)
    # a_{t+1} = beta, or beta (1 - r_{t+1}) for "zero": a step that fired passes nothing back
    decay = beta * (shifted <= 0) if reset == "zero" else beta
    for t in range(shifted.shape[0] - 2, -1, -1):
        grad[t].addcmul_(grad[t + 1], decay[t] if reset == "zero" else decay)
    return grad, surrogate_sum


def lif_beta_grad(grad, mem, fired_before, reset):
    r""":math:`∂L/∂β = \sum_{t \ge 1} G_t (1 - r_t)^{[zero]} U_{t-1}`."""
    prev = mem[:-1] if reset != "zero" else mem[:-1] * ~fired_before
    return torch.sum(grad[1:] * prev)


def lif_threshold_grad(grad, surrogate_sum, fired_before, reset):
    r""":math:`∂L/∂θ = -\sum_t g^S_t σ'(D_t) - [subtract] \sum_{t \ge 1} G_t r_t`."""
    if reset != "subtract":
        return -surrogate_sum
    return -surrogate_sum - torch.sum(grad[1:] * fired_before)
