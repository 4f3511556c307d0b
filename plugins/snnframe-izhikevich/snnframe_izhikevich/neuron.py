r"""The Izhikevich (2003) neuron as a snnframe neuron layer.

.. math::

    v' = 0.04 v^2 + 5 v + 140 - u + s I, \qquad u' = a (b v - u)

with :math:`v` in mV and time in ms, integrated with Euler steps of ``dt`` ms. A spike is
emitted when :math:`v \ge v_{peak}` (30 mV); then :math:`v \leftarrow c` and
:math:`u \leftarrow u + d`. For training, the spike is ``surrogate((v - v_peak) / (v_peak - c))``
and, as in snnTorch, the reset is detached from the graph.

The defaults are the "regular spiking" cortical neuron (a=0.02, b=0.2, c=-65, d=8).
``input_scale`` maps the network's input current (order 1) to the model's units.

    >>> neuron = Izhikevich()
    >>> spikes, v = neuron(torch.full((200, 1, 1), 1.0), return_mem=True)   # [T, B, ...]
"""

from __future__ import annotations

import torch

from snnframe.engine.neuron import SpikingNeuron, check_positive, check_surrogate
from snnframe.engine.surrogate import Surrogate


class Izhikevich(SpikingNeuron):
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
        super().__init__()
        if v_peak <= c:
            raise ValueError(f"v_peak must be above the reset potential c, got v_peak={v_peak}, c={c}")
        self.a, self.b, self.c, self.d, self.v_peak = a, b, c, d, v_peak
        self.dt = check_positive("dt", dt)
        self.input_scale = input_scale
        self.surrogate = check_surrogate(surrogate)

    def simulate(self, x: torch.Tensor, return_mem: bool):
        v = torch.full_like(x[0], self.c)
        u = self.b * v
        spikes, mems = [], []
        for current in x * self.input_scale:
            v, u = (
                v + self.dt * (0.04 * v * v + 5 * v + 140 - u + current),
                u + self.dt * self.a * (self.b * v - u),
            )
            spike = self.surrogate((v - self.v_peak) / (self.v_peak - self.c))
            fired = spike.detach()
            if return_mem:
                mems.append(v.clamp(max=self.v_peak))
            v = torch.where(fired > 0, torch.full_like(v, self.c), v)
            u = u + self.d * fired
            spikes.append(spike)
        return torch.stack(spikes), (torch.stack(mems) if return_mem else None)

    def extra_repr(self) -> str:
        return f"a={self.a}, b={self.b}, c={self.c}, d={self.d}, dt={self.dt}, input_scale={self.input_scale}"
