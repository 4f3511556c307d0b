r"""``alpha``: snnTorch's alpha neuron (a difference of two exponentially decaying currents).

An excitatory current :math:`E` (decay :math:`α`) and an inhibitory one :math:`N` (decay
:math:`β < α`) receive the input with opposite signs; the membrane is their scaled sum, so one
input spike gives an alpha-shaped membrane response. With :math:`E_{-1} = N_{-1} = U_{-1} = 0`,
:math:`r_t = H(U_{t-1} - θ)` (detached) and :math:`τ = \ln α / (\ln β - \ln α) + 1` (snnTorch's
``Alpha``, term for term):

.. math::
    \hat E_t &= α E_{t-1} + X_t, \qquad \hat N_t = β N_{t-1} - X_t, \qquad
    \hat U_t = τ (\hat E_t + \hat N_t) \\
    \text{zero:}\quad & E_t = \hat E_t (1 - r_t), \quad N_t = \hat N_t (1 - r_t), \quad U_t = \hat U_t (1 - r_t) \\
    \text{subtract:}\quad & E_t = \hat E_t - θ r_t, \quad N_t = \hat N_t (1 - r_t), \quad
        U_t = \hat U_t + N_{t-1} r_t \\
    \text{none:}\quad & E_t = \hat E_t, \quad N_t = \hat N_t, \quad U_t = \hat U_t \\
    S_t &= H(U_t - θ)

:math:`U_t` depends on the past only through the currents, so the adjoint (reverse time) is,
with :math:`a_t = g^S_t σ'(U_t - θ) + ∂L/∂U_t|_{\text{direct}}`, :math:`\hat u_t = a_t c^U_t`
and :math:`c_t = 1 - r_t` where a reset multiplies, 1 otherwise:

.. math::
    \hat e_t &= α\, \hat e_{t+1} c^E_t + τ \hat u_t, \qquad
    \hat n_t = \bigl(β\, \hat n_{t+1} + [\text{subtract}]\, r_{t+1} a_{t+1}\bigr) c^N_t + τ \hat u_t \\
    ∂L/∂X_t &= \hat e_t - \hat n_t, \qquad ∂L/∂τ = \sum_t \hat u_t (α E_{t-1} + β N_{t-1}), \\
    ∂L/∂α &= \sum_{t \ge 1} \hat e_t E_{t-1} + ∂L/∂τ\, ∂τ/∂α, \qquad
    ∂L/∂β = \sum_{t \ge 1} \hat n_t N_{t-1} + ∂L/∂τ\, ∂τ/∂β \\
    ∂L/∂θ &= -\sum_t g^S_t σ'(U_t - θ) - [\text{subtract}] \sum_{t \ge 1} α\, \hat e_{t+1} r_t

(:math:`∂τ/∂α`, :math:`∂τ/∂β` by autograd: :math:`τ` is computed outside the fused function).
Only :math:`U` is kept for the backward pass (and :math:`E`, :math:`N` when :math:`α` or
:math:`β` is learnt). The loop is PyTorch (any device): a few elementwise operations per step.
"""

from __future__ import annotations

import torch

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


class Alpha(SpikingNeuron):
    r"""Alpha neuron with snnTorch ``Alpha`` semantics over ``[T, B, ...]``.

    Example::

        >>> neuron = Alpha(alpha=0.9, beta=0.8)
        >>> spikes, mem = neuron(torch.rand(100, 32, 10), return_mem=True)

    Args:
        alpha: decay of the excitatory current, in (0, 1], greater than ``beta``.
        beta: decay of the inhibitory current, in [0, 1).
        threshold: firing threshold :math:`θ > 0`.
        reset_mechanism: ``"zero"`` (snnTorch's default for ``Alpha``), ``"subtract"`` or ``"none"``.
        learn_alpha, learn_beta, learn_threshold: make the scalar trainable (clamped to [0, 1]
            as in snnTorch).
        surrogate: spike surrogate gradient; snnTorch's default ``ATan(alpha=2)`` if omitted.
    """

    def __init__(
        self,
        *,
        surrogate: Surrogate | None = None,
        alpha: float = 0.9,
        beta: float = 0.8,
        threshold: float = 1.0,
        reset_mechanism: ResetMechanism = "zero",
        learn_alpha: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
    ):
        super().__init__()
        self.surrogate = check_surrogate(surrogate)
        self.reset_mechanism = check_reset(reset_mechanism)
        alpha, beta = check_unit_interval("alpha", alpha), check_unit_interval("beta", beta)
        if not alpha > beta:
            raise ValueError(f"alpha must be greater than beta, got alpha {alpha} and beta {beta}")
        scalar(self, "alpha", alpha, learn_alpha)
        scalar(self, "beta", beta, learn_beta)
        scalar(self, "threshold", check_positive("threshold", threshold), learn_threshold)

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha.item():g}, beta={self.beta.item():g}, threshold={self.threshold.item():g}, "
            f"reset_mechanism={self.reset_mechanism!r}, surrogate={self.surrogate!r}"
        )

    def simulate(self, x, return_mem):
        alpha = self.alpha.clamp(0, 1).to(x.dtype)
        beta = self.beta.clamp(0, 1).to(x.dtype)
        threshold = self.threshold.to(x.dtype)
        tau = torch.log(alpha) / (torch.log(beta) - torch.log(alpha)) + 1  # snnTorch's tau_alpha
        if needs_grad(x, alpha, beta, threshold):
            return _AlphaFunction.apply(x, alpha, beta, tau, threshold, self.surrogate, self.reset_mechanism)
        with torch.no_grad():
            spikes, mem, _, _ = alpha_forward(x, alpha, beta, tau, threshold, self.reset_mechanism, return_mem, False)
        return spikes, mem


def alpha_forward(x, alpha, beta, tau, threshold, reset, keep_mem, keep_currents):
    """Spikes, the membrane (``keep_mem``) and both currents (``keep_currents``), each ``[T, ...]``."""
    steps = x.shape[0]
    spikes = step_buffer(x)
    mem = step_buffer(x) if keep_mem else step_buffer(x, steps=2)
    exc = step_buffer(x) if keep_currents else step_buffer(x, steps=2)
    inh = step_buffer(x) if keep_currents else step_buffer(x, steps=2)
    zeros = torch.zeros_like(x[0])
    neg_threshold = -threshold

    def at(buffer, t, kept):
        return buffer[t] if kept else buffer[t % 2]

    for t in range(steps):
        e, n, u = at(exc, t, keep_currents), at(inh, t, keep_currents), at(mem, t, keep_mem)
        e_prev = zeros if t == 0 else at(exc, t - 1, keep_currents)
        n_prev = zeros if t == 0 else at(inh, t - 1, keep_currents)
        torch.mul(e_prev, alpha, out=e)  # snnTorch's order, term for term
        e.add_(x[t])
        torch.mul(n_prev, beta, out=n)
        n.sub_(x[t])
        torch.add(e, n, out=u)
        u.mul_(tau)
        if t > 0 and reset != "none":
            r = spikes[t - 1]
            if reset == "subtract":
                e.addcmul_(r, neg_threshold)
                n.addcmul_(n, r, value=-1)
                u.addcmul_(n_prev, r)
            else:
                e.addcmul_(e, r, value=-1)
                n.addcmul_(n, r, value=-1)
                u.addcmul_(u, r, value=-1)
        torch.gt(u, threshold, out=spikes[t])
    return spikes, (mem if keep_mem else None), (exc if keep_currents else None), (inh if keep_currents else None)


class _AlphaFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, beta, tau, threshold, surrogate, reset):
        want_currents = any(ctx.needs_input_grad[1:4])
        spikes, mem, exc, inh = alpha_forward(x, alpha, beta, tau, threshold, reset, True, want_currents)
        ctx.save_for_backward(mem, exc, inh, alpha, beta, tau, threshold)
        ctx.surrogate, ctx.reset = surrogate, reset
        ctx.set_materialize_grads(False)
        return spikes, mem

    @staticmethod
    def backward(ctx, grad_spikes, grad_mem):
        mem, exc, inh, alpha, beta, tau, threshold = ctx.saved_tensors
        reset = ctx.reset
        want = ctx.needs_input_grad
        steps = mem.shape[0]
        fired = mem > threshold  # S_t = r_{t+1}
        a = step_buffer(mem)  # a_t = ∂L/∂U_t
        spike_sum = None
        if grad_spikes is not None:
            torch.mul(grad_spikes, ctx.surrogate.derivative(mem - threshold), out=a)
            if want[4]:
                spike_sum = a.sum()
        else:
            a.zero_()
        if grad_mem is not None:
            a.add_(grad_mem)
        kept = None  # c_t = 1 - r_t for t >= 1 (r_0 = 0)
        if reset != "none":
            kept = torch.ones_like(mem)
            kept[1:] = ~fired[:-1]
        u_hat = a * kept if reset == "zero" else a
        e_hat, n_hat = step_buffer(mem), step_buffer(mem)
        for t in range(steps - 1, -1, -1):
            e, n = e_hat[t], n_hat[t]
            torch.mul(u_hat[t], tau, out=e)
            n.copy_(e)
            if t + 1 < steps:
                from_e = e_hat[t + 1] * alpha
                from_n = n_hat[t + 1] * beta
                if reset == "subtract":
                    from_n.addcmul_(a[t + 1], fired[t].to(mem.dtype))
                if reset == "zero":
                    from_e.mul_(kept[t])
                if reset != "none":
                    from_n.mul_(kept[t])
                e.add_(from_e)
                n.add_(from_n)
        grad_x = e_hat - n_hat if want[0] else None
        grad_alpha = grad_beta = grad_tau = grad_threshold = None
        if want[1]:
            grad_alpha = torch.sum(e_hat[1:] * exc[:-1])
        if want[2]:
            grad_beta = torch.sum(n_hat[1:] * inh[:-1])
        if want[3]:
            grad_tau = torch.sum(u_hat[1:] * (alpha * exc[:-1] + beta * inh[:-1]))
        if want[4]:
            grad_threshold = -spike_sum if spike_sum is not None else mem.new_zeros(())
            if reset == "subtract" and steps > 2:  # E_t = Ê_t - θ r_t, ∂L/∂E_t = α ê_{t+1}, r_t = S_{t-1}
                grad_threshold = grad_threshold - alpha * torch.sum(e_hat[2:] * fired[:-2])
        return grad_x, grad_alpha, grad_beta, grad_tau, grad_threshold, None, None
