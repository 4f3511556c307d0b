"""numba kernels for :mod:`pool_kernels` on ``[N, H, W, C]`` (channels-last) arrays."""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def max_pool_forward(x, k, out, offsets):
    n, oh, ow, c = out.shape
    for row in prange(n * oh):
        b = row // oh
        i = row % oh
        for j in range(ow):
            # channels innermost: contiguous, vectorised compare-and-select
            for ch in range(c):
                out[b, i, j, ch] = x[b, i * k, j * k, ch]
                offsets[b, i, j, ch] = 0
            for dy in range(k):
                for dx in range(k):
                    at = dy * k + dx
                    for ch in range(c):
                        v = x[b, i * k + dy, j * k + dx, ch]
                        if v > out[b, i, j, ch] or np.isnan(v):  # PyTorch's rule: first maximum; NaN wins
                            out[b, i, j, ch] = v
                            offsets[b, i, j, ch] = at


@njit(parallel=True, cache=True)
def max_pool_backward(grad, offsets, k, out):
    n, h, w, c = out.shape
    oh, ow = grad.shape[1], grad.shape[2]
    zero = out.dtype.type(0)
    for row in prange(n * h):
        b = row // h
        y = row % h
        i = y // k
        dy = y - i * k
        for x in range(w):
            j = x // k
            at = dy * k + (x - j * k)
            if i < oh and j < ow:
                for ch in range(c):
                    out[b, y, x, ch] = grad[b, i, j, ch] if offsets[b, i, j, ch] == at else zero
            else:
                for ch in range(c):
                    out[b, y, x, ch] = zero
