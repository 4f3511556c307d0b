"""numba kernels for :mod:`sparse_conv`: event-driven convolution fused with max-pooling.

Arrays: input ``x [N, H, W, C]`` (any strides), weights ``w [C, K, K, O]``, pooled output and
window offsets ``[N, OH, OW, O]``. Only non-zero inputs do work: each adds its value times a
weight patch into a per-sample conv buffer, which is then max-pooled. Inner loops run over
output channels without branches (compare-and-select) so that LLVM vectorises them; buffers
are local arrays, which LLVM knows do not alias the outputs.
"""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def conv_pool_forward(x, w, bias, p, out, offsets, chunks):
    n, h, wd, c = x.shape
    k = w.shape[1]
    o = w.shape[3]
    ch, cw = h - k + 1, wd - k + 1  # convolution output
    oh, ow = out.shape[1], out.shape[2]
    per = (n + chunks - 1) // chunks
    for part in prange(chunks):
        buf = np.empty((ch, cw, o), dtype=out.dtype)
        best = np.empty((ow, o), dtype=out.dtype)
        at = np.empty((ow, o), dtype=np.uint8)
        for b in range(part * per, min(n, (part + 1) * per)):
            for i in range(ch):
                for j in range(cw):
                    for q in range(o):
                        buf[i, j, q] = bias[q]
            for cc in range(c):
                for y in range(h):
                    for xx in range(wd):
                        v = x[b, y, xx, cc]
                        if v != 0:
                            for kh in range(k):
                                i = y - kh
                                if 0 <= i < ch:
                                    for kw in range(k):
                                        j = xx - kw
                                        if 0 <= j < cw:
                                            for q in range(o):
                                                buf[i, j, q] += v * w[cc, kh, kw, q]
            for i in range(oh):
                for j in range(ow):
                    for q in range(o):
                        best[j, q] = buf[i * p, j * p, q]
                        at[j, q] = 0
                for dy in range(p):
                    for dx in range(p):
                        a = np.uint8(dy * p + dx)
                        for j in range(ow):
                            for q in range(o):
                                v = buf[i * p + dy, j * p + dx, q]
                                take = (v > best[j, q]) | (v != v)  # PyTorch's rule: first maximum; NaN wins
                                best[j, q] = v if take else best[j, q]
                                at[j, q] = a if take else at[j, q]
                for j in range(ow):
                    for q in range(o):
                        out[b, i, j, q] = best[j, q]
                        offsets[b, i, j, q] = at[j, q]


@njit(parallel=True, cache=True)
def conv_pool_weight_grad(x, offsets, grad, k, p, partial):
    """``partial[chunk, C, K, K, O]``: per-chunk sums of the weight gradient."""
    n, h, wd, c = x.shape
    oh, ow, o = grad.shape[1], grad.shape[2], grad.shape[3]
    chunks = partial.shape[0]
    per = (n + chunks - 1) // chunks
    for part in prange(chunks):
        acc = np.zeros((c, k, k, o), dtype=partial.dtype)
        for b in range(part * per, min(n, (part + 1) * per)):
            for cc in range(c):
                for y in range(h):
                    for xx in range(wd):
                        v = x[b, y, xx, cc]
                        if v != 0:
                            for kh in range(k):
                                oy = y - kh
                                if 0 <= oy < oh * p:
                                    i = oy // p
                                    for kw in range(k):
                                        ox = xx - kw
                                        if 0 <= ox < ow * p:
                                            j = ox // p
                                            at = (oy - i * p) * p + (ox - j * p)
                                            for q in range(o):  # only the window's winner gets gradient
                                                won = offsets[b, i, j, q] == at
                                                acc[cc, kh, kw, q] += (v * grad[b, i, j, q]) * won
        partial[part] = acc
