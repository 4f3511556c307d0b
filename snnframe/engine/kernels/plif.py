"""The parametric LIF neuron's fused kernels: Triton on CUDA (``plif_triton``).

The PyTorch loop (any device) lives with the built-in neuron, which calls these first. Tensors
are handed over as ``[T, N]`` views in the memory order of one step, as for :mod:`lif`.
"""

from __future__ import annotations

import torch

from snnframe.engine import kernels
from snnframe.engine.buffers import step_buffer
from snnframe.engine.kernels.lif import (
    PRECOMPUTED,
    RESETS,
    as_2d,
    constants,
    device_scalar,
    memory_order,
    rows,
    surrogate_code,
)

NAME = "plif_triton"


def kernel_input(x: torch.Tensor):
    """``(x, module)``: the input as the kernels read it and the Triton module, if it runs on ``x``."""
    return kernels.triton_input(NAME, x)


def triton_kernels(*tensors: torch.Tensor):
    """The ``plif_triton`` module if its kernels may run on ``tensors`` (CUDA), else ``None``."""
    return kernels.triton(NAME, *tensors)


@torch.compiler.disable  # Triton launches stay eager under torch.compile
def triton_forward(k, x, rate, threshold, reset, decay_input, spikes, charged) -> bool:
    """Fill ``spikes`` and, unless ``None``, ``charged`` (H) with the Triton kernels; ``rate`` = k = 1/τ.

    Returns ``False`` (after a one-time warning) if the kernels failed.
    """
    order = memory_order(spikes[0])
    try:
        k.plif_forward(
            rows(x, order, spikes),
            as_2d(spikes, order),
            as_2d(charged, order) if charged is not None else None,
            device_scalar(rate, spikes),
            constants(spikes.device, spikes.dtype, (float(threshold),)),
            RESETS[reset],
            decay_input,
        )
    except Exception as error:  # compilation on an unsupported GPU, a driver problem, ...
        kernels.triton_failed(NAME, error)
        return False
    return True


@torch.compiler.disable
def triton_backward(k, charged, x, grad_spikes, grad_charged, rate, options, surrogate, grad_dtype, want_rate):
    """``(∂L/∂X in grad_dtype, ∂L/∂k or None)``, or ``None`` if the kernels failed.

    ``options`` = (θ, reset, decay_input, detach_reset); ``x`` is needed for ∂k with decay_input.
    """
    threshold, reset, decay_input, detach_reset = options
    order = memory_order(charged[0])
    grad = step_buffer(charged, dtype=grad_dtype)
    sid, p1, p2 = surrogate_code(surrogate)
    pre = None
    if sid == PRECOMPUTED and (grad_spikes is not None or not detach_reset):
        pre = rows(surrogate.derivative(charged - threshold), order, charged, dense=True)
    try:
        partial = k.plif_backward(
            as_2d(charged, order),
            rows(x, order, charged) if (x is not None and want_rate and decay_input) else None,
            rows(grad_spikes, order, charged) if grad_spikes is not None else None,
            rows(grad_charged, order, charged) if grad_charged is not None else None,
            pre,
            as_2d(grad, order),
            device_scalar(rate, charged),
            constants(charged.device, charged.dtype, (float(threshold), p1, p2)),
            RESETS[reset],
            sid,
            decay_input,
            detach_reset,
            bool(want_rate),
        )
    except Exception as error:
        kernels.triton_failed(NAME, error)
        return None
    if not want_rate:
        return grad, None
    return grad, (partial.sum() if decay_input else -partial.sum())
