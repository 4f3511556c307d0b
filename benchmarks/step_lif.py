"""A LIF neuron written in snnframe's per-step form: what a plugin author writes (10 lines of code).

Equal to the built-in ``leaky`` (snnTorch's ``Leaky``): same spikes and membrane, bitwise, and
the same gradients up to float rounding (``tests/test_engine_stepwise.py``). The step benchmark
trains the CSNN with it beside the built-in, whose fused numba kernels it is measured against.
"""

from snnframe.engine import StepNeuron, check_unit_interval


class StepLIF(StepNeuron):
    """U_t = β U_{t-1} + X_t per step; the engine adds firing, reset, surrogate and backward."""

    def __init__(self, *, beta: float = 0.5, **options):
        super().__init__(**options)  # threshold, reset_mechanism, surrogate, learn_threshold
        self.beta = check_unit_interval("beta", beta)

    def charge(self, x, mem):
        return self.beta * mem + x
