r"""Neurons written as their per-step update only: :class:`StepNeuron`.

A subclass writes :meth:`StepNeuron.charge`, the update of its state variables from one step's
input current; the engine runs the time loop, firing, the reset variants, the surrogate
gradient, ``return_mem`` and a memory-lean backward pass. A LIF neuron equal to the built-in
``leaky`` is::

    class LIF(StepNeuron):
        def __init__(self, *, beta: float = 0.5, **options):
            super().__init__(**options)  # threshold, reset_mechanism, surrogate, learn_threshold
            self.beta = check_unit_interval("beta", beta)

        def charge(self, x, mem):
            return self.beta * mem + x

The convention is snnTorch's (``reset_delay=True``): a spike resets the membrane at the start
of the next step. With state :math:`s` (the membrane :math:`U` is its last variable), threshold
:math:`θ` and :math:`r_t = S_{t-1}` (detached):

.. math::
    s'_{t-1} &= \mathrm{reset}(s_{t-1}, r_t) \quad \text{(zero: } U \leftarrow U (1 - r_t)\text{; else unchanged)} \\
    s_t &= \mathrm{charge}(X_t, s'_{t-1}), \qquad U_t \leftarrow U_t - θ r_t \ \text{(subtract)} \\
    S_t &= H(U_t - θ)

A neuron with another reset (Izhikevich: :math:`v \leftarrow c`, :math:`u \leftarrow u + d`)
overrides :meth:`StepNeuron.reset`; one whose state does not start at zero overrides
:meth:`StepNeuron.initial_state`.

**Execution.** An affine ``charge`` (``a·U + b·X + c`` with the same scalars for every neuron,
one state variable, the engine's reset and initial state) runs on the fused LIF scan
(:func:`snnframe.engine.lif.lif`, numba kernels on CPU): the per-step LIF above runs exactly the
built-in ``leaky``'s code. Any other ``charge`` runs on the generic loop: the forward runs
without autograd and keeps each state variable's ``[T, ...]`` history; the backward recomputes
chunks of steps with autograd on, takes the diagonal Jacobian of ``charge`` (it must act
elementwise; checked once), runs the adjoint recurrence through the chunk and gets the input
and parameter gradients of the chunk in one call. The input :math:`X` is kept too only when
``charge``'s backward needs its value (``β·U + X`` does not; ``k·X`` with a learnt ``k`` does):
the engine finds out once per module by recording what autograd saves for two different
inputs. The initial state is a constant (no gradient flows into it).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from snnframe.engine.buffers import step_buffer
from snnframe.engine.lif import lif
from snnframe.engine.neuron import (
    ResetMechanism,
    SpikingNeuron,
    check_reset,
    check_surrogate,
    needs_grad,
    scalar,
)
from snnframe.engine.surrogate import Surrogate

State = tuple[torch.Tensor, ...]


class StepNeuron(SpikingNeuron):
    """Base class of neurons defined by :meth:`charge`; see the module documentation.

    Args:
        threshold: firing threshold :math:`θ`, compared with the membrane (the last state); any
            finite number (subclasses with a sign convention check it themselves).
        reset_mechanism: ``"subtract"`` (:math:`θ`), ``"zero"`` or ``"none"``; ignored by a
            subclass that overrides :meth:`reset`.
        surrogate: spike surrogate gradient; snnTorch's default ``ATan(alpha=2)`` if omitted.
        learn_threshold: make :math:`θ` a trainable scalar.

    Class attributes: ``state_names`` names the state variables (default ``("mem",)``; the
    membrane is the last); ``surrogate_scale`` scales :math:`U - θ` before the surrogate (the
    gradient is :math:`σ'((U - θ) c)\\, c`); ``fuse_affine = False`` keeps an affine ``charge``
    on the generic loop.
    """

    state_names: tuple[str, ...] = ("mem",)
    surrogate_scale: float = 1.0
    fuse_affine: bool = True  # run an affine charge on the fused LIF scan (False: always the generic loop)

    def __init__(
        self,
        *,
        threshold: float = 1.0,
        reset_mechanism: ResetMechanism = "subtract",
        surrogate: Surrogate | None = None,
        learn_threshold: bool = False,
    ):
        super().__init__()
        self.surrogate = check_surrogate(surrogate)
        self.reset_mechanism = check_reset(reset_mechanism)
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold}")
        scalar(self, "threshold", threshold, learn_threshold)
        self._probed: dict[Any, bool] = {}  # probed properties of charge (see _probe)

    # -- what a subclass writes ------------------------------------------------------------

    def charge(self, x: torch.Tensor, *state: torch.Tensor) -> torch.Tensor | State:
        """The state after one step of input ``x`` (all ``[B, ...]``): one tensor or a tuple.

        Elementwise PyTorch operations on ``x``, the state and the module's parameters.
        """
        raise NotImplementedError

    def initial_state(self, x0: torch.Tensor) -> State:
        """The state before the first step (zeros), shaped like one step ``x0``."""
        return tuple(torch.zeros_like(x0) for _ in self.state_names)

    def reset(self, state: State, spiked: torch.Tensor) -> State:
        """The state after a spike, applied before the next :meth:`charge`; ``spiked`` is 0/1.

        The default handles ``reset_mechanism = "zero"`` (the membrane is zeroed); ``"subtract"``
        takes :math:`θ` off the charged membrane instead, and ``"none"`` does nothing.
        """
        if self.reset_mechanism != "zero":
            return state
        return (*state[:-1], state[-1] * (1 - spiked))

    # -- the engine ------------------------------------------------------------------------

    def extra_repr(self) -> str:
        return (
            f"threshold={self.threshold.item():g}, reset_mechanism={self.reset_mechanism!r}, "
            f"surrogate={self.surrogate!r}"
        )

    def simulate(self, x: torch.Tensor, return_mem: bool):
        coefficients = self.affine_coefficients(x)
        if coefficients is not None:  # U_t = a U_{t-1} + b X_t + c: the engine's fused LIF scan
            a, b, c = coefficients
            plain = not (b.requires_grad or c.requires_grad) and b.item() == 1 and c.item() == 0
            drive = x if plain else b * x + c
            return lif(drive, a, self.threshold, self.surrogate, self.reset_mechanism, return_mem)
        params = tuple(p for p in self.parameters() if p.requires_grad)
        if needs_grad(x, *params):
            keep_input = self.backward_needs_input(x)
            outputs = _StepFunction.apply(self, keep_input, len(params), x, *params)
            return outputs[0], outputs[-1]
        with torch.no_grad():
            spikes, states = run_steps(self, x, keep=return_mem)
        return spikes, (states[-1] if return_mem else None)

    def backward_needs_input(self, x: torch.Tensor) -> bool:
        """Whether :meth:`charge`'s backward needs the input's value (then the engine keeps ``x``)."""
        return self._probe("needs_input", x, lambda x0: _saves_input(self, x0))

    def affine_coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """``(a, b, c)`` (0-d, differentiable in the parameters) when :meth:`charge` is
        ``a·U + b·X + c`` with the same scalars for every neuron and the reset and initial state
        are the engine's own; else ``None``."""
        if (
            not self.fuse_affine
            or len(self.state_names) != 1
            or self.surrogate_scale != 1.0
            or type(self).reset is not StepNeuron.reset
            or type(self).initial_state is not StepNeuron.initial_state
        ):
            return None
        if not self._probe("affine", x, lambda x0: _is_scalar_affine(self, x0)):
            return None
        one = x.new_ones((1,) * (x.dim() - 1))
        c = as_state(self.charge(0 * one, 0 * one))[0]
        a = as_state(self.charge(0 * one, one))[0] - c
        b = as_state(self.charge(one, 0 * one))[0] - c
        return a.reshape(()), b.reshape(()), c.reshape(())

    def _probe(self, what: str, x: torch.Tensor, probe) -> bool:
        """A property of :meth:`charge`, found once per input dtype/device and trainable-parameter set."""
        key = (what, x.dtype, x.device, tuple(p.requires_grad for p in self.parameters()))
        if key not in self._probed:
            self._probed[key] = probe(x[0, :1])
        return self._probed[key]


def as_state(value: torch.Tensor | State) -> State:
    return value if isinstance(value, tuple) else (value,)


def run_steps(neuron: StepNeuron, x: torch.Tensor, keep: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Spikes ``[T, ...]`` and each state variable (``[T, ...]`` if ``keep``, else the last step's)."""
    steps = x.shape[0]
    threshold = neuron.threshold.to(x.dtype)
    spikes = step_buffer(x)
    state = neuron.initial_state(x[0])
    kept = [step_buffer(x) for _ in state] if keep else []
    subtract = neuron.reset_mechanism == "subtract" and type(neuron).reset is StepNeuron.reset
    for t in range(steps):
        if t > 0:
            state = neuron.reset(state, spikes[t - 1])
        state = as_state(neuron.charge(x[t], *state))
        if t == 0:
            _check_shapes(neuron, state, x[0])
        if subtract and t > 0:
            state = (*state[:-1], state[-1] - threshold * spikes[t - 1])
        torch.gt(state[-1], threshold, out=spikes[t])
        for buffer, value in zip(kept, state):
            buffer[t].copy_(value)
    return spikes, kept if keep else list(state)


def _check_shapes(neuron: StepNeuron, state: State, step: torch.Tensor) -> None:
    if len(state) != len(neuron.state_names):
        raise ValueError(
            f"{type(neuron).__name__}.charge returned {len(state)} state variables; "
            f"state_names lists {len(neuron.state_names)}"
        )
    for value in state:
        if value.shape != step.shape:
            raise ValueError(
                f"{type(neuron).__name__}.charge returned a state of shape {tuple(value.shape)} "
                f"for steps of shape {tuple(step.shape)}; it must keep the shape (elementwise)"
            )


class _StepFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, neuron: StepNeuron, keep_input: bool, n_params: int, x, *params):
        spikes, states = run_steps(neuron, x, keep=True)
        ctx.neuron, ctx.n_params = neuron, n_params
        ctx.save_for_backward(x if keep_input else None, *states)
        ctx.input_shape, ctx.input_dtype = x.shape, x.dtype
        ctx.set_materialize_grads(False)
        return (spikes, *states)

    @staticmethod
    def backward(ctx, grad_spikes, *grad_states):
        neuron = ctx.neuron
        x, *states = ctx.saved_tensors
        steps, n_states = states[0].shape[0], len(states)
        params = [p for p in neuron.parameters() if p.requires_grad]
        mem = states[-1]
        threshold = neuron.threshold.to(mem.dtype)
        subtract = neuron.reset_mechanism == "subtract" and type(neuron).reset is StepNeuron.reset
        want_threshold = neuron.threshold.requires_grad
        grad_x = step_buffer(mem) if ctx.needs_input_grad[3] else None
        grad_params: list[torch.Tensor | None] = [None] * len(params)
        grad_threshold = mem.new_zeros(())
        chunk = max(1, min(steps, CHUNK_ELEMENTS // max(1, mem[0].numel())))
        carry: list[torch.Tensor | None] = [None] * n_states  # ∂L/∂s_{t0 - 1} from the chunk after it
        for t1 in range(steps, 0, -chunk):
            t0 = max(0, t1 - chunk)
            own = _own_cotangents(neuron, mem, threshold, grad_spikes, grad_states, t0, t1)
            if want_threshold and grad_spikes is not None:
                grad_threshold -= own.spike_part_sum
            with torch.enable_grad():
                previous, start = _previous_states(neuron, states, threshold, t0, t1)
                x_chunk = x[t0:t1] if x is not None else mem.new_zeros(()).expand(mem[t0:t1].shape)
                x_chunk = x_chunk.detach().requires_grad_()
                charged = as_state(neuron.charge(x_chunk, *start))
            jacobian = _diagonal_jacobian(charged, previous)
            cotangents = _scan(own.values, jacobian, carry)  # [K, ...] per state variable
            carry = _pull_back(jacobian, [c[0] for c in cotangents], t0)
            if want_threshold and subtract:
                lo = max(t0, 1)
                if lo < t1:
                    fired = mem[lo - 1 : t1 - 1] > threshold
                    grad_threshold -= (cotangents[-1][lo - t0 :] * fired).sum()
            used = [(c, o) for c, o in zip(cotangents, charged) if o.requires_grad]
            inputs = [x_chunk, *params]
            grads = (
                torch.autograd.grad([o for _, o in used], inputs, [c for c, _ in used], allow_unused=True)
                if used
                else (None,) * len(inputs)
            )
            if grad_x is not None:
                if grads[0] is None:
                    grad_x[t0:t1].zero_()
                else:
                    grad_x[t0:t1].copy_(grads[0])
            for i, grad in enumerate(grads[1:]):
                if grad is not None:
                    grad_params[i] = grad if grad_params[i] is None else grad_params[i] + grad
        for i, p in enumerate(params):
            if p is neuron.threshold:
                grad_params[i] = grad_threshold if grad_params[i] is None else grad_params[i] + grad_threshold
        return (None, None, None, grad_x, *grad_params)


# Steps of the backward pass handled together: a chunk's temporaries hold about this many
# elements each, so they stay in cache and a few operations cover many steps.
CHUNK_ELEMENTS = 1 << 20


class _Own:
    """The cotangents a chunk's states receive directly (not through the next step)."""

    def __init__(self, values, spike_part_sum):
        self.values, self.spike_part_sum = values, spike_part_sum


def _own_cotangents(neuron, mem, threshold, grad_spikes, grad_states, t0, t1) -> _Own:
    """∂L/∂s_t from the spikes (surrogate), and from the states' own outputs, for t in [t0, t1)."""
    values = [None if g is None else g[t0:t1] for g in grad_states]
    spike_sum = None
    if grad_spikes is not None:
        scale = neuron.surrogate_scale
        d = mem[t0:t1] - threshold
        if scale != 1.0:
            d = d * scale
        from_spike = grad_spikes[t0:t1] * neuron.surrogate.derivative(d)
        if scale != 1.0:
            from_spike = from_spike * scale
        if neuron.threshold.requires_grad:
            spike_sum = from_spike.sum()
        values[-1] = from_spike if values[-1] is None else values[-1] + from_spike
    return _Own(values, spike_sum)


def _previous_states(neuron, states, threshold, t0, t1):
    """Leaves ``s_{t-1}`` for t in [t0, t1) (the initial state for t = 0), and them after the reset."""
    if t0 > 0:
        raw = [s[t0 - 1 : t1 - 1] for s in states]
        spiked = (states[-1][t0 - 1 : t1 - 1] > threshold).to(states[-1].dtype)
    else:
        first = neuron.initial_state(states[-1][0])
        raw = [torch.cat([f.unsqueeze(0), s[: t1 - 1]]) for f, s in zip(first, states)]
        spiked = torch.cat([torch.zeros_like(states[-1][:1]), (states[-1][: t1 - 1] > threshold).to(states[-1].dtype)])
    previous = tuple(r.detach().requires_grad_() for r in raw)
    return previous, neuron.reset(previous, spiked)


def _diagonal_jacobian(charged, previous):
    """``J[j][i] = ∂s_j/∂s'_i`` per element and step (``charge`` acts elementwise), ``None`` where zero."""
    jacobian = []
    for out in charged:
        if not out.requires_grad:
            jacobian.append([None] * len(previous))
            continue
        grads = torch.autograd.grad(out, previous, torch.ones_like(out), retain_graph=True, allow_unused=True)
        jacobian.append([None if g is None else g.detach() for g in grads])
    return jacobian


def _scan(own, jacobian, carry):
    """``G_t = own_t + J_{t+1}ᵀ G_{t+1}`` backwards through one chunk; ``carry`` is the last step's inflow."""
    n_states = len(own)
    steps = next(v.shape[0] for v in [*own, *[j for row in jacobian for j in row]] if v is not None)
    like = next(v for v in [*own, *[j for row in jacobian for j in row]] if v is not None)
    out = [torch.empty_like(like) for _ in range(n_states)]
    inflow = carry
    for k in range(steps - 1, -1, -1):
        for i in range(n_states):
            value = own[i][k] if own[i] is not None else None
            if inflow[i] is not None:
                value = inflow[i] if value is None else value + inflow[i]
            if value is None:
                out[i][k].zero_()
            else:
                out[i][k].copy_(value)
        if k > 0:
            inflow = _pull_back(jacobian, [o[k] for o in out], k, local=True)
    return out


def _pull_back(jacobian, cotangents, k, local=False):
    """``Σ_j J[j][i] G_j`` at chunk-local step ``k`` (``local``) or at the chunk's first step."""
    at = k if local else 0
    result = []
    for i in range(len(cotangents)):
        total = None
        for j, g in enumerate(cotangents):
            factor = jacobian[j][i]
            if factor is None:
                continue
            term = factor[at] * g
            total = term if total is None else total + term
        result.append(total)
    return result


def _saves_input(neuron: StepNeuron, x0: torch.Tensor) -> bool:
    """Whether autograd keeps anything that depends on ``x``'s value when differentiating ``charge``.

    Also checks that ``charge`` acts elementwise, which the backward pass relies on.
    """
    state = tuple(torch.randn_like(s) for s in neuron.initial_state(x0))

    def saved(value: float) -> list[torch.Tensor]:
        packed: list[torch.Tensor] = []
        x = torch.full_like(x0, value).requires_grad_()
        start = tuple(s.clone().requires_grad_() for s in state)
        with (
            torch.enable_grad(),
            torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t.detach().clone()) or t, lambda t: t),
        ):
            charged = as_state(neuron.charge(x, *start))
        _check_elementwise(neuron, charged, (x, *start))
        return packed

    first, second = saved(0.375), saved(-1.25)
    if len(first) != len(second):
        return True
    return any(a.shape != b.shape or not torch.equal(a, b) for a, b in zip(first, second))


def _check_elementwise(neuron: StepNeuron, charged: State, inputs: tuple[torch.Tensor, ...]) -> None:
    """A random cotangent must pull back as the Jacobian's diagonal times it (no coupling between elements)."""
    for out in charged:
        if not out.requires_grad:
            continue
        weights = torch.rand_like(out) + 0.5
        scaled = torch.autograd.grad(out, inputs, weights, retain_graph=True, allow_unused=True)
        diagonal = torch.autograd.grad(out, inputs, torch.ones_like(out), retain_graph=True, allow_unused=True)
        for a, b in zip(scaled, diagonal):
            coupled = (a is None) != (b is None) or (a is not None and not torch.allclose(a, b * weights, rtol=1e-4))
            if coupled:
                raise ValueError(
                    f"{type(neuron).__name__}.charge must act elementwise (each neuron's next state from its own "
                    "input and state); a layer that couples neurons subclasses SpikingNeuron instead"
                )


def _is_scalar_affine(neuron: StepNeuron, x0: torch.Tensor) -> bool:
    """Whether ``charge(x, U) = a·U + b·x + c`` with scalars ``a, b, c`` (checked on random inputs)."""
    with torch.no_grad():
        zero = torch.zeros_like(x0)
        c = as_state(neuron.charge(zero, zero))[0]
        a = as_state(neuron.charge(zero, torch.ones_like(x0)))[0] - c
        b = as_state(neuron.charge(torch.ones_like(x0), zero))[0] - c
        if any(t.shape != x0.shape or not bool((t == t.flatten()[0]).all()) for t in (a, b, c)):
            return False
        a, b, c = (t.flatten()[0] for t in (a, b, c))
        tolerance = 1e-10 if x0.dtype == torch.float64 else 1e-5
        for scale in (1.0, 7.0):
            x, mem = torch.randn_like(x0) * scale, torch.randn_like(x0) * scale
            got = as_state(neuron.charge(x, mem))[0]
            if not torch.allclose(got, a * mem + b * x + c, rtol=tolerance, atol=tolerance * scale):
                return False
    return True
