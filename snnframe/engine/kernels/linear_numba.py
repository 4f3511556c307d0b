"""numba kernels for :mod:`snnframe.engine.sparse_linear`: a linear layer over sparse input rows.

Arrays: input ``x [N, F]`` (any strides), transposed weights ``wt [F, O]``, output and output
gradient ``[N, O]``. The forward pass lists each row's non-zero inputs (``ptr [N + 1]``,
``cols [nnz]``, ``vals [nnz]``, compressed sparse rows) and adds each one's value times its
weight row to the output; the weight gradient then visits only those entries, split over
blocks of input features so that each thread owns its rows of the result (no partial sums).
``vals`` is empty for binary input (every value is 1).
"""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def count_nonzero_rows(x, counts):
    n, f = x.shape
    for b in prange(n):
        c = 0
        for i in range(f):
            if x[b, i] != 0:
                c += 1
        counts[b] = c


@njit(parallel=True, cache=True)
def linear_forward(x, wt, bias, ptr, cols, vals, out):
    n, f = x.shape
    o = wt.shape[1]
    keep = vals.shape[0] > 0
    for b in prange(n):
        for q in range(o):
            out[b, q] = bias[q]
        at = ptr[b]
        for i in range(f):
            v = x[b, i]
            if v != 0:
                cols[at] = i
                if keep:
                    vals[at] = v
                at += 1
                for q in range(o):
                    out[b, q] += v * wt[i, q]


@njit(parallel=True, cache=True)
def linear_weight_grad(ptr, cols, vals, grad, blocks, gwt):
    n, o = grad.shape
    f = gwt.shape[0]
    keep = vals.shape[0] > 0
    per = (f + blocks - 1) // blocks
    for part in prange(blocks):
        lo, hi = part * per, min(f, (part + 1) * per)
        for i in range(lo, hi):
            for q in range(o):
                gwt[i, q] = 0
        for b in range(n):
            for at in range(ptr[b], ptr[b + 1]):
                i = cols[at]
                if lo <= i < hi:
                    if keep:
                        v = vals[at]
                        for q in range(o):
                            gwt[i, q] += v * grad[b, q]
                    else:
                        for q in range(o):
                            gwt[i, q] += grad[b, q]


def row_pointers(counts):
    """``ptr [N + 1]``: where each row's entries start (numpy, int64)."""
    ptr = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr
