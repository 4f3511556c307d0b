"""The synaptic LIF neuron's fused kernels: Triton on CUDA (``synaptic_triton``).

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

NAME = "synaptic_triton"


def kernel_input(x: torch.Tensor):
    """``(x, module)``: the input as the kernels read it and the Triton module, if it runs on ``x``."""
    return kernels.triton_input(NAME, x)


def triton_kernels(*tensors: torch.Tensor):
    """The ``synaptic_triton`` module if its kernels may run on ``tensors`` (CUDA), else ``None``."""
    return kernels.triton(NAME, *tensors)


@torch.compiler.disable  # Triton launches stay eager under torch.compile
def triton_forward(k, x, alpha, beta, threshold, reset, spikes, mem, syn) -> bool:
    """Fill ``spikes`` and, unless ``None``, ``mem`` / ``syn`` (step buffers, state dtype).

    Returns ``False`` (after a one-time warning) if the kernels failed.
    """
    order = memory_order(spikes[0])
    try:
        k.synaptic_forward(
            rows(x, order, spikes),
            as_2d(spikes, order),
            as_2d(mem, order) if mem is not None else None,
            as_2d(syn, order) if syn is not None else None,
            device_scalar(alpha, spikes),
            device_scalar(beta, spikes),
            device_scalar(threshold, spikes),
            RESETS[reset],
        )
    except Exception as error:  # compilation on an unsupported GPU, a driver problem, ...
        kernels.triton_failed(NAME, error)
        return False
    return True


@torch.compiler.disable
def triton_backward(k, mem, syn, grad_spikes, grad_mem, alpha, beta, threshold, reset, surrogate, grad_dtype, wants):
    """``(∂L/∂X in grad_dtype, ∂L/∂α, ∂L/∂β, ∂L/∂θ)`` (``None`` where not in ``wants``), or ``None`` on failure."""
    order = memory_order(mem[0])
    grad = step_buffer(mem, dtype=grad_dtype)
    sid, p1, p2 = surrogate_code(surrogate)
    pre = None
    if sid == PRECOMPUTED and grad_spikes is not None:
        pre = rows(surrogate.derivative(mem - device_scalar(threshold, mem)), order, mem, dense=True)
    try:
        partials = k.synaptic_backward(
            as_2d(mem, order),
            as_2d(syn, order) if syn is not None else None,
            rows(grad_spikes, order, mem) if grad_spikes is not None else None,
            rows(grad_mem, order, mem) if grad_mem is not None else None,
            pre,
            as_2d(grad, order),
            device_scalar(alpha, mem),
            device_scalar(beta, mem),
            device_scalar(threshold, mem),
            constants(mem.device, mem.dtype, (p1, p2)),
            RESETS[reset],
            sid,
            tuple(bool(w) for w in wants),
        )
    except Exception as error:
        kernels.triton_failed(NAME, error)
        return None
    sums = partials.sum(dim=1)
    want_alpha, want_beta, want_threshold = wants
    return (
        grad,
        sums[0] if want_alpha else None,
        sums[1] if want_beta else None,
        -sums[2] if want_threshold else None,
    )
