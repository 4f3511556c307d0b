"""The numba kernels behind :mod:`cpu_kernels` (compiled on first use, cached on disk).

Arrays are ``[T, N]``; work is split into blocks of ``block`` neurons run in parallel, each
looping over all steps with its state in a small local array.
"""

import math

import numpy as np
from numba import njit, prange


@njit(inline="always")
def _surrogate(d, sid, p1, p2):
    if sid == 0:  # fast sigmoid: 1 / (k|d| + 1)^2
        a = p1 * abs(d) + 1
        return 1 / (a * a)
    if sid == 1:  # atan: (α/2) / (1 + (πα d / 2)^2), p1 = α/2, p2 = πα/2
        z = p2 * d
        return p1 / (1 + z * z)
    if sid == 2:  # sigmoid: k s(kd) s(-kd)
        z = p1 * d
        return p1 / ((1 + math.exp(-z)) * (1 + math.exp(z)))
    if sid == 3:  # snnTorch's triangular
        return p1 if d < 0 else -p1
    return d * 0 + 1  # straight-through (keeps the dtype)


@njit(parallel=True, cache=True)
def leaky_forward(x, beta, thr, reset, spikes, mem, keep_mem, block):
    steps, n = spikes.shape
    one = spikes.dtype.type(1)
    zero = spikes.dtype.type(0)
    for b in prange((n + block - 1) // block):
        lo = b * block
        hi = min(n, lo + block)
        u = np.empty(hi - lo, dtype=spikes.dtype)
        s = np.empty(hi - lo, dtype=spikes.dtype)
        for i in range(hi - lo):
            u[i] = x[0, lo + i]
        for t in range(steps):
            # branch-free inner loops (one per reset mode) so LLVM vectorises them
            if t > 0 and reset == 0:
                for i in range(hi - lo):
                    u[i] = (u[i] * beta + x[t, lo + i]) - s[i] * thr
            elif t > 0 and reset == 1:
                for i in range(hi - lo):
                    v = u[i] * beta
                    u[i] = (v - v * s[i]) + x[t, lo + i]
            elif t > 0:
                for i in range(hi - lo):
                    u[i] = u[i] * beta + x[t, lo + i]
            for i in range(hi - lo):
                s[i] = one if u[i] > thr else zero
                spikes[t, lo + i] = s[i]
            if keep_mem:
                for i in range(hi - lo):
                    mem[t, lo + i] = u[i]


@njit(parallel=True, cache=True)
def leaky_backward(mem, gs, gm, has_gs, has_gm, beta, thr, reset, sid, p1, p2, grad, partial, block):
    steps, n = mem.shape
    for b in prange((n + block - 1) // block):
        lo = b * block
        hi = min(n, lo + block)
        carry = np.zeros(hi - lo, dtype=mem.dtype)
        total = 0.0
        for t in range(steps - 1, -1, -1):
            for i in range(hi - lo):
                d = mem[t, lo + i] - thr
                g = carry[i] * beta
                if reset == 1 and d > 0:
                    g = g * 0
                if has_gs:
                    h = gs[t, lo + i] * _surrogate(d, sid, p1, p2)
                    total += h
                    g = g + h
                if has_gm:
                    g = g + gm[t, lo + i]
                carry[i] = g
                grad[t, lo + i] = g
        partial[b] = total
