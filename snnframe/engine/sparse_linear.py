"""Event-driven ``nn.Linear`` for sparse input rows: event features and hidden spikes.

Over folded input ``[N, F]`` that is mostly zeros, one numba kernel adds, for each non-zero
input, its value times the weight's column to the sample's output, and lists the non-zero
inputs (compressed sparse rows); the weight gradient adds each sample's output gradient into
the rows of its listed inputs. With 3 % active inputs this is ~30x fewer multiply-adds than
the dense matrix products of either pass, and the list (int32 column per entry, plus the value
unless the input is binary) is what backward keeps instead of the input.

As in :mod:`sparse_conv`, two kinds of input qualify, decided per batch from its density:
input that needs no gradient (the network's input) up to :data:`MAX_DENSITY`, and a neuron's
binary spikes (``binary=True``) up to :data:`MAX_HIDDEN_DENSITY`, whose input gradient stays
dense (``grad @ weight``).

Results equal ``F.linear`` and its gradients up to float rounding (another summation order).
"""

from __future__ import annotations

import torch
from torch import nn

from snnframe.engine import compact, kernels, sparse_conv

# Measured crossovers against the dense products (forward + backward, 12,800 rows): ~0.2 for
# 700->256 and 256->256, ~0.1 for 256->20 and 1024->10 (docs/benchmarks.md).
MAX_DENSITY = 0.08  # input that needs no gradient
MAX_HIDDEN_DENSITY = 0.08  # binary spikes of a hidden layer, whose input gradient stays dense


def _numba():
    return kernels.load("linear_numba")


def applicable(layer: nn.Module, x: torch.Tensor, binary: bool = False) -> bool:
    """Whether the event-driven kernels can replace ``layer(x)`` for this batch.

    ``binary``: ``x`` holds a neuron's 0/1 spikes; only then may ``x`` need a gradient.
    """
    if type(layer) is not nn.Linear or x.dim() != 2:
        return False
    if not kernels.numba_enabled() or x.device.type != "cpu" or (x.requires_grad and not binary):
        return False
    if x.dtype not in (torch.float32, torch.float64) or layer.weight.dtype != x.dtype:
        return False
    if torch.is_autocast_enabled("cpu") or not compact.plain(layer) or _numba() is None:
        return False
    limit = MAX_HIDDEN_DENSITY if x.requires_grad else MAX_DENSITY
    return sparse_conv.active(x, binary) <= limit * x.numel()


@torch.compiler.disable  # numba code is opaque to torch.compile: run it eagerly
def linear(layer: nn.Linear, x: torch.Tensor, binary: bool = False) -> torch.Tensor:
    """``layer(x)`` by the event-driven kernels (``binary``: ``x`` holds 0/1 spikes)."""
    bias = layer.bias if layer.bias is not None else torch.zeros(layer.out_features, dtype=x.dtype)
    return _SparseLinear.apply(x, layer.weight, bias, binary)


class _SparseLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, binary):
        nb = _numba()
        xs = x.detach().numpy()
        counts = torch.empty(x.shape[0], dtype=torch.int64)
        kernels.set_threads()
        nb.count_nonzero_rows(xs, counts.numpy())
        ptr = torch.from_numpy(nb.row_pointers(counts.numpy()))
        nnz = int(ptr[-1])
        cols = torch.empty(nnz, dtype=torch.int32)
        vals = torch.empty(0 if binary else nnz, dtype=x.dtype)
        out = torch.empty((x.shape[0], weight.shape[0]), dtype=x.dtype)
        wt = weight.detach().t().contiguous()
        nb.linear_forward(
            xs, wt.numpy(), bias.detach().contiguous().numpy(), ptr.numpy(), cols.numpy(), vals.numpy(), out.numpy()
        )
        ctx.save_for_backward(ptr, cols, vals, weight)
        ctx.in_features = x.shape[1]
        return out

    @staticmethod
    def backward(ctx, grad):
        ptr, cols, vals, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad @ weight.detach() if ctx.needs_input_grad[0] else None
        grad_weight = grad_bias = None
        if ctx.needs_input_grad[1]:
            gwt = torch.empty((ctx.in_features, grad.shape[1]), dtype=grad.dtype)
            kernels.set_threads()
            blocks = max(1, min(ctx.in_features, 4 * torch.get_num_threads()))
            _numba().linear_weight_grad(ptr.numpy(), cols.numpy(), vals.numpy(), grad.numpy(), blocks, gwt.numpy())
            grad_weight = gwt.t()
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(0)
        return grad_x, grad_weight, grad_bias, None
