"""Max-pooling with ``kernel_size == stride == k`` that records window offsets as ``uint8``.

``max_pool_forward(x, k) -> (out, offsets)`` and ``max_pool_backward(grad, offsets, ...)`` equal
``F.max_pool2d`` and its backward (the first maximum of a window wins; NaN wins), with
``offsets = dy * k + dx`` inside each window. On CPU with numba, one pass each over
channels-last memory (the backward also writes the zeros, instead of filling then scattering);
otherwise PyTorch's kernels with the ``int64`` indices converted on the fly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snnframe.engine import kernels


def _numba():
    return kernels.load("maxpool_numba")


def _use_numba(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and _numba() is not None


def _nhwc(t: torch.Tensor):
    """A channels-last ``[N, C, H, W]`` tensor as a numpy ``[N, H, W, C]`` view."""
    return t.detach().permute(0, 2, 3, 1).numpy()


@torch.compiler.disable  # numba code is opaque to torch.compile: run it eagerly
def max_pool_forward(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    n, c, h, w = x.shape
    if _use_numba(x):
        x = x.contiguous(memory_format=torch.channels_last)
        out = torch.empty((n, c, h // k, w // k), dtype=x.dtype, memory_format=torch.channels_last)
        offsets = torch.empty(out.shape, dtype=torch.uint8, memory_format=torch.channels_last)
        kernels.set_threads()
        _numba().max_pool_forward(_nhwc(x), k, _nhwc(out), _nhwc(offsets))
        return out, offsets
    out, index = F.max_pool2d_with_indices(x, k)
    row, col = index.div(w, rounding_mode="floor"), index.remainder(w)
    offsets = (row.remainder_(k).mul_(k).add_(col.remainder_(k))).to(torch.uint8)
    return out, offsets


@torch.compiler.disable  # numba code is opaque to torch.compile: run it eagerly
def max_pool_backward(grad, offsets, k, input_shape, input_strides) -> torch.Tensor:
    n, c, h, w = input_shape
    if _use_numba(grad):
        grad = grad.contiguous(memory_format=torch.channels_last)
        out = torch.empty(input_shape, dtype=grad.dtype, memory_format=torch.channels_last)
        kernels.set_threads()
        _numba().max_pool_backward(_nhwc(grad), _nhwc(offsets), k, _nhwc(out))
        return out
    oh, ow = offsets.shape[-2:]
    local = offsets.long()
    rows = torch.arange(oh, device=grad.device).view(oh, 1) * k
    cols = torch.arange(ow, device=grad.device).view(1, ow) * k
    index = (rows + local.div(k, rounding_mode="floor")) * w + cols + local.remainder(k)
    like = torch.empty_strided(input_shape, input_strides, dtype=grad.dtype, device=grad.device)
    return torch.ops.aten.max_pool2d_with_indices_backward(grad, like, [k, k], [k, k], [0, 0], [1, 1], False, index)
