r"""Triton kernels behind :mod:`lif` on CUDA: the LIF scan (``leaky``, affine ``StepNeuron``) and ``alif``.

One program holds ``BLOCK`` neurons in registers and runs all ``T`` steps (SpikingJelly's
Triton/CuPy design: one launch per layer and direction instead of ~5 per step). Tensors are
``[T, N]`` views in the memory order of one step (the wrapper's ``as_2d``); the input may have
row stride 0 (time-expanded) and any float dtype: it is loaded and computed in the state dtype
(float32, float64 for float64 input). Spikes and the saved membrane are stored in the state
dtype, the input gradient in the input's dtype.

Numerics (see ``docs/engine.md``): the operations are the PyTorch loop's, in its order, and the
kernels are launched with ``enable_fp_fusion=False`` (no FMA contraction of ``β U + X``), so the
forward pass is bitwise equal to the PyTorch loop; divisions are IEEE (``div.rn``, not the
approximate ``div.full`` ``/`` compiles to). Parameter gradients are reduced per program
(one partial per program, summed by PyTorch: deterministic, no atomics). ``β``, ``θ`` and the
other scalars are read from device tensors: no host synchronisation.

Under ``TRITON_INTERPRET=1`` (the tests, on CPU tensors) the same code runs in Triton's
interpreter, which rounds float32 to bfloat16 by truncation: stores to bfloat16 then round to
nearest even by bit arithmetic, as the GPU's ``cvt.rn.bf16.f32`` does.
"""

from __future__ import annotations

import contextlib
import functools

import torch
import triton
import triton.language as tl

TL_DTYPES = {torch.float32: tl.float32, torch.float64: tl.float64}
NUM_WARPS = 4


# ---- shared device functions --------------------------------------------------------------------


@triton.jit
def surrogate_grad(d, pre_ptr, off, mask, SID: tl.constexpr, p1, p2):
    """σ'(d) in d's dtype, computed as ``engine.surrogate``'s ``derivative`` computes it.

    ``SID`` indexes ``engine.surrogate.KERNEL_FORMS``; past them (``kernels.lif.PRECOMPUTED``) σ'
    is loaded from ``pre_ptr``, computed beforehand by the surrogate's ``derivative``.
    """
    if SID == 0:  # fast sigmoid: (k|d| + 1)^2 then its reciprocal; p1 = k
        a = p1 * tl.abs(d) + 1.0
        h = tl.fdiv(tl.full(d.shape, 1.0, d.dtype), a * a, ieee_rounding=True)
    elif SID == 1:  # atan: (α/2) / (1 + (πα/2 d)^2), which PyTorch computes as reciprocal * α/2
        z = p2 * d
        h = tl.fdiv(tl.full(d.shape, 1.0, d.dtype), 1.0 + z * z, ieee_rounding=True) * p1
    elif SID == 2:  # sigmoid: k s(kd) s(-kd); p1 = k
        z = p1 * d
        h = p1 * tl.sigmoid(z) * tl.sigmoid(-z)
    elif SID == 3:  # snnTorch's triangular: p1 for d < 0, else -p1
        h = tl.where(d < 0, p1, -p1).to(d.dtype)
    elif SID == 4:  # straight-through
        h = tl.full(d.shape, 1.0, d.dtype)
    else:  # PRECOMPUTED by the surrogate's own ``derivative``
        h = tl.load(pre_ptr + off, mask=mask, other=0.0).to(d.dtype)
    return h


@triton.jit
def _round_bf16(v):
    """float32 -> bfloat16, round to nearest even by bit arithmetic (the interpreter truncates)."""
    u = v.to(tl.uint32, bitcast=True)
    u = u + 0x7FFF + ((u >> 16) & 1)
    return (u >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)


@triton.jit
def store(ptr, v, mask, BF16_RTNE: tl.constexpr):
    """Store ``v`` converted to the pointer's dtype (``BF16_RTNE``: by hand, for the interpreter)."""
    if BF16_RTNE:
        tl.store(ptr, _round_bf16(v.to(tl.float32)), mask=mask)
    else:
        tl.store(ptr, v.to(ptr.dtype.element_ty), mask=mask)


# Whether @triton.jit built interpreter functions (TRITON_INTERPRET=1 when this module was imported):
# then, and only then, the kernels take CPU tensors.
INTERPRETED = type(store).__name__ == "InterpretedFunction"


# ---- forward ------------------------------------------------------------------------------------


@triton.jit
def lif_forward_kernel(
    x_ptr,
    spk_ptr,
    mem_ptr,
    shifted_ptr,
    beta_ptr,
    thr_ptr,
    const_ptr,
    T,
    N,
    x_stride_t,
    BLOCK: tl.constexpr,
    RESET: tl.constexpr,
    STORE_MEM: tl.constexpr,
    ADAPT: tl.constexpr,
    STORE_SHIFTED: tl.constexpr,
    STATE: tl.constexpr,
):
    """Spikes and (``STORE_MEM``) U; with ``ADAPT`` the adaptive threshold Θ_t = θ + a_t of ``alif``
    (a_t = ρ a_{t-1} + β_a S_{t-1}, ``const_ptr`` = [β_a, ρ]) and (``STORE_SHIFTED``) D = U - Θ."""
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    beta = tl.load(beta_ptr).to(STATE)
    thr = tl.load(thr_ptr).to(STATE)
    u = tl.zeros([BLOCK], dtype=STATE)
    s = tl.zeros([BLOCK], dtype=STATE)  # S_{t-1} = r_t
    if ADAPT:
        beta_a = tl.load(const_ptr).to(STATE)
        rho = tl.load(const_ptr + 1).to(STATE)
        a = tl.zeros([BLOCK], dtype=STATE)
    for t in range(T):
        row = tl.cast(t, tl.int64)  # T * N may pass 2^31 (and t is a plain int in the interpreter)
        x = tl.load(x_ptr + row * x_stride_t + offs, mask=mask, other=0.0).to(STATE)
        # step 0: 0 * β + x = x (the loop's copy), up to the sign of a zero
        if RESET == 0:  # subtract: (β U + X) - θ r, the loop's (and snnTorch's) order
            u = (u * beta + x) - s * thr
        elif RESET == 1:  # zero: v = β U, (v - v r) + X
            v = u * beta
            u = (v - v * s) + x
        else:
            u = u * beta + x
        out = row * N + offs
        if ADAPT:
            a = a * rho + s * beta_a
            d = (u - a) - thr
            s = tl.where(d > 0, 1.0, 0.0).to(STATE)
            if STORE_SHIFTED:
                tl.store(shifted_ptr + out, d, mask=mask)
        else:
            s = tl.where(u > thr, 1.0, 0.0).to(STATE)
        tl.store(spk_ptr + out, s, mask=mask)
        if STORE_MEM:
            tl.store(mem_ptr + out, u, mask=mask)


# ---- backward -----------------------------------------------------------------------------------


@triton.jit
def lif_backward_kernel(
    mem_ptr,
    shifted_ptr,
    gs_ptr,
    gm_ptr,
    pre_ptr,
    gx_ptr,
    pbeta_ptr,
    pthr_ptr,
    beta_ptr,
    thr_ptr,
    const_ptr,
    T,
    N,
    gs_stride_t,
    gm_stride_t,
    BLOCK: tl.constexpr,
    RESET: tl.constexpr,
    SID: tl.constexpr,
    HAS_GS: tl.constexpr,
    HAS_GM: tl.constexpr,
    HAS_SHIFTED: tl.constexpr,
    WANT_BETA: tl.constexpr,
    WANT_THR: tl.constexpr,
    STATE: tl.constexpr,
    GX_BF16_RTNE: tl.constexpr,
):
    r"""Reverse time: G_t = g^S_t σ'(D_t) + g^M_t + a_{t+1} G_{t+1}; ∂L/∂X_t = G_t.

    D_t = U_t - θ (leaky), or read from ``shifted_ptr`` (``HAS_SHIFTED``: alif's U_t - Θ_t; U is
    then loaded only for ∂β). At step t the program holds D_t and G_{t+1}, so step t+1's terms of
    the parameter gradients need no extra load: r_{t+1} = [D_t > 0],
    ∂β += G_{t+1} (1 - r_{t+1})^[zero] U_t, and ``pthr`` gets Σ g^S σ' + [subtract] Σ G_{t+1} r_{t+1}
    (the caller negates it). ``const_ptr`` = [p1, p2] of the surrogate.
    """
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    beta = tl.load(beta_ptr).to(STATE)
    thr = tl.load(thr_ptr).to(STATE)
    p1 = tl.load(const_ptr).to(STATE)
    p2 = tl.load(const_ptr + 1).to(STATE)
    g_next = tl.zeros([BLOCK], dtype=STATE)  # G_{t+1}
    acc_beta = tl.zeros([BLOCK], dtype=STATE)
    acc_thr = tl.zeros([BLOCK], dtype=STATE)
    for i in range(T):
        t = T - 1 - i
        row = tl.cast(t, tl.int64)
        off = row * N + offs
        if HAS_SHIFTED:
            d = tl.load(shifted_ptr + off, mask=mask, other=0.0).to(STATE)
            if WANT_BETA:
                u = tl.load(mem_ptr + off, mask=mask, other=0.0).to(STATE)
        else:
            u = tl.load(mem_ptr + off, mask=mask, other=0.0).to(STATE)
            d = u - thr
        fired = d > 0  # r_{t+1}
        # the loop's order: G = g^S σ' (+ g^M), then G += G_{t+1} a_{t+1}
        g = tl.zeros([BLOCK], dtype=STATE)
        if HAS_GS:
            gs = tl.load(gs_ptr + row * gs_stride_t + offs, mask=mask, other=0.0).to(STATE)
            v = gs * surrogate_grad(d, pre_ptr, off, mask, SID, p1, p2)
            g = v
            if WANT_THR:
                acc_thr += v
        if HAS_GM:
            g = g + tl.load(gm_ptr + row * gm_stride_t + offs, mask=mask, other=0.0).to(STATE)
        if RESET == 1:  # a step that fired passes nothing back through the reset
            g = g + g_next * tl.where(fired, 0.0, beta).to(STATE)
        else:
            g = g + g_next * beta
        if WANT_BETA:
            if RESET == 1:
                acc_beta += tl.where(fired, 0.0, g_next * u)
            else:
                acc_beta += g_next * u
        if WANT_THR:
            if RESET == 0:
                acc_thr += tl.where(fired, g_next, 0.0)
        store(gx_ptr + off, g, mask, GX_BF16_RTNE)
        g_next = g
    if WANT_BETA:
        tl.store(pbeta_ptr + pid, tl.sum(tl.where(mask, acc_beta, 0.0), axis=0))
    if WANT_THR:
        tl.store(pthr_ptr + pid, tl.sum(tl.where(mask, acc_thr, 0.0), axis=0))


# ---- launchers (all tensors [T, N] views, scalars 0-d tensors on the same device) ---------------


@functools.cache
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def block_size(n: int, device: torch.device) -> int:
    """Neurons per program.

    GPU: the largest of 1024/512/256 that still gives >= 4 programs per SM (each program's steps
    run one after another, so latency is hidden by many programs), else 128; untuned until
    ``benchmarks/gpu_check.sh`` runs its sweep on a GPU. Interpreter: as few programs as
    possible (it runs programs one by one, ~50 us per operation and step).
    """
    if device.type != "cuda" or INTERPRETED:
        return min(triton.next_power_of_2(max(n, 16)), 1 << 14)
    sms = _sm_count(device.index if device.index is not None else torch.cuda.current_device())
    for bs in (1024, 512, 256):
        if triton.cdiv(n, bs) >= 4 * sms:
            return bs
    return 128


def on_device(device: torch.device):
    """Triton launches on the current CUDA device: make it the tensors'."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def bf16_rtne(dtype: torch.dtype) -> bool:
    return INTERPRETED and dtype == torch.bfloat16


def lif_forward(x, spikes, mem, shifted, beta, threshold, consts, reset, adapt, block=None, num_warps=NUM_WARPS):
    """Fill ``spikes`` and, unless ``None``, ``mem`` / ``shifted`` (``[T, N]``, state dtype) from ``x``."""
    steps, n = spikes.shape
    state = spikes.dtype
    bs = block or block_size(n, x.device)
    x_stride = x.stride(0) if steps > 1 else n
    with on_device(x.device):
        lif_forward_kernel[(triton.cdiv(n, bs),)](
            x,
            spikes,
            mem if mem is not None else spikes,
            shifted if shifted is not None else spikes,
            beta,
            threshold,
            consts,
            steps,
            n,
            x_stride,
            BLOCK=bs,
            RESET=reset,
            STORE_MEM=mem is not None,
            ADAPT=adapt,
            STORE_SHIFTED=shifted is not None,
            STATE=TL_DTYPES[state],
            num_warps=num_warps,
            enable_fp_fusion=False,
        )


def lif_backward(
    mem,
    shifted,
    grad_spikes,
    grad_mem,
    pre,
    grad,
    beta,
    threshold,
    consts,
    reset,
    sid,
    want_beta,
    want_threshold,
    block=None,
    num_warps=NUM_WARPS,
):
    """Fill ``grad`` (``∂L/∂X``, any float dtype); return the per-program partials ``(∂β, Σ for -∂θ)``.

    ``mem`` may be ``None`` when ``shifted`` is given and ``∂β`` is not wanted; ``grad_spikes`` /
    ``grad_mem`` may be ``None`` (no gradient reached that output); ``pre`` holds σ' for the
    precomputed surrogate id.
    """
    ref = shifted if shifted is not None else mem
    steps, n = ref.shape
    state = ref.dtype
    bs = block or block_size(n, ref.device)
    programs = triton.cdiv(n, bs)
    partials = torch.zeros(2, programs, dtype=state, device=ref.device)
    with on_device(ref.device):
        lif_backward_kernel[(programs,)](
            mem if mem is not None else ref,
            ref,
            grad_spikes if grad_spikes is not None else ref,
            grad_mem if grad_mem is not None else ref,
            pre if pre is not None else ref,
            grad,
            partials[0],
            partials[1],
            beta,
            threshold,
            consts,
            steps,
            n,
            grad_spikes.stride(0) if grad_spikes is not None and steps > 1 else n,
            grad_mem.stride(0) if grad_mem is not None and steps > 1 else n,
            BLOCK=bs,
            RESET=reset,
            SID=sid,
            HAS_GS=grad_spikes is not None,
            HAS_GM=grad_mem is not None,
            HAS_SHIFTED=shifted is not None,
            WANT_BETA=want_beta,
            WANT_THR=want_threshold,
            STATE=TL_DTYPES[state],
            GX_BF16_RTNE=bf16_rtne(grad.dtype),
            num_warps=num_warps,
            enable_fp_fusion=False,
        )
    return partials[0], partials[1]
