"""numba kernels for :mod:`maxpool` on ``[N, H, W, C]`` (channels-last) arrays.

Inner loops run over channels on 1-d slices without branches, so they vectorise. The forward
keeps the winners' offsets as floats until it stores them: selects as wide as the compared
values vectorise, ``uint8`` ones did not (992 x 10 x 10 x 64 values, 2 threads: 12.0 -> 2.8 ms;
12 channels are too few to gain).
"""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def max_pool_forward(x, k, out, offsets):
    n, oh, ow, c = out.shape
    for row in prange(n * oh):
        b = row // oh
        i = row % oh
        best = np.empty(c, dtype=out.dtype)
        win = np.empty(c, dtype=out.dtype)  # the winner's offset, as wide as the values
        for j in range(ow):
            first = x[b, i * k, j * k]
            for ch in range(c):
                best[ch] = first[ch]
                win[ch] = 0
            for dy in range(k):
                for dx in range(k):
                    if dy == 0 and dx == 0:
                        continue
                    here = np.float32(dy * k + dx)
                    v = x[b, i * k + dy, j * k + dx]
                    for ch in range(c):
                        take = (v[ch] > best[ch]) | (v[ch] != v[ch])  # PyTorch's rule: first maximum; NaN wins
                        best[ch] = v[ch] if take else best[ch]
                        win[ch] = here if take else win[ch]
            o = out[b, i, j]
            at = offsets[b, i, j]
            for ch in range(c):
                o[ch] = best[ch]
                at[ch] = np.uint8(win[ch])


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
            dst = out[b, y, x]
            if i < oh and j < ow:
                here = np.uint8(dy * k + (x - j * k))
                g = grad[b, i, j]
                at = offsets[b, i, j]
                for ch in range(c):
                    dst[ch] = g[ch] if at[ch] == here else zero
            else:
                for ch in range(c):
                    dst[ch] = zero
