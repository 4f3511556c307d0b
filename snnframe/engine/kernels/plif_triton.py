r"""Triton kernels of the parametric LIF neuron (Fang et al. 2021, SpikingJelly's ``ParametricLIFNode``).

The same design as :mod:`lif_triton`. With k = 1/τ and V_{-1} = 0:

    H_t = (X_t - V_{t-1}) k + V_{t-1}  (decay_input)   or   H_t = V_{t-1} (1 - k) + X_t
    S_t = [H_t > θ],   V_t = H_t (1 - S_t)  (zero)   or   V_t = H_t - θ S_t  (subtract)

The reset acts on the same step and gradients flow through it (unless ``detach_reset``):

    G_t = g^S_t h_t + g^H_t + (G_{t+1} (1 - k)) ∂V_t/∂H_t,   h_t = σ'(H_t - θ),
    ∂V_t/∂H_t = [H_t <= θ] - H_t h_t  (zero),   1 - θ h_t  (subtract)

∂L/∂X_t = k G_t (decay_input) or G_t; ∂k = Σ_t G_t (X_t - V_{t-1}) or -Σ_t G_t V_{t-1}, with
V_{t-1} recomputed from the saved H_{t-1} (read one step ahead, as the next iteration's H_t).
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

__all__ = ["INTERPRETED", "plif_backward", "plif_forward"]


@triton.jit
def plif_forward_kernel(
    x_ptr,
    spk_ptr,
    h_ptr,
    k_ptr,
    const_ptr,
    T,
    N,
    x_stride_t,
    BLOCK: tl.constexpr,
    RESET: tl.constexpr,
    DECAY_INPUT: tl.constexpr,
    STORE_H: tl.constexpr,
    STATE: tl.constexpr,
):
    """``const_ptr`` = [θ]."""
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    k = tl.load(k_ptr).to(STATE)
    keep = 1.0 - k
    thr = tl.load(const_ptr).to(STATE)
    v = tl.zeros([BLOCK], dtype=STATE)
    for t in range(T):
        row = tl.cast(t, tl.int64)
        x = tl.load(x_ptr + row * x_stride_t + offs, mask=mask, other=0.0).to(STATE)
        if DECAY_INPUT:  # SpikingJelly's order: V + k (X - V), computed as (X - V) k + V
            h = (x - v) * k + v
        else:
            h = v * keep + x
        s = tl.where(h > thr, 1.0, 0.0).to(STATE)
        out = row * N + offs
        tl.store(spk_ptr + out, s, mask=mask)
        if STORE_H:
            tl.store(h_ptr + out, h, mask=mask)
        if RESET == 1:
            v = h * (1.0 - s)
        else:
            v = h - s * thr


@triton.jit
def plif_backward_kernel(
    h_ptr,
    x_ptr,
    gs_ptr,
    gh_ptr,
    pre_ptr,
    gx_ptr,
    pk_ptr,
    k_ptr,
    const_ptr,
    T,
    N,
    x_stride_t,
    gs_stride_t,
    gh_stride_t,
    BLOCK: tl.constexpr,
    RESET: tl.constexpr,
    SID: tl.constexpr,
    HAS_GS: tl.constexpr,
    HAS_GH: tl.constexpr,
    DECAY_INPUT: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    WANT_K: tl.constexpr,
    STATE: tl.constexpr,
    GX_BF16_RTNE: tl.constexpr,
):
    """``const_ptr`` = [θ, p1, p2]; ``pk_ptr`` gets one partial of Σ G (X - V) (or Σ G V) per program."""
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    k = tl.load(k_ptr).to(STATE)
    keep = 1.0 - k
    thr = tl.load(const_ptr).to(STATE)
    p1 = tl.load(const_ptr + 1).to(STATE)
    p2 = tl.load(const_ptr + 2).to(STATE)
    g_next = tl.zeros([BLOCK], dtype=STATE)  # G_{t+1}
    acc = tl.zeros([BLOCK], dtype=STATE)
    last = tl.cast(T - 1, tl.int64)
    h = tl.load(h_ptr + last * N + offs, mask=mask, other=0.0).to(STATE)
    for i in range(T):
        t = T - 1 - i
        row = tl.cast(t, tl.int64)
        off = row * N + offs
        prev = tl.maximum(row - 1, 0)
        h_prev = tl.load(h_ptr + prev * N + offs, mask=mask & (t > 0), other=0.0).to(STATE)
        d = h - thr
        g = tl.zeros([BLOCK], dtype=STATE)
        if HAS_GS or not DETACH_RESET:
            sg = surrogate_grad(d, pre_ptr, off, mask, SID, p1, p2)
        if HAS_GS:
            g = tl.load(gs_ptr + row * gs_stride_t + offs, mask=mask, other=0.0).to(STATE) * sg
        if HAS_GH:
            g = g + tl.load(gh_ptr + row * gh_stride_t + offs, mask=mask, other=0.0).to(STATE)
        if RESET == 1:  # ∂V/∂H = [H <= θ] (- H σ')
            dv = tl.where(d > 0, 0.0, 1.0).to(STATE)
            if not DETACH_RESET:
                dv = dv - h * sg
        else:  # 1 (- θ σ')
            if DETACH_RESET:
                dv = tl.full([BLOCK], 1.0, STATE)
            else:
                dv = 1.0 - thr * sg
        g = g + (g_next * keep) * dv
        if DECAY_INPUT:
            store(gx_ptr + off, g * k, mask, GX_BF16_RTNE)
        else:
            store(gx_ptr + off, g, mask, GX_BF16_RTNE)
        if WANT_K:
            fired_prev = h_prev > thr  # false at t = 0 (H_{-1} = 0 < θ)
            if RESET == 1:
                v_prev = tl.where(fired_prev, 0.0, h_prev)
            else:
                v_prev = h_prev - tl.where(fired_prev, thr, 0.0)
            if DECAY_INPUT:
                x = tl.load(x_ptr + row * x_stride_t + offs, mask=mask, other=0.0).to(STATE)
                acc += g * (x - v_prev)
            else:
                acc += g * v_prev
        g_next = g
        h = h_prev
    if WANT_K:
        tl.store(pk_ptr + pid, tl.sum(tl.where(mask, acc, 0.0), axis=0))


def plif_forward(x, spikes, charged, k, consts, reset, decay_input, block=None, num_warps=NUM_WARPS):
    """Fill ``spikes`` and, unless ``None``, ``charged`` = H (``[T, N]``, state dtype) from ``x``."""
    steps, n = spikes.shape
    bs = block or block_size(n, x.device)
    with on_device(x.device):
        plif_forward_kernel[(triton.cdiv(n, bs),)](
            x,
            spikes,
            charged if charged is not None else spikes,
            k,
            consts,
            steps,
            n,
            x.stride(0) if steps > 1 else n,
            BLOCK=bs,
            RESET=reset,
            DECAY_INPUT=decay_input,
            STORE_H=charged is not None,
            STATE=TL_DTYPES[spikes.dtype],
            num_warps=num_warps,
            enable_fp_fusion=False,
        )


def plif_backward(
    charged,
    x,
    grad_spikes,
    grad_charged,
    pre,
    grad,
    k,
    consts,
    reset,
    sid,
    decay_input,
    detach_reset,
    want_k,
    block=None,
    num_warps=NUM_WARPS,
):
    """Fill ``grad`` (``∂L/∂X``); return the per-program partials of ∂k (negated without ``decay_input``).

    ``x`` is needed only for ∂k with ``decay_input``.
    """
    steps, n = charged.shape
    bs = block or block_size(n, charged.device)
    programs = triton.cdiv(n, bs)
    partial = torch.zeros(programs, dtype=charged.dtype, device=charged.device)
    with on_device(charged.device):
        plif_backward_kernel[(programs,)](
            charged,
            x if x is not None else charged,
            grad_spikes if grad_spikes is not None else charged,
            grad_charged if grad_charged is not None else charged,
            pre if pre is not None else charged,
            grad,
            partial,
            k,
            consts,
            steps,
            n,
            x.stride(0) if x is not None and steps > 1 else n,
            grad_spikes.stride(0) if grad_spikes is not None and steps > 1 else n,
            grad_charged.stride(0) if grad_charged is not None and steps > 1 else n,
            BLOCK=bs,
            RESET=reset,
            SID=sid,
            HAS_GS=grad_spikes is not None,
            HAS_GH=grad_charged is not None,
            DECAY_INPUT=decay_input,
            DETACH_RESET=detach_reset,
            WANT_K=want_k,
            STATE=TL_DTYPES[charged.dtype],
            GX_BF16_RTNE=bf16_rtne(grad.dtype),
            num_warps=num_warps,
            enable_fp_fusion=False,
        )
    return partial
