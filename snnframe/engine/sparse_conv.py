"""Event-driven convolution + max-pooling for sparse input (event frames, ~1-2 % active).

For ``Conv2d`` (stride 1, no padding/dilation/groups) followed by ``MaxPool2d`` with
``kernel_size == stride``, applied to data that does not need a gradient (the network input)
and is mostly zeros, one numba kernel adds each non-zero input's weight patch into a
per-sample buffer and max-pools it: the full-resolution convolution output never reaches
memory. The weight gradient visits only the non-zero inputs and, of each pooling window, the
position that won: with 2 % active pixels this is ~50x fewer multiply-adds than the dense
convolution's backward.

Results equal ``max_pool2d(conv2d(x))`` up to float rounding (another summation order).
"""

from __future__ import annotations

import torch
from torch import nn

from snnframe.engine import compact, kernels

MAX_DENSITY = 0.05  # above this the dense (oneDNN) convolution is faster


def _numba():
    return kernels.load("conv_pool_numba")


def applicable(conv: nn.Module, pool: nn.Module, x: torch.Tensor) -> int | None:
    """The pool size ``p`` if the fused sparse kernel can replace ``pool(conv(x))``, else ``None``."""
    if type(conv) is not nn.Conv2d or type(pool) is not nn.MaxPool2d or x.dim() != 4:
        return None
    if not kernels.numba_enabled() or x.device.type != "cpu" or x.requires_grad:
        return None
    if x.dtype not in (torch.float32, torch.float64) or conv.weight.dtype != x.dtype:
        return None
    if torch.is_autocast_enabled("cpu") or not (compact.plain(conv) and compact.plain(pool)):
        return None
    if (conv.stride, conv.padding, conv.dilation, conv.groups) != ((1, 1), (0, 0), (1, 1), 1):
        return None
    if conv.padding_mode != "zeros" or conv.kernel_size[0] != conv.kernel_size[1]:
        return None
    p = compact.compact_pool_size(pool)
    if (
        p is None
        or (x.shape[-1] - conv.kernel_size[0] + 1) // p < 1
        or (x.shape[-2] - conv.kernel_size[0] + 1) // p < 1
    ):
        return None
    if _numba() is None or torch.count_nonzero(x) > MAX_DENSITY * x.numel():
        return None
    return p


@torch.compiler.disable  # numba code is opaque to torch.compile: run it eagerly
def conv_pool(conv: nn.Conv2d, p: int, x: torch.Tensor) -> torch.Tensor:
    """``max_pool2d(conv(x), p)`` by the event-driven kernel (channels-last output)."""
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels, dtype=x.dtype)
    return _SparseConvPool.apply(x, conv.weight, bias, p)


def _nhwc(t: torch.Tensor):
    """A channels-last ``[N, C, H, W]`` tensor as a numpy ``[N, H, W, C]`` view."""
    return t.detach().permute(0, 2, 3, 1).numpy()


class _SparseConvPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, p):
        n, _, h, w = x.shape
        k = weight.shape[-1]
        out_shape = (n, weight.shape[0], (h - k + 1) // p, (w - k + 1) // p)
        out = torch.empty(out_shape, dtype=x.dtype, memory_format=torch.channels_last)
        offsets = torch.empty(out_shape, dtype=torch.uint8, memory_format=torch.channels_last)
        patches = weight.detach().permute(1, 2, 3, 0).contiguous()  # [C, K, K, O]
        kernels.set_threads()
        chunks = max(1, min(n, 8 * torch.get_num_threads()))
        _numba().conv_pool_forward(
            x.detach().numpy(),
            patches.numpy(),
            bias.detach().contiguous().numpy(),
            p,
            _nhwc(out),
            _nhwc(offsets),
            chunks,
        )
        ctx.save_for_backward(x, offsets)
        ctx.p, ctx.k = p, k
        return out

    @staticmethod
    def backward(ctx, grad):
        x, offsets = ctx.saved_tensors
        grad_weight = grad_bias = None
        if ctx.needs_input_grad[1]:
            grad = grad.contiguous(memory_format=torch.channels_last)
            n, o, oh, ow = grad.shape
            chunks = max(1, min(n, 4 * torch.get_num_threads()))
            partial = torch.empty((chunks, x.shape[1], ctx.k, ctx.k, o), dtype=grad.dtype)
            partial_bias = torch.empty((chunks if ctx.needs_input_grad[2] else 0, ow, o), dtype=grad.dtype)
            kernels.set_threads()
            _numba().conv_pool_weight_grad(
                x.detach().numpy(), _nhwc(offsets), _nhwc(grad), ctx.k, ctx.p, partial.numpy(), partial_bias.numpy()
            )
            grad_weight = partial.sum(0).permute(3, 0, 1, 2)
            if ctx.needs_input_grad[2]:
                grad_bias = partial_bias.sum((0, 1))
        elif ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 2, 3))
        return None, grad_weight, grad_bias, None
