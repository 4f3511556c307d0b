"""The numba kernels behind :mod:`lif` (compiled on first use, cached on disk).

Arrays are ``[T, N]``; work is split into blocks of ``block`` neurons run in parallel, each
looping over all steps with its state in small local arrays. Inner loops index 1-d slices
from 0 and have no branches (selects only), so LLVM vectorises them: about 4x faster than
indexing ``x[t, lo + i]`` directly.
"""

import math

import numpy as np
from numba import njit, prange


@njit(inline="always")
def _surrogate(d, pre, out, sid, p1, p2):
    """``out[i] = σ'(d[i])``; one branch-free loop per surrogate, so each vectorises.

    ``sid`` indexes ``engine.surrogate.KERNEL_FORMS``; past them, σ' is read from ``pre``.
    """
    if sid == 0:  # fast sigmoid: 1 / (k|d| + 1)^2
        for i in range(d.shape[0]):
            a = p1 * abs(d[i]) + 1
            out[i] = 1 / (a * a)
    elif sid == 1:  # atan: (α/2) / (1 + (πα d / 2)^2), p1 = α/2, p2 = πα/2
        for i in range(d.shape[0]):
            z = p2 * d[i]
            out[i] = p1 / (1 + z * z)
    elif sid == 2:  # sigmoid: k s(kd) s(-kd)
        for i in range(d.shape[0]):
            z = p1 * d[i]
            out[i] = p1 / ((1 + math.exp(-z)) * (1 + math.exp(z)))
    elif sid == 3:  # snnTorch's triangular
        for i in range(d.shape[0]):
            out[i] = p1 if d[i] < 0 else -p1
    elif sid == 4:  # straight-through
        for i in range(d.shape[0]):
            out[i] = 1
    else:  # computed beforehand by the surrogate's own ``derivative``
        for i in range(d.shape[0]):
            out[i] = pre[i]


@njit(parallel=True, cache=True)
def leaky_forward(x, beta, thr, reset, spikes, mem, keep_mem, block):
    steps, n = spikes.shape
    one = spikes.dtype.type(1)
    zero = spikes.dtype.type(0)
    for b in prange((n + block - 1) // block):
        lo = b * block
        hi = min(n, lo + block)
        m = hi - lo
        u = np.empty(m, dtype=spikes.dtype)
        s = np.zeros(m, dtype=spikes.dtype)
        x0 = x[0, lo:hi]
        for i in range(m):
            u[i] = x0[i]
        for t in range(steps):
            xt = x[t, lo:hi]
            if t > 0 and reset == 0:  # the PyTorch loop's order of operations: bitwise equal
                for i in range(m):
                    u[i] = (u[i] * beta + xt[i]) - s[i] * thr
            elif t > 0 and reset == 1:
                for i in range(m):
                    v = u[i] * beta
                    u[i] = (v - v * s[i]) + xt[i]
            elif t > 0:
                for i in range(m):
                    u[i] = u[i] * beta + xt[i]
            st = spikes[t, lo:hi]
            for i in range(m):
                fired = one if u[i] > thr else zero
                s[i] = fired
                st[i] = fired
            if keep_mem:
                mt = mem[t, lo:hi]
                for i in range(m):
                    mt[i] = u[i]


@njit(parallel=True, cache=True)
def leaky_backward(mem, gs, gm, pre, has_gs, has_gm, beta, thr, reset, sid, p1, p2, grad, partial, block):
    steps, n = mem.shape
    zero = mem.dtype.type(0)
    for b in prange((n + block - 1) // block):
        lo = b * block
        hi = min(n, lo + block)
        m = hi - lo
        carry = np.zeros(m, dtype=mem.dtype)
        total = np.zeros(m, dtype=mem.dtype)  # per-lane sums: a scalar sum would not vectorise
        d = np.empty(m, dtype=mem.dtype)
        h = np.empty(m, dtype=mem.dtype)
        for t in range(steps - 1, -1, -1):
            mt = mem[t, lo:hi]
            gt = grad[t, lo:hi]
            for i in range(m):
                d[i] = mt[i] - thr
            if reset == 1:  # a step that fired passes nothing back through the reset
                for i in range(m):
                    carry[i] = zero if d[i] > 0 else carry[i] * beta
            else:
                for i in range(m):
                    carry[i] = carry[i] * beta
            if has_gs:
                _surrogate(d, pre[t, lo:hi] if pre.shape[0] else d, h, sid, p1, p2)
                gst = gs[t, lo:hi]
                for i in range(m):
                    v = gst[i] * h[i]
                    total[i] += v
                    carry[i] += v
            if has_gm:
                gmt = gm[t, lo:hi]
                for i in range(m):
                    carry[i] += gmt[i]
            for i in range(m):
                gt[i] = carry[i]
        partial[b] = total.sum()
