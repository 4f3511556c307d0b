r"""The Izhikevich (2003) neuron as a snnframe neuron layer, in the engine's per-step form.

.. math::

    v' = 0.04 v^2 + 5 v + 140 - u + s I, \qquad u' = a (b v - u)

with :math:`v` in mV and time in ms, integrated with Euler steps of ``dt`` ms. A spike is
emitted when :math:`v > v_{peak}` (30 mV); then :math:`v \leftarrow c` and
:math:`u \leftarrow u + d` (the engine applies :meth:`Izhikevich.reset` before the next step).
For training, the surrogate sees :math:`(v - v_{peak}) / (v_{peak} - c)` and, as in snnTorch,
the reset is detached from the graph.

The defaults are the "regular spiking" cortical neuron (a=0.02, b=0.2, c=-65, d=8).
``input_scale`` maps the network's input current (order 1) to the model's units.

    >>> neuron = Izhikevich()
    >>> spikes, v = neuron(torch.full((200, 1, 1), 1.0), return_mem=True)   # [T, B, ...]
"""

from __future__ import annotations

import torch

from snnframe.engine import StepNeuron, Surrogate, check_positive


class Izhikevich(StepNeuron):
    state_names = ("u", "v")  # the engine compares the last one, v, with the threshold

    def __init__(
        self,
        *,
        a: float = 0.02,
        b: float = 0.2,
        c: float = -65.0,
        d: float = 8.0,
        v_peak: float = 30.0,
        dt: float = 1.0,
        input_scale: float = 10.0,
        surrogate: Surrogate | None = None,
    ):
        if v_peak <= c:
            raise ValueError(f"v_peak must be above the reset potential c, got v_peak={v_peak}, c={c}")
        super().__init__(threshold=v_peak, surrogate=surrogate)  # the reset is Izhikevich's own, below
        self.a, self.b, self.c, self.d, self.v_peak = a, b, c, d, v_peak
        self.dt = check_positive("dt", dt)
        self.input_scale = input_scale
        self.surrogate_scale = 1.0 / (v_peak - c)

    def initial_state(self, x0):
        v = torch.full_like(x0, self.c)
        return self.b * v, v

    def charge(self, x, u, v):
        du = self.a * (self.b * v - u)
        dv = 0.04 * v * v + 5 * v + 140 - u + self.input_scale * x
        return u + self.dt * du, v + self.dt * dv

    def reset(self, state, spiked):
        u, v = state
        return u + self.d * spiked, torch.where(spiked > 0, torch.full_like(v, self.c), v)

    def simulate(self, x, return_mem):
        spikes, v = super().simulate(x, return_mem)
        return spikes, (v.clamp(max=self.v_peak) if v is not None else None)  # the peak, as plotted

    def extra_repr(self) -> str:
        return f"a={self.a}, b={self.b}, c={self.c}, d={self.d}, dt={self.dt}, input_scale={self.input_scale}"
