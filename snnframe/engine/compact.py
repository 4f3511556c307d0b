"""Convolution, linear and max-pool layers that save compact tensors for the backward pass.

Used by :class:`~snnframe.engine.sequential.SpikingSequential` for folded segments
while training; the modules and their parameters are the ordinary ``nn`` ones.

* A layer whose input is binary spikes saves it as ``uint8`` (4x smaller than float32); the
  backward pass turns it back into floats, exactly.
* A convolution saves its input as given (a view of a tensor that exists anyway, such as the
  input batch) rather than the channels-last copy it computes on.
* Max-pooling with ``kernel_size == stride`` saves the position of each window's maximum as a
  ``uint8`` offset inside the window instead of PyTorch's ``int64`` index into the image.

For a T=300 event-frame batch these save ~0.5 GB of the ~0.75 GB the CSNN keeps for backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from snnframe.engine.kernels import maxpool


def _autocast_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype autocast would run a convolution/matmul in (``x.dtype`` without autocast)."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


class _CompactConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, conv: nn.Conv2d, binary: bool):
        dtype = _autocast_dtype(x)
        layout = torch.channels_last if x.dim() == 4 else torch.contiguous_format
        w = weight.to(dtype)
        b = bias.to(dtype) if bias is not None else None
        with torch.autocast(x.device.type, enabled=False):
            out = F.conv2d(
                x.to(dtype).contiguous(memory_format=layout),
                w,
                b,
                conv.stride,
                conv.padding,
                conv.dilation,
                conv.groups,
            )
        ctx.save_for_backward(x.to(torch.uint8) if binary else x, w)
        ctx.conv, ctx.dtype, ctx.layout, ctx.has_bias = conv, dtype, layout, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        conv = ctx.conv
        x = x.to(ctx.dtype).contiguous(memory_format=ctx.layout)
        grad = grad.to(ctx.dtype)
        gx, gw, _ = torch.ops.aten.convolution_backward(
            grad,
            x,
            w,
            None,
            conv.stride,
            conv.padding,
            conv.dilation,
            False,
            [0, 0],
            conv.groups,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False],
        )
        gb = None
        if ctx.has_bias and ctx.needs_input_grad[2]:
            # a plain sum is cheaper than oneDNN computing it in the weight pass (CSNN conv2, events: ~1 vs ~8 ms)
            gb = grad.sum((0, *range(2, grad.dim())), dtype=torch.promote_types(grad.dtype, torch.float32))
        return gx, gw, gb, None, None


class _CompactLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, binary: bool):
        dtype = _autocast_dtype(x)
        w = weight.to(dtype)
        with torch.autocast(x.device.type, enabled=False):
            out = F.linear(x.to(dtype), w, bias.to(dtype) if bias is not None else None)
        ctx.save_for_backward(x.to(torch.uint8) if binary else x, w)
        ctx.dtype, ctx.has_bias = dtype, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        grad = grad.to(ctx.dtype)
        gx = grad @ w if ctx.needs_input_grad[0] else None
        gw = grad.flatten(0, -2).t() @ x.to(ctx.dtype).flatten(0, -2) if ctx.needs_input_grad[1] else None
        gb = grad.flatten(0, -2).sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb, None


class _CompactMaxPool2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, k: int):
        out, offsets = maxpool.max_pool_forward(x, k)
        ctx.save_for_backward(offsets)
        ctx.k, ctx.input_shape, ctx.input_strides = k, x.shape, x.stride()
        return out

    @staticmethod
    def backward(ctx, grad):
        (offsets,) = ctx.saved_tensors
        return maxpool.max_pool_backward(grad, offsets, ctx.k, ctx.input_shape, ctx.input_strides), None


def plain(module: nn.Module) -> bool:
    """No hooks on the module: calling its functional form skips nothing."""
    return not (module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)


def compact_pool_size(module: nn.MaxPool2d) -> int | None:
    """``k`` for a max-pool with ``kernel_size == stride == k``, no padding, dilation or ceil mode."""
    k, s = module.kernel_size, module.stride
    k = k if isinstance(k, int) else (k[0] if k[0] == k[1] else None)
    s = s if isinstance(s, int) else (s[0] if s[0] == s[1] else None)
    if k is None or s != k or module.padding not in (0, (0, 0)) or module.dilation not in (1, (1, 1)):
        return None
    if module.ceil_mode or module.return_indices:
        return None
    return k


def apply(module: nn.Module, x: torch.Tensor, binary: bool) -> torch.Tensor:
    """``module(x)``, saving compact tensors for backward where it knows how (``binary``: 0/1 input).

    4-d input of a convolution is computed on in channels-last layout.
    """
    conv = is_conv2d(module, x)
    if not torch.is_grad_enabled() or not plain(module):
        return module(x.contiguous(memory_format=torch.channels_last) if conv else x)
    if conv and type(module) is nn.Conv2d and module.padding_mode == "zeros" and isinstance(module.padding, tuple):
        return _CompactConv2d.apply(x, module.weight, module.bias, module, binary)
    if type(module) is nn.Linear and binary:
        return _CompactLinear.apply(x, module.weight, module.bias, binary)
    if type(module) is nn.MaxPool2d and x.dim() == 4:
        k = compact_pool_size(module)
        if k is not None and k <= 16:
            return _CompactMaxPool2d.apply(x, k)
    return module(x.contiguous(memory_format=torch.channels_last) if conv else x)


def is_conv2d(module: nn.Module, x: torch.Tensor) -> bool:
    return isinstance(module, nn.Conv2d) and x.dim() == 4


def keeps_binary(module: nn.Module) -> bool:
    """Whether 0/1 input stays 0/1 through ``module`` (max-pooling and reshaping do)."""
    return isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.Flatten, nn.Unflatten, nn.Identity))
