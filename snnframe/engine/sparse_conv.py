"""Event-driven convolution + max-pooling for sparse input: event frames and hidden spikes.

For ``Conv2d`` (stride 1, no padding/dilation/groups) followed by ``MaxPool2d`` with
``kernel_size == stride``, applied to input that is mostly zeros, one numba kernel adds each
non-zero input's weight patch into a per-sample buffer and max-pools it: the full-resolution
convolution output never reaches memory. The weight gradient visits only the non-zero inputs
and, of each pooling window, the position that won: with 2 % active pixels this is ~50x fewer
multiply-adds than the dense convolution's backward.

Two kinds of input qualify, decided per batch from its measured density:

* input that needs no gradient (the network's input, e.g. event frames), up to
  :data:`MAX_DENSITY`;
* a hidden layer's input that is a neuron's binary spikes (``binary=True``), up to
  :data:`MAX_HIDDEN_DENSITY`. Its input gradient is dense, but only the pooling windows'
  winners carry gradient into it: per pooled position, the winners' weight patches are summed
  and added into the input gradient (a quarter of the transposed convolution's multiply-adds
  for 2x2 pooling). The spikes are saved as ``uint8``.

Results equal ``max_pool2d(conv2d(x))`` and its gradients up to float rounding (another
summation order).
"""

from __future__ import annotations

import torch
from torch import nn

from snnframe.engine import compact, kernels

# Fractions of non-zero inputs up to which the event-driven kernels run. Measured crossovers
# against oneDNN + max-pool, forward + backward (docs/benchmarks.md): network input ~0.2-0.3
# (2 -> 12 and 2 -> 32 channels), hidden spikes ~0.15-0.18 (12 -> 64, 32 -> 64).
MAX_DENSITY = 0.12  # input that needs no gradient
MAX_HIDDEN_DENSITY = 0.12  # a neuron's binary spikes, whose input gradient stays dense


def _numba():
    return kernels.load("conv_pool_numba")


def applicable(conv: nn.Module, pool: nn.Module, x: torch.Tensor, binary: bool = False) -> int | None:
    """The pool size ``p`` if the fused sparse kernel can replace ``pool(conv(x))``, else ``None``.

    ``binary``: ``x`` holds a neuron's 0/1 spikes; only then may ``x`` need a gradient.
    """
    if type(conv) is not nn.Conv2d or type(pool) is not nn.MaxPool2d or x.dim() != 4:
        return None
    if not kernels.numba_enabled() or x.device.type != "cpu" or (x.requires_grad and not binary):
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
    limit = MAX_HIDDEN_DENSITY if x.requires_grad else MAX_DENSITY
    if _numba() is None or active(x, binary) > limit * x.numel():
        return None
    return p


def active(x: torch.Tensor, binary: bool) -> float:
    """The number of non-zero values of ``x`` (for 0/1 spikes their sum: ~10x faster to count)."""
    return float(x.detach().sum()) if binary else float(torch.count_nonzero(x))


@torch.compiler.disable  # numba code is opaque to torch.compile: run it eagerly
def conv_pool(conv: nn.Conv2d, p: int, x: torch.Tensor, binary: bool = False) -> torch.Tensor:
    """``max_pool2d(conv(x), p)`` by the event-driven kernel (channels-last output).

    ``binary``: ``x`` holds 0/1 spikes, saved for backward as ``uint8``.
    """
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels, dtype=x.dtype)
    return _SparseConvPool.apply(x, conv.weight, bias, p, binary)


def _nhwc(t: torch.Tensor):
    """A channels-last ``[N, C, H, W]`` tensor as a numpy ``[N, H, W, C]`` view."""
    return t.detach().permute(0, 2, 3, 1).numpy()


class _SparseConvPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, p, binary):
        n, _, h, w = x.shape
        k = weight.shape[-1]
        out_shape = (n, weight.shape[0], (h - k + 1) // p, (w - k + 1) // p)
        out = torch.empty(out_shape, dtype=x.dtype, memory_format=torch.channels_last)
        offsets = torch.empty(out_shape, dtype=torch.uint8, memory_format=torch.channels_last)
        patches = weight.detach().permute(1, 2, 3, 0).contiguous()  # [C, K, K, O]
        kernels.set_threads()
        chunks = max(1, min(n, 8 * torch.get_num_threads()))
        active = torch.empty(chunks, dtype=torch.int64)
        _numba().conv_pool_forward(
            x.detach().numpy(),
            patches.numpy(),
            bias.detach().contiguous().numpy(),
            p,
            _nhwc(out),
            _nhwc(offsets),
            chunks,
            active.numpy(),
        )
        ctx.save_for_backward(x.detach().to(torch.uint8) if binary else x, offsets, weight)
        ctx.p, ctx.k, ctx.x_shape, ctx.x_dtype = p, k, x.shape, x.dtype
        ctx.active = int(active.sum())
        return out

    @staticmethod
    def backward(ctx, grad):
        x, offsets, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        grad = grad.contiguous(memory_format=torch.channels_last)
        if ctx.needs_input_grad[0]:
            grad_x = _input_grad(grad, offsets, weight, ctx.p, ctx.x_shape, ctx.x_dtype)
        if ctx.needs_input_grad[1]:
            n, o, oh, ow = grad.shape
            chunks = max(1, min(n, 4 * torch.get_num_threads()))
            partial = torch.empty((chunks, x.shape[1], ctx.k, ctx.k, o), dtype=grad.dtype)
            partial_bias = torch.empty((chunks if ctx.needs_input_grad[2] else 0, ow, o), dtype=grad.dtype)
            kernels.set_threads()
            _weight_grad_kernel(ctx.active, ctx.k, ctx.p, grad.shape)(
                x.detach().numpy(), _nhwc(offsets), _nhwc(grad), ctx.k, ctx.p, partial.numpy(), partial_bias.numpy()
            )
            grad_weight = partial.sum(0).permute(3, 0, 1, 2)
            if ctx.needs_input_grad[2]:
                grad_bias = partial_bias.sum((0, 1))
        elif ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 2, 3))
        return grad_x, grad_weight, grad_bias, None, None


def _weight_grad_kernel(active, k, p, grad_shape):
    """The weight-gradient kernel for ``active`` non-zero inputs.

    Both visit only the non-zero inputs. The default tests each tap's window winner per output
    channel. The unpooled kernel first spreads each sample's pooled gradient to conv resolution
    (a pass over the conv output), then adds contiguous runs of ``K * O`` with no test. Measured
    on 4,800 N-MNIST frames, 2 -> 12 channels: 52 vs 45 ms at 2 % non-zero inputs, 6 vs 34 ms
    at none; on a trained quick start's conv2 (992 samples, 4.5 % of 12 -> 64): 15.5 vs 11.1 ms.
    So it runs once the inputs' taps (``active * K * K``) reach the conv positions that the pool
    covers, where the measured costs cross.
    """
    n, _, oh, ow = grad_shape
    if active * k * k >= n * oh * p * ow * p:
        return _numba().conv_pool_weight_grad_unpooled
    return _numba().conv_pool_weight_grad


def _input_grad(grad, offsets, weight, p, x_shape, dtype):
    """The input gradient, driven by the pooling windows' winners (the only conv outputs with a
    gradient): a quarter of the dense transposed convolution's multiply-adds for 2x2 pooling,
    and no full-resolution gradient in memory. Input rows and columns beyond the pool's reach
    (e.g. the 15th of 15 when 11 outputs pool to 5) get zeros."""
    out = torch.empty(x_shape, dtype=dtype, memory_format=torch.channels_last)
    patches = weight.detach().permute(0, 2, 3, 1).contiguous()  # [O, K, K, C]
    kernels.set_threads()
    _numba().conv_pool_input_grad(_nhwc(offsets), _nhwc(grad), patches.numpy(), p, _nhwc(out))
    return out
