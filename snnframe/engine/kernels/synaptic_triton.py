r"""Triton kernels of the two-state synaptic LIF neuron (snnTorch's ``Synaptic``), behind :mod:`synaptic`.

The same design as :mod:`lif_triton` (one program per block of neurons runs all steps; ``[T, N]``
views; any float input dtype computed in the state dtype; launched without FMA contraction, so
the forward pass is bitwise equal to the PyTorch loop), with states I and U:

    I_t = α I_{t-1} + X_t,  U_t = β U_{t-1} + I_t  (- θ r_t | - U r_t | nothing),  S_t = [U_t > θ]

Backward, with c_t = 1 - r_t for ``zero`` (else 1) and r_t = [U_{t-1} > θ]:

    G^U_t = g^S_t σ'(U_t - θ) + g^M_t + β c_{t+1} G^U_{t+1},   G^I_t = c_t G^U_t + α G^I_{t+1} = ∂L/∂X_t
    ∂α = Σ_{t≥1} G^I_t I_{t-1},  ∂β = Σ_{t≥1} c_t G^U_t U_{t-1},  ∂θ = -Σ g^S σ' - [subtract] Σ_{t≥1} G^U_t r_t

The backward reads U_{t-1} one step ahead (it is the next iteration's U_t) and the saved
I_{t-1} only when ∂α is wanted.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from snnframe.engine.kernels.lif_triton import (
    INTERPRETED,
    NUM_WARPS,
    TL_DTYPES,
    bf16_rtne,
    block_size,
    on_device,
    store,
    surrogate_grad,
)

__all__ = ["INTERPRETED", "synaptic_backward", "synaptic_forward"]


@triton.jit
def synaptic_forward_kernel(
    x_ptr,
    spk_ptr,
    mem_ptr,
    syn_ptr,
    alpha_ptr,
    beta_ptr,
    thr_ptr,
    T,
    N,
    x_stride_t,
    BLOCK: tl.constexpr,
    RESET: tl.constexpr,
    STORE_MEM: tl.constexpr,
    STORE_SYN: tl.constexpr,
    STATE: tl.constexpr,
):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    alpha = tl.load(alpha_ptr).to(STATE)
    beta = tl.load(beta_ptr).to(STATE)
    thr = tl.load(thr_ptr).to(STATE)
    i = tl.zeros([BLOCK], dtype=STATE)
    u = tl.zeros([BLOCK], dtype=STATE)
    s = tl.zeros([BLOCK], dtype=STATE)
    for t in range(T):
        row = tl.cast(t, tl.int64)
        x = tl.load(x_ptr + row * x_stride_t + offs, mask=mask, other=0.0).to(STATE)
        i = i * alpha + x  # snnTorch's order: α I + X, then β U + I
        u = u * beta + i
        if RESET == 0:
            u = u - s * thr
        elif RESET == 1:
            u = u - u * s
        s = tl.where(u > thr, 1.0, 0.0).to(STATE)
        out = row * N + offs
        tl.store(spk_ptr + out, s, mask=mask)
        if STORE_MEM:
            tl.store(mem_ptr + out, u, mask=mask)
        if STORE_SYN:
            tl.store(syn_ptr + out, i, mask=mask)


@triton.jit
def synaptic_backward_kernel(
    mem_ptr,
    syn_ptr,
    gs_ptr,
    gm_ptr,
    pre_ptr,
    gx_ptr,
    partial_ptr,
    alpha_ptr,
    beta_ptr,
    thr_ptr,
    const_ptr,
    T,
    N,
    gs_stride_t,
    gm_stride_t,
    programs,
    BLOCK: tl.constexpr,
    RESET: tl.constexpr,
    SID: tl.constexpr,
    HAS_GS: tl.constexpr,
    HAS_GM: tl.constexpr,
    WANT_ALPHA: tl.constexpr,
    WANT_BETA: tl.constexpr,
    WANT_THR: tl.constexpr,
    STATE: tl.constexpr,
    GX_BF16_RTNE: tl.constexpr,
):
    """``partial_ptr`` is ``[3, programs]``: per-program sums for ∂α, ∂β and -∂θ."""
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    alpha = tl.load(alpha_ptr).to(STATE)
    beta = tl.load(beta_ptr).to(STATE)
    thr = tl.load(thr_ptr).to(STATE)
    p1 = tl.load(const_ptr).to(STATE)
    p2 = tl.load(const_ptr + 1).to(STATE)
    gu_next = tl.zeros([BLOCK], dtype=STATE)  # G^U_{t+1}
    gi_next = tl.zeros([BLOCK], dtype=STATE)  # G^I_{t+1}
    acc_a = tl.zeros([BLOCK], dtype=STATE)
    acc_b = tl.zeros([BLOCK], dtype=STATE)
    acc_t = tl.zeros([BLOCK], dtype=STATE)
    last = tl.cast(T - 1, tl.int64)
    u = tl.load(mem_ptr + last * N + offs, mask=mask, other=0.0).to(STATE)
    for k in range(T):
        t = T - 1 - k
        row = tl.cast(t, tl.int64)
        off = row * N + offs
        has_prev = t > 0
        prev = tl.maximum(row - 1, 0)
        u_prev = tl.load(mem_ptr + prev * N + offs, mask=mask & has_prev, other=0.0).to(STATE)
        fired_before = u_prev > thr  # r_t (false at t = 0: U_{-1} = 0)
        d = u - thr
        gu = tl.zeros([BLOCK], dtype=STATE)
        if HAS_GS:
            gs = tl.load(gs_ptr + row * gs_stride_t + offs, mask=mask, other=0.0).to(STATE)
            v = gs * surrogate_grad(d, pre_ptr, off, mask, SID, p1, p2)
            gu = v
            if WANT_THR:
                acc_t += v
        if HAS_GM:
            gu = gu + tl.load(gm_ptr + row * gm_stride_t + offs, mask=mask, other=0.0).to(STATE)
        if RESET == 1:
            gu = gu + gu_next * tl.where(d > 0, 0.0, beta).to(STATE)  # β c_{t+1}, c_{t+1} = [U_t <= θ]
            gi = tl.where(fired_before, 0.0, gu)
        else:
            gu = gu + gu_next * beta
            gi = gu
        gi = gi + gi_next * alpha
        if WANT_BETA:
            if RESET == 1:
                acc_b += tl.where(fired_before, 0.0, gu * u_prev)
            else:
                acc_b += gu * u_prev  # U_{-1} = 0 at t = 0
        if WANT_THR:
            if RESET == 0:
                acc_t += tl.where(fired_before, gu, 0.0)
        if WANT_ALPHA:
            i_prev = tl.load(syn_ptr + prev * N + offs, mask=mask & has_prev, other=0.0).to(STATE)
            acc_a += gi * i_prev
        store(gx_ptr + off, gi, mask, GX_BF16_RTNE)
        gu_next = gu
        gi_next = gi
        u = u_prev
    if WANT_ALPHA:
        tl.store(partial_ptr + pid, tl.sum(tl.where(mask, acc_a, 0.0), axis=0))
    if WANT_BETA:
        tl.store(partial_ptr + programs + pid, tl.sum(tl.where(mask, acc_b, 0.0), axis=0))
    if WANT_THR:
        tl.store(partial_ptr + 2 * programs + pid, tl.sum(tl.where(mask, acc_t, 0.0), axis=0))


def synaptic_forward(x, spikes, mem, syn, alpha, beta, threshold, reset, block=None, num_warps=NUM_WARPS):
    """Fill ``spikes`` and, unless ``None``, ``mem`` / ``syn`` (``[T, N]``, state dtype) from ``x``."""
    steps, n = spikes.shape
    bs = block or block_size(n, x.device)
    with on_device(x.device):
        synaptic_forward_kernel[(triton.cdiv(n, bs),)](
            x,
            spikes,
            mem if mem is not None else spikes,
            syn if syn is not None else spikes,
            alpha,
            beta,
            threshold,
            steps,
            n,
            x.stride(0) if steps > 1 else n,
            BLOCK=bs,
            RESET=reset,
            STORE_MEM=mem is not None,
            STORE_SYN=syn is not None,
            STATE=TL_DTYPES[spikes.dtype],
            num_warps=num_warps,
            enable_fp_fusion=False,
        )


def synaptic_backward(
    mem,
    syn,
    grad_spikes,
    grad_mem,
    pre,
    grad,
    alpha,
    beta,
    threshold,
    consts,
    reset,
    sid,
    wants,
    block=None,
    num_warps=NUM_WARPS,
):
    """Fill ``grad`` (``∂L/∂X``); return ``[3, programs]`` partials of ∂α, ∂β and -∂θ.

    ``wants`` = (α, β, θ) flags; ``syn`` may be ``None`` unless ∂α is wanted.
    """
    steps, n = mem.shape
    bs = block or block_size(n, mem.device)
    programs = triton.cdiv(n, bs)
    partials = torch.zeros(3, programs, dtype=mem.dtype, device=mem.device)
    want_alpha, want_beta, want_threshold = wants
    with on_device(mem.device):
        synaptic_backward_kernel[(programs,)](
            mem,
            syn if syn is not None else mem,
            grad_spikes if grad_spikes is not None else mem,
            grad_mem if grad_mem is not None else mem,
            pre if pre is not None else mem,
            grad,
            partials,
            alpha,
            beta,
            threshold,
            consts,
            steps,
            n,
            grad_spikes.stride(0) if grad_spikes is not None and steps > 1 else n,
            grad_mem.stride(0) if grad_mem is not None and steps > 1 else n,
            programs,
            BLOCK=bs,
            RESET=reset,
            SID=sid,
            HAS_GS=grad_spikes is not None,
            HAS_GM=grad_mem is not None,
            WANT_ALPHA=want_alpha,
            WANT_BETA=want_beta,
            WANT_THR=want_threshold,
            STATE=TL_DTYPES[mem.dtype],
            GX_BF16_RTNE=bf16_rtne(grad.dtype),
            num_warps=num_warps,
            enable_fp_fusion=False,
        )
    return partials
