r"""``leaky``: snnTorch's first-order leaky integrate-and-fire neuron, run over all steps at once.

The module holds the parameters; the time loop is the engine's fused LIF scan
(:func:`snnframe.engine.lif.lif`, whose docstring gives the update, the three resets and the
adjoint recurrence of the backward pass). Equal to snnTorch's ``Leaky`` with its defaults
(``reset_delay=True``): the same spikes and membrane, bit for bit.
"""

from __future__ import annotations

from snnframe.engine.lif import lif
from snnframe.engine.neuron import (
    ResetMechanism,
    SpikingNeuron,
    check_positive,
    check_reset,
    check_surrogate,
    check_unit_interval,
    scalar,
)
from snnframe.engine.surrogate import Surrogate


class Leaky(SpikingNeuron):
    r"""Leaky integrate-and-fire neuron with snnTorch ``Leaky`` semantics over ``[T, B, ...]``.

    Example::

        >>> lif = Leaky(beta=0.5, surrogate=FastSigmoid(slope=25))
        >>> spikes, mem = lif(torch.rand(50, 128, 10), return_mem=True)   # both [50, 128, 10]

    Args:
        surrogate: spike surrogate gradient; snnTorch's default ``ATan(alpha=2)`` if omitted.
        beta: membrane decay per step, in [0, 1] (clamped to [0, 1] when learnt, as snnTorch does).
        threshold: firing threshold :math:`θ > 0`.
        reset_mechanism: ``"subtract"`` (:math:`θ`), ``"zero"`` or ``"none"`` after a spike.
        learn_beta, learn_threshold: make :math:`β` / :math:`θ` trainable scalars.
    """

    low_precision_input = True  # the engine's lif() reads float16/bfloat16 input on its Triton path

    def __init__(
        self,
        *,
        surrogate: Surrogate | None = None,
        beta: float = 0.5,
        threshold: float = 1.0,
        reset_mechanism: ResetMechanism = "subtract",
        learn_beta: bool = False,
        learn_threshold: bool = False,
    ):
        super().__init__()
        self.surrogate = check_surrogate(surrogate)
        self.reset_mechanism = check_reset(reset_mechanism)
        scalar(self, "beta", check_unit_interval("beta", beta), learn_beta)
        scalar(self, "threshold", check_positive("threshold", threshold), learn_threshold)

    def extra_repr(self) -> str:
        return (
            f"beta={self.beta.item():g}, threshold={self.threshold.item():g}, "
            f"reset_mechanism={self.reset_mechanism!r}, surrogate={self.surrogate!r}"
        )

    def simulate(self, x, return_mem):
        return lif(x, self.beta.clamp(0, 1), self.threshold, self.surrogate, self.reset_mechanism, return_mem)
