"""Helpers shared by the fused neuron kernels (time loops over ``[T, ...]`` tensors)."""

from __future__ import annotations

import torch


def step_buffer(x: torch.Tensor, steps: int | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An empty ``[steps, ...]`` tensor (default ``T``) whose steps have the memory layout of ``x[0]``.

    Keeps channels-last layouts (fast convolutions on CPU) and gives a compact result for
    time-expanded input (stride 0 along T).
    """
    step = x[0]
    steps = x.shape[0] if steps is None else steps
    dtype = dtype or x.dtype
    if step.is_contiguous() or step.is_contiguous(memory_format=torch.channels_last):
        like = torch.empty_like(step, dtype=dtype)  # same strides as a dense step
    else:
        like = torch.empty(step.shape, dtype=dtype, device=x.device)
    strides = (like.numel(),) + like.stride()
    return torch.empty_strided((steps,) + tuple(step.shape), strides, dtype=dtype, device=x.device)


def as_compute_dtype(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 (or float64), keeping a time-expanded view expanded.

    Recurrences run in float32 at least: under autocast, convolutions hand neurons fp16/bf16.
    """
    if x.dtype in (torch.float32, torch.float64):
        return x
    if x.shape[0] > 1 and x.stride(0) == 0:
        return x[0].float().unsqueeze(0).expand(x.shape)
    return x.float()
