"""numba kernels for :mod:`snnframe.engine.sparse_conv`: event-driven convolution fused with max-pooling.

Arrays: input ``x [N, C, H, W]`` (any strides), weights ``w [C, K, K, O]``, pooled output,
window offsets and their gradient ``[N, OH, OW, O]`` (channels-last). Only non-zero inputs do
work: each adds its value times a weight patch into a per-sample conv buffer, which is then
max-pooled; only conv outputs that some window pools are kept.

Measured choices (CSNN conv1, 3,200 frames of 2x34x34 at 2 %, one thread, against the
previous version): the buffer stores conv column ``j * p + dx`` at ``[row, dx, j, :]``, so each
window offset reads a contiguous run (forward 34 -> 30 ms); row and column indices come from
lookup tables, not integer division per tap, and the bias gradient is summed in the same pass
over each sample's gradient, which also brings it into cache for the scattered reads of the
weight gradient (backward with bias 43 -> 21 ms). The scatter loops index arrays with loop
variables only, never reshaped views or computed offsets: either stops LLVM from vectorising
the loops over channels (measured 1.5-2x slower). The pooling loops, by contrast, run over a
reshaped view of a pooled row's ``OW * O`` values in one and keep the winners' offsets as floats
until they are stored: selects as wide as the compared values vectorise, ``uint8`` ones did not
(a trained quick start's conv1 and conv2, 992 samples, 2 threads: 20-23 -> 13-14 ms each).
"""

import numpy as np
from numba import njit, prange


@njit(inline="always")
def _split(size, p):
    """``t // p`` and ``t % p`` for ``t < size``."""
    div = np.empty(size, dtype=np.int64)
    mod = np.empty(size, dtype=np.int64)
    for t in range(size):
        div[t] = t // p
        mod[t] = t - div[t] * p
    return div, mod


@njit(parallel=True, cache=True)
def conv_pool_forward(x, w, bias, p, out, offsets, chunks, active):
    """Also counts each chunk's non-zero inputs into ``active[chunks]``."""
    n, c, h, wd = x.shape
    k = w.shape[1]
    _, oh, ow, o = out.shape
    rows, cols = oh * p, ow * p  # the conv outputs some window pools
    col_j, col_dx = _split(cols, p)
    owo = ow * o
    bias_row = np.empty(owo, dtype=out.dtype)
    for t in range(owo):
        bias_row[t] = bias[t % o]
    per = (n + chunks - 1) // chunks
    for part in prange(chunks):
        buf = np.empty((rows, p, ow, o), dtype=out.dtype)
        flat = buf.reshape((rows, p, ow * o))  # the pooling loops run over (j, q) in one
        bestf = np.empty(ow * o, dtype=out.dtype)
        atf = np.empty(ow * o, dtype=out.dtype)  # the winner's offset, as wide as the values
        count = 0
        for b in range(part * per, min(n, (part + 1) * per)):
            for i in range(rows):
                for dx in range(p):
                    for t in range(owo):
                        flat[i, dx, t] = bias_row[t]
            for cc in range(c):
                for y in range(h):
                    for xx in range(wd):
                        v = x[b, cc, y, xx]
                        if v != 0:
                            count += 1
                            for kh in range(k):
                                i = y - kh
                                if 0 <= i < rows:
                                    for kw in range(k):
                                        col = xx - kw
                                        if 0 <= col < cols:
                                            dx, j = col_dx[col], col_j[col]
                                            for q in range(o):
                                                buf[i, dx, j, q] += v * w[cc, kh, kw, q]
            for i in range(oh):
                for t in range(owo):
                    bestf[t] = flat[i * p, 0, t]
                    atf[t] = 0
                for dy in range(p):
                    for dx in range(p):
                        if dy == 0 and dx == 0:
                            continue
                        a = np.float32(dy * p + dx)
                        for t in range(owo):
                            v = flat[i * p + dy, dx, t]
                            take = (v > bestf[t]) | (v != v)  # PyTorch's rule: first maximum; NaN wins
                            bestf[t] = v if take else bestf[t]
                            atf[t] = a if take else atf[t]
                for j in range(ow):
                    for q in range(o):
                        out[b, i, j, q] = bestf[j * o + q]
                        offsets[b, i, j, q] = np.uint8(atf[j * o + q])
        active[part] = count


@njit(parallel=True, cache=True)
def conv_pool_weight_grad(x, offsets, grad, k, p, partial, partial_bias):
    """Per-chunk sums: ``partial[chunk, C, K, K, O]`` of the weight gradient and, unless it is
    empty, ``partial_bias[chunk, OW, O]`` of ``grad`` over samples and output rows."""
    n, c, h, wd = x.shape
    _, oh, ow, o = grad.shape
    rows, cols = oh * p, ow * p
    row_i, row_dy = _split(rows, p)
    col_j, col_dx = _split(cols, p)
    chunks = partial.shape[0]
    want_bias = partial_bias.shape[0] > 0
    per = (n + chunks - 1) // chunks
    for part in prange(chunks):
        acc = np.zeros((c, k, k, o), dtype=partial.dtype)
        acc_bias = np.zeros((ow, o), dtype=partial.dtype)
        for b in range(part * per, min(n, (part + 1) * per)):
            if want_bias:  # also brings the sample's gradient into cache for the loop below
                for i in range(oh):
                    for j in range(ow):
                        for q in range(o):
                            acc_bias[j, q] += grad[b, i, j, q]
            for cc in range(c):
                for y in range(h):
                    for xx in range(wd):
                        v = x[b, cc, y, xx]
                        if v != 0:
                            for kh in range(k):
                                oy = y - kh
                                if 0 <= oy < rows:
                                    i = row_i[oy]
                                    ady = row_dy[oy] * p
                                    for kw in range(k):
                                        ox = xx - kw
                                        if 0 <= ox < cols:
                                            j = col_j[ox]
                                            at = ady + col_dx[ox]
                                            for q in range(o):  # only the window's winner gets gradient
                                                won = offsets[b, i, j, q] == at
                                                acc[cc, kh, kw, q] += (v * grad[b, i, j, q]) * won
        partial[part] = acc
        if want_bias:
            partial_bias[part] = acc_bias


@njit(parallel=True, cache=True)
def conv_pool_weight_grad_unpooled(x, offsets, grad, k, p, partial, partial_bias):
    """:func:`conv_pool_weight_grad` through each sample's gradient at conv resolution (zero but
    at the windows' winners): a non-zero input then adds one contiguous run of ``K * O`` per
    kernel row, with no winner test. Unpooling costs a pass over the conv output per sample, so
    this wins when outputs are narrow and inputs are many (chosen in ``sparse_conv``)."""
    n, c, h, wd = x.shape
    _, oh, ow, o = grad.shape
    rows, cols = oh * p, ow * p
    chunks = partial.shape[0]
    want_bias = partial_bias.shape[0] > 0
    per = (n + chunks - 1) // chunks
    ko = k * o
    for part in prange(chunks):
        acc = np.zeros((c, k, ko), dtype=partial.dtype)  # kernel columns reversed: [C, K, K' * O]
        acc_bias = np.zeros((ow, o), dtype=partial.dtype)
        full = np.empty((rows, cols * o), dtype=partial.dtype)  # the winners' gradient at conv resolution
        for b in range(part * per, min(n, (part + 1) * per)):
            for r in range(rows):
                fr = full[r]
                for t in range(cols * o):
                    fr[t] = 0
            for i in range(oh):
                for j in range(ow):
                    for q in range(o):
                        g = grad[b, i, j, q]
                        at = offsets[b, i, j, q]
                        full[i * p + at // p, (j * p + at % p) * o + q] = g
                        if want_bias:
                            acc_bias[j, q] += g
            for cc in range(c):
                for y in range(h):
                    for xx in range(wd):
                        v = x[b, cc, y, xx]
                        if v != 0:
                            lo = k - 1 - min(k - 1, xx)
                            hi = k - 1 - max(0, xx - cols + 1)
                            if lo > hi:
                                continue
                            n_run = (hi - lo + 1) * o
                            src0 = (xx - k + 1 + lo) * o
                            dst0 = lo * o
                            for kh in range(k):
                                oy = y - kh
                                if 0 <= oy < rows:
                                    src = full[oy, src0 : src0 + n_run]
                                    dst = acc[cc, kh, dst0 : dst0 + n_run]
                                    for t in range(n_run):
                                        dst[t] += v * src[t]
        for cc in range(c):
            for kh in range(k):
                for kw in range(k):
                    for q in range(o):
                        partial[part, cc, kh, kw, q] = acc[cc, kh, (k - 1 - kw) * o + q]
        if want_bias:
            partial_bias[part] = acc_bias


@njit(parallel=True, cache=True)
def conv_pool_input_grad(offsets, grad, w, p, out):
    """``out [N, H, W, C]``: the input gradient, from the pooled gradient and window offsets
    ``[N, OH, OW, O]`` and weights ``w [O, K, K, C]`` (C-contiguous).

    Only each window's winner has a gradient, so per pooled position the winners' weight
    patches are summed first, one sum per window offset (``acc``, in cache), then added into
    ``out`` once each: a quarter of the dense transposed convolution's multiply-adds for 2x2
    pooling. The weights are read as flat ``[O, K*K*C]`` rows, which the sums run along.
    """
    n, h, wd, c = out.shape
    _, oh, ow, o = grad.shape
    k = w.shape[1]
    kkc = k * k * c
    flat = w.reshape((o, kkc))
    pp = p * p
    for b in prange(n):
        acc = np.empty((pp, kkc), dtype=out.dtype)
        patch = acc.reshape((pp, k, k, c))
        for y in range(h):
            for xx in range(wd):
                for cc in range(c):
                    out[b, y, xx, cc] = 0
        for i in range(oh):
            for j in range(ow):
                for d in range(pp):
                    for t in range(kkc):
                        acc[d, t] = 0
                for q in range(o):
                    g = grad[b, i, j, q]
                    if g != 0:
                        d = offsets[b, i, j, q]
                        for t in range(kkc):
                            acc[d, t] += g * flat[q, t]
                for d in range(pp):
                    oy = i * p + d // p
                    ox = j * p + d % p
                    for kh in range(k):
                        for kw in range(k):
                            for cc in range(c):
                                out[b, oy + kh, ox + kw, cc] += patch[d, kh, kw, cc]
