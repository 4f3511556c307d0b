r"""The time-step convention between snnframe's discrete neurons and NIR's continuous ones.

NIR writes neurons as ODEs; snnframe (like snnTorch and SpikingJelly) steps them. One forward-Euler
step of length ``dt`` turns NIR's ``LIF`` (``tau dv/dt = (v_leak - v) + r I``; spike when
``v > v_threshold``, then ``v = v_reset``) into

.. math::
    U_t = β U'_{t-1} + g X_t + c, \quad S_t = H(U_t - θ), \quad U'_t = v_{reset} \text{ if } S_t \text{ else } U_t

with :math:`β = 1 - dt/τ`, input gain :math:`g = r\,dt/τ` and drive :math:`c = v_{leak}\,dt/τ`.
``CubaLIF`` adds a synaptic current :math:`I_t = α I_{t-1} + w X_t` (:math:`α = 1 - dt/τ_{syn}`,
:math:`w = w_{in}\,dt/τ_{syn}`) that feeds the membrane instead of :math:`X_t`. snnTorch writes
:math:`g = w = 1`, :math:`c = 0`, :math:`v_{reset} = 0` with ``dt = 1e-4``: ``tau = dt / (1 - beta)``,
``r = tau / dt``, ``w_in = tau_syn / dt``. So does this plugin (:data:`DT`); a NIR file does not
record ``dt``, which is why the graph's metadata carries ``snnframe.dt``.

:class:`Dynamics` is one spiking layer in that discrete form; :func:`to_nodes` writes it as NIR
nodes and :func:`from_nodes` reads NIR nodes back.
"""

from __future__ import annotations

import dataclasses

import numpy as np

DT = 1e-4  # snnTorch's and SpikingJelly's NIR time step (seconds)
NEURON_TYPES = ("LIF", "CubaLIF", "IF", "LI", "CubaLI", "I")  # the NIR neurons this plugin reads
_GAIN_RTOL = 1e-5  # a gain within this of 1 is float32 rounding of tau and r (snnTorch's check, too)


class ConventionError(ValueError):
    """Dynamics that no NIR node expresses, or NIR fields outside what this plugin reads."""


@dataclasses.dataclass
class Dynamics:
    """A spiking layer in discrete form (arrays broadcast to the layer's shape, float64).

    ``alpha`` is ``None`` without a synaptic current; ``reset = False`` is a neuron that never
    resets (NIR ``LI`` + ``Threshold``).
    """

    beta: np.ndarray
    threshold: np.ndarray
    gain: np.ndarray | float = 1.0
    offset: np.ndarray | float = 0.0
    v_reset: np.ndarray | float = 0.0
    alpha: np.ndarray | None = None
    syn_gain: np.ndarray | float = 1.0
    reset: bool = True

    @property
    def synaptic(self) -> bool:
        return self.alpha is not None

    def arrays(self) -> dict[str, np.ndarray]:
        """Every field as a float64 array (``alpha`` and ``syn_gain`` only when synaptic)."""
        names = ["beta", "threshold", "gain", "offset", "v_reset"] + (["alpha", "syn_gain"] if self.synaptic else [])
        return {name: np.asarray(getattr(self, name), dtype=np.float64) for name in names}


def _f32(value, shape) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(value, dtype=np.float64), shape).astype(np.float32))


def to_nodes(d: Dynamics, shape: tuple[int, ...], dt: float = DT, metadata: dict | None = None) -> list:
    """The NIR node(s) for ``d`` on a layer of ``shape``: one neuron node, or ``LI``/``CubaLI``/``I`` + ``Threshold``.

    Every field is a float32 array of the full layer shape (NIR's type inference needs it).
    ``ConventionError`` for a decay of 1 where the node needs a finite time constant.
    """
    import nir

    a = d.arrays()
    beta, gain, offset = a["beta"], a["gain"], a["offset"]
    meta = dict(metadata or {})
    leaky = bool(np.all(beta < 1))
    if not leaky and not np.all(beta == 1):
        raise ConventionError("some neurons have beta = 1 and others beta < 1; NIR needs one node type per layer")
    nodes = []
    if d.synaptic:
        alpha, syn_gain = a["alpha"], a["syn_gain"]
        if not leaky or not np.all(alpha < 1):
            raise ConventionError(
                "a synaptic neuron with alpha = 1 or beta = 1 has an infinite time constant, which NIR's CubaLIF "
                "cannot hold; train with alpha and beta below 1"
            )
        tau_syn, tau_mem = dt / (1 - alpha), dt / (1 - beta)
        fields = dict(
            tau_syn=_f32(tau_syn, shape),
            tau_mem=_f32(tau_mem, shape),
            r=_f32(gain / (1 - beta), shape),
            v_leak=_f32(offset / (1 - beta), shape),
            w_in=_f32(syn_gain / (1 - alpha), shape),
        )
        if d.reset:
            thresholds = dict(v_threshold=_f32(d.threshold, shape), v_reset=_f32(d.v_reset, shape))
            nodes.append(nir.CubaLIF(**fields, **thresholds, metadata=meta))
        else:
            nodes.append(nir.CubaLI(**fields, metadata=meta))
    elif leaky:
        tau = dt / (1 - beta)
        fields = dict(tau=_f32(tau, shape), r=_f32(gain / (1 - beta), shape), v_leak=_f32(offset / (1 - beta), shape))
        if d.reset:
            nodes.append(
                nir.LIF(**fields, v_threshold=_f32(d.threshold, shape), v_reset=_f32(d.v_reset, shape), metadata=meta)
            )
        else:
            nodes.append(nir.LI(**fields, metadata=meta))
    else:  # beta = 1: no leak
        if np.any(offset != 0):
            raise ConventionError("a neuron without leak (beta = 1) and a constant drive has no NIR node")
        if d.reset:
            nodes.append(
                nir.IF(
                    r=_f32(gain / dt, shape),
                    v_threshold=_f32(d.threshold, shape),
                    v_reset=_f32(d.v_reset, shape),
                    metadata=meta,
                )
            )
        else:
            nodes.append(nir.I(r=_f32(gain / dt, shape), metadata=meta))
    if not d.reset:
        nodes.append(nir.Threshold(threshold=_f32(d.threshold, shape)))
    return nodes


def _field(node, name: str) -> np.ndarray:
    return np.asarray(getattr(node, name), dtype=np.float64)


def from_nodes(neuron, threshold=None, dt: float = DT) -> Dynamics:
    """:class:`Dynamics` of a NIR neuron node (``threshold``: the ``Threshold`` node after an ``LI``/``CubaLI``/``I``).

    ``ConventionError`` for a time constant shorter than ``dt`` (then the file was written for another
    time step: Norse uses 1e-3).
    """
    import nir

    name = type(neuron).__name__

    def decay(tau: np.ndarray, what: str) -> np.ndarray:
        if np.any(~(tau > 0)):
            raise ConventionError(f"{name} has {what} <= 0 or not a number")
        if np.any(tau < dt * (1 - 1e-6)):
            raise ConventionError(
                f"{name} has {what} = {float(tau.min()):g} s, shorter than the time step dt = {dt:g} s, which makes "
                "the Euler step unstable (decay below 0); the file was written for a longer time step: set "
                "model.dt to it (a graph from Norse 1.1's to_nir needs model.dt = 1e-6 for Norse's default "
                "dt = 1e-3: it writes tau = dt * tau; see docs/nir.md)"
            )
        return np.clip(1.0 - dt / tau, 0.0, 1.0)

    def snap(gain: np.ndarray) -> np.ndarray | float:
        return 1.0 if np.allclose(gain, 1.0, rtol=_GAIN_RTOL, atol=0) else gain

    reset = not isinstance(neuron, (nir.LI, nir.CubaLI, nir.I))
    if reset:
        thr, v_reset = _field(neuron, "v_threshold"), _field(neuron, "v_reset")
    else:
        if threshold is None:
            raise ConventionError(f"{name} does not spike on its own; snnframe reads it only followed by a Threshold")
        thr, v_reset = _field(threshold, "threshold"), np.zeros(())
    if isinstance(neuron, (nir.IF, nir.I)):
        return Dynamics(np.ones(()), thr, snap(_field(neuron, "r") * dt), 0.0, v_reset, reset=reset)
    if isinstance(neuron, (nir.LIF, nir.LI)):
        tau = _field(neuron, "tau")
        beta = decay(tau, "tau")
        return Dynamics(
            beta, thr, snap(_field(neuron, "r") * dt / tau), _field(neuron, "v_leak") * dt / tau, v_reset, reset=reset
        )
    if isinstance(neuron, (nir.CubaLIF, nir.CubaLI)):
        tau_syn, tau_mem = _field(neuron, "tau_syn"), _field(neuron, "tau_mem")
        return Dynamics(
            decay(tau_mem, "tau_mem"),
            thr,
            snap(_field(neuron, "r") * dt / tau_mem),
            _field(neuron, "v_leak") * dt / tau_mem,
            v_reset,
            alpha=decay(tau_syn, "tau_syn"),
            syn_gain=snap(_field(neuron, "w_in") * dt / tau_syn),
            reset=reset,
        )
    raise ConventionError(f"{name} is not a neuron node")


def uniform(value) -> float | None:
    """The one value of an array whose elements are all equal, else ``None``."""
    array = np.asarray(value, dtype=np.float64)
    if array.size == 0:
        return None
    first = float(array.flat[0])
    return first if np.all(array == first) else None


def same_fields(a, b, rtol: float = 1e-6) -> bool:
    """Whether two NIR nodes of one type hold the same parameters (shapes equal, values within ``rtol``)."""
    if type(a) is not type(b):
        return False
    for name in a.__dataclass_fields__:
        if name in ("input_type", "output_type", "metadata"):
            continue
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, str) or isinstance(y, str):
            if x != y:
                return False
            continue
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.shape != y.shape and x.size != y.size:
            return False
        if not np.allclose(x.reshape(-1), y.reshape(-1), rtol=rtol, atol=0, equal_nan=True):
            return False
    return True
