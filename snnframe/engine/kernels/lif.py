r"""The LIF time loop on CPU: numba kernels for forward and adjoint, one pass each (``lif_numba``).

The PyTorch loop issues ~4 tensor operations per time step, each streaming a whole step through
memory; these kernels keep a block of neurons' state in registers/cache and run all ``T`` steps
for it, in parallel over blocks (the events CSNN's first layer, ``[100, 86400]``: forward +
backward 11 ms against 25 ms for the PyTorch loop; see ``docs/engine.md``). Without numba, or
for tensors it does not handle, callers run their PyTorch loop instead; ``SNNFRAME_NUMBA=0``
forces it.

Tensors are handed to the kernels as ``[T, N]`` arrays in the memory order of one time step
(channels-last stays channels-last); a time-expanded input has stride 0 along ``T``.
The arithmetic follows the PyTorch loop's order, so forward results are bitwise equal.

On CUDA the Triton kernels of ``lif_triton`` run instead (``SNNFRAME_TRITON=0`` switches them
off): the same one-pass design on the GPU, for any float input dtype, the ``alif`` variant
included; the ``triton_*`` functions here hand them ``[T, N]`` views.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from snnframe.engine import kernels
from snnframe.engine.buffers import step_buffer
from snnframe.engine.surrogate import KERNEL_FORMS, ATan

RESETS = {"subtract": 0, "zero": 1, "none": 2}
BLOCK = 2048  # neurons per parallel work item: state and one step of I/O stay in cache
PRECOMPUTED = len(KERNEL_FORMS)  # surrogate id: read σ' from an array computed by ``derivative``


def surrogate_code(surrogate) -> tuple[int, float, float]:
    """``(id, p1, p2)`` for the kernels: an inline form from ``surrogate.kernel_form()``, or
    :data:`PRECOMPUTED` when the surrogate has none (its ``derivative`` then runs on all steps)."""
    form = surrogate.kernel_form() if callable(getattr(surrogate, "kernel_form", None)) else None
    if form is None or form.form not in KERNEL_FORMS:
        return PRECOMPUTED, 0.0, 0.0
    sid, param = KERNEL_FORMS.index(form.form), float(form.param)
    if form.form is ATan:  # σ'(x) = (α/2) / (1 + (π α x / 2)^2): pass α/2 and πα/2
        return sid, param / 2, math.pi * param / 2
    return sid, param, 0.0


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the kernels can run on these tensors (CPU, float32/float64, numba importable)."""
    if not all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) for t in tensors):
        return False
    return _load() is not None


def _load():
    return kernels.load("lif_numba")


def memory_order(step: torch.Tensor) -> list[int]:
    """Dimensions of a dense step from outermost to innermost in memory."""
    return sorted(range(step.dim()), key=lambda d: -step.stride(d))


def as_2d(x: torch.Tensor, order: list[int]) -> torch.Tensor | None:
    """``x [T, ...]`` as a ``[T, N]`` view whose rows are steps in ``order``; ``None`` if not a view."""
    v = x.permute(0, *[d + 1 for d in order])
    steps, n = v.shape[0], v[0].numel()
    if not v[0].is_contiguous() or (steps > 1 and v.stride(0) not in (0, n)):
        return None
    return v.reshape(steps, n)


def rows(x: torch.Tensor, order: list[int], like: torch.Tensor, dense: bool = False) -> torch.Tensor:
    """A ``[T, N]`` view of ``x`` in the step layout of ``like`` (copied into it if needed).

    The view's row stride is ``N``, or 0 for time-expanded ``x`` unless ``dense``.
    """
    view = as_2d(x, order)
    if view is None or (dense and x.shape[0] > 1 and view.stride(0) == 0):
        copy = torch.empty_like(like, dtype=x.dtype)
        copy.copy_(x)
        view = as_2d(copy, order)
    return view.detach()


def arrays(x: torch.Tensor, order: list[int], like: torch.Tensor):
    """A numpy ``[T, N]`` view of ``x`` in the step layout of ``like`` (copied into it if needed)."""
    return rows(x, order, like).numpy()


def _scalar_type(dtype: torch.dtype):
    return np.float64 if dtype == torch.float64 else np.float32


@torch.compiler.disable  # numba code is opaque to torch.compile: run it eagerly
def leaky_forward(x, beta, threshold, reset, spikes, mem):
    """Fill ``spikes`` (and ``mem`` unless ``None``) for input ``x``; all ``[T, ...]``."""
    k = _load()
    order = memory_order(spikes[0])
    np_dtype = _scalar_type(spikes.dtype)
    s2 = as_2d(spikes, order).numpy()
    m2 = as_2d(mem, order).numpy() if mem is not None else s2[:0]
    kernels.set_threads()
    k.leaky_forward(
        arrays(x, order, spikes), np_dtype(beta), np_dtype(threshold), RESETS[reset], s2, m2, mem is not None, BLOCK
    )


@torch.compiler.disable  # numba code is opaque to torch.compile: run it eagerly
def leaky_backward(mem, grad_spikes, grad_mem, beta, threshold, reset, surrogate, grad):
    """Fill ``grad`` (``∂L/∂X``) and return :math:`\\sum_t g^S_t σ'(U_t - θ)`."""
    k = _load()
    order = memory_order(mem[0])
    np_dtype = _scalar_type(mem.dtype)
    m2 = as_2d(mem, order).detach().numpy()
    empty = m2[:0]
    gs = arrays(grad_spikes, order, mem) if grad_spikes is not None else empty
    gm = arrays(grad_mem, order, mem) if grad_mem is not None else empty
    sid, p1, p2 = surrogate_code(surrogate)
    pre = empty
    if sid == PRECOMPUTED and grad_spikes is not None:
        pre = arrays(surrogate.derivative(mem - threshold), order, mem)
    blocks = math.ceil(m2.shape[1] / BLOCK)
    partial = torch.zeros(blocks, dtype=torch.float64).numpy()
    kernels.set_threads()
    k.leaky_backward(
        m2,
        gs,
        gm,
        pre,
        grad_spikes is not None,
        grad_mem is not None,
        np_dtype(beta),
        np_dtype(threshold),
        RESETS[reset],
        sid,
        np_dtype(p1),
        np_dtype(p2),
        as_2d(grad, order).numpy(),
        partial,
        BLOCK,
    )
    return float(partial.sum())


# ---- Triton (CUDA) ----------------------------------------------------------------------------


def kernel_input(x: torch.Tensor):
    """``(x, module)``: the input as the LIF kernels read it and the Triton module, if it runs on ``x``."""
    return kernels.triton_input("lif_triton", x)


def triton_kernels(*tensors: torch.Tensor):
    """The ``lif_triton`` module if its kernels may run on ``tensors`` (see ``kernels.triton``), else ``None``."""
    return kernels.triton("lif_triton", *tensors)


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the recurrence runs in: float64 for float64 input, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


@functools.lru_cache(maxsize=64)
def constants(device: torch.device, dtype: torch.dtype, values: tuple[float, ...]) -> torch.Tensor:
    """Python floats as a device tensor the kernels load, made once per device, dtype and values.

    (Triton passes Python floats as float32 and a fresh tensor would copy from the host on every
    call; for float64 state the scalars must be float64.)
    """
    return torch.tensor(values, dtype=dtype, device=device)


def device_scalar(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A 0-d parameter as the kernels read it: on ``like``'s device, in its dtype, no gradient."""
    return value.detach().to(device=like.device, dtype=like.dtype).reshape(())


@torch.compiler.disable  # Triton launches stay eager under torch.compile (like the numba kernels)
def triton_forward(k, x, beta, threshold, reset, spikes, mem, shifted=None, adaptation=None) -> bool:
    """Fill ``spikes`` (and ``mem``, ``shifted`` unless ``None``) with the Triton kernels.

    ``x [T, ...]`` has any float dtype and strides; the outputs are step buffers in the state
    dtype. ``adaptation = (β_a, ρ)`` runs ``alif``'s adaptive threshold (``shifted`` = U - Θ).
    Returns ``False`` (after a one-time warning) if the kernels failed: the caller then runs its
    PyTorch loop.
    """
    order = memory_order(spikes[0])
    state = spikes.dtype
    consts = constants(x.device, state, tuple(float(v) for v in adaptation) if adaptation else (0.0, 0.0))
    try:
        k.lif_forward(
            rows(x, order, spikes),
            as_2d(spikes, order),
            as_2d(mem, order) if mem is not None else None,
            as_2d(shifted, order) if shifted is not None else None,
            device_scalar(beta, spikes),
            device_scalar(threshold, spikes),
            consts,
            RESETS[reset],
            adaptation is not None,
        )
    except Exception as error:  # compilation on an unsupported GPU, a driver problem, ...
        kernels.triton_failed("lif_triton", error)
        return False
    return True


@torch.compiler.disable
def triton_backward(
    k, mem, shifted, grad_spikes, grad_mem, beta, threshold, reset, surrogate, grad_dtype, want_beta, want_threshold
):
    """``(∂L/∂X in grad_dtype, ∂L/∂β or None, ∂L/∂θ or None)`` from the Triton adjoint kernel.

    ``shifted`` is ``alif``'s saved :math:`D = U - Θ` (``None`` for the LIF scan, where
    :math:`D = U - θ`); ``mem`` may then be ``None`` unless ``want_beta``. Returns ``None`` if
    the kernels failed (the caller runs the PyTorch adjoint).
    """
    ref = shifted if shifted is not None else mem
    order = memory_order(ref[0])
    state = ref.dtype
    grad = step_buffer(ref, dtype=grad_dtype)
    sid, p1, p2 = surrogate_code(surrogate)
    pre = None
    if sid == PRECOMPUTED and grad_spikes is not None:
        threshold_ = device_scalar(threshold, ref)
        pre = rows(surrogate.derivative(ref if shifted is not None else ref - threshold_), order, ref, dense=True)
    try:
        partial_beta, partial_threshold = k.lif_backward(
            as_2d(mem, order) if mem is not None else None,
            as_2d(shifted, order) if shifted is not None else None,
            rows(grad_spikes, order, ref) if grad_spikes is not None else None,
            rows(grad_mem, order, ref) if grad_mem is not None else None,
            pre,
            as_2d(grad, order),
            device_scalar(beta, ref),
            device_scalar(threshold, ref),
            constants(ref.device, state, (p1, p2)),
            RESETS[reset],
            sid,
            want_beta,
            want_threshold,
        )
    except Exception as error:
        kernels.triton_failed("lif_triton", error)
        return None
    grad_beta = partial_beta.sum() if want_beta else None
    grad_threshold = -partial_threshold.sum() if want_threshold else None
    return grad, grad_beta, grad_threshold
