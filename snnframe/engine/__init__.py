"""snnframe's multi-step engine: the public API that built-in and third-party plugins build on.

Neurons
    :class:`SpikingNeuron` (the contract: ``[T, B, ...]`` current to spikes, ``return_mem``),
    :class:`StepNeuron` (write only the per-step update; the engine does the rest), and the
    shared checks :func:`check_unit_interval`, :func:`check_positive`, :func:`check_reset`,
    :func:`check_surrogate`, :func:`scalar`, :func:`needs_grad`.
Surrogates
    :class:`Surrogate` (``__call__``, ``derivative``, optional ``kernel_form``), :class:`KernelForm`
    and the standard set :class:`FastSigmoid`, :class:`ATan`, :class:`Sigmoid`,
    :class:`Triangular`, :class:`StraightThrough`.
Networks
    :class:`SpikingSequential` (time folding, static-input hoisting, compact saved tensors, the
    event-driven first layer), :func:`is_static`, :func:`step_buffer`.
Measures and process settings
    :func:`correct_count`; :func:`spiking_layers` and :class:`FiringRecorder` (firing rates);
    :func:`weighted_layers`, :func:`fan_out`, :class:`SynapticOps`, :func:`energy_j` (synaptic
    operations, the ANN's MACs, the 45 nm energy estimate); :func:`keep_freed_memory`.

Stability (before 1.0): the names exported here keep their meaning; new keyword arguments may be
added. ``snnframe.engine.kernels`` and modules or names starting with ``_`` are internal and may
change in any release.
"""

from snnframe.engine.buffers import as_compute_dtype, step_buffer
from snnframe.engine.host_memory import keep_freed_memory
from snnframe.engine.metrics import (
    ENERGY_PER_AC_J,
    ENERGY_PER_MAC_J,
    FiringRecorder,
    SynapticOps,
    correct_count,
    energy_j,
    fan_out,
    spiking_layers,
    weighted_layers,
)
from snnframe.engine.neuron import (
    RESET_MECHANISMS,
    ResetMechanism,
    SpikingNeuron,
    check_positive,
    check_reset,
    check_surrogate,
    check_unit_interval,
    needs_grad,
    scalar,
)
from snnframe.engine.sequential import SpikingSequential, is_static
from snnframe.engine.stepwise import StepNeuron
from snnframe.engine.surrogate import (
    DEFAULT_SURROGATE,
    KERNEL_FORMS,
    ATan,
    FastSigmoid,
    KernelForm,
    Sigmoid,
    StraightThrough,
    Surrogate,
    Triangular,
)

__all__ = [
    "ATan",
    "DEFAULT_SURROGATE",
    "ENERGY_PER_AC_J",
    "ENERGY_PER_MAC_J",
    "FiringRecorder",
    "FastSigmoid",
    "KERNEL_FORMS",
    "KernelForm",
    "RESET_MECHANISMS",
    "ResetMechanism",
    "Sigmoid",
    "SpikingNeuron",
    "SpikingSequential",
    "StepNeuron",
    "StraightThrough",
    "Surrogate",
    "SynapticOps",
    "Triangular",
    "as_compute_dtype",
    "check_positive",
    "check_reset",
    "check_surrogate",
    "check_unit_interval",
    "correct_count",
    "energy_j",
    "fan_out",
    "is_static",
    "keep_freed_memory",
    "needs_grad",
    "scalar",
    "spiking_layers",
    "step_buffer",
    "weighted_layers",
]
