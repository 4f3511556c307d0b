"""Compiled kernels of the engine, and the one loader for them.

Modules are named ``<operation>_<backend>.py`` (``lif_numba``, ``maxpool_numba``,
``conv_pool_numba``, ``lif_triton``, ``synaptic_triton``, ``plif_triton``) beside the Python
wrapper of the operation (``lif``, ``maxpool``, ``synaptic``, ``plif``), which chooses a kernel
for the tensors at hand and falls back to PyTorch operations otherwise.

* numba (CPU) is a plain wheel (LLVM inside, no compiler needed).
* Triton (CUDA) kernels run fused time loops on the GPU. They run on CUDA tensors only; CPU
  tensors reach them only in the tests, which opt in with ``SNNFRAME_TRITON=interpret`` in a
  process whose kernels were built by Triton's interpreter (``TRITON_INTERPRET=1``).

A kernel module is imported on first use; when its package is missing or broken, or
``SNNFRAME_NUMBA=0`` / ``SNNFRAME_TRITON=0`` is set, :func:`load` returns ``None`` and callers
run their PyTorch path instead.
"""

from __future__ import annotations

import functools
import importlib
import os
import warnings
from types import ModuleType


def numba_enabled() -> bool:
    """Whether numba kernels may be used (``SNNFRAME_NUMBA=0`` switches them off)."""
    return os.environ.get("SNNFRAME_NUMBA", "1") != "0"


def triton_enabled() -> bool:
    """Whether Triton kernels may be used (``SNNFRAME_TRITON=0`` switches them off)."""
    return os.environ.get("SNNFRAME_TRITON", "1") != "0"


@functools.cache
def _import(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except Exception:  # the backend's package is missing or broken (Triton can fail on odd systems)
        return None


def load(name: str) -> ModuleType | None:
    """The kernel module ``name`` of this package (``"maxpool_numba"``, ``"lif_triton"``), or ``None``."""
    enabled = triton_enabled() if name.endswith("_triton") else numba_enabled()
    return _import(f"{__name__}.{name}") if enabled else None


# Triton kernel modules whose launch failed (compilation on an unsupported GPU, say): name -> error.
# They are not used again in this process; the tests check that this stays empty.
triton_failures: dict[str, str] = {}


def triton(name: str, *tensors) -> ModuleType | None:
    """The Triton kernel module ``name`` if its kernels may run on ``tensors``, else ``None``.

    They may when Triton is enabled and importable, the module has not failed before, and the
    tensors are non-empty floating-point CUDA tensors. CPU tensors qualify only under Triton's
    interpreter, when the tests ask for it with ``SNNFRAME_TRITON=interpret``: compiled kernels
    must never see host pointers.
    """
    import torch

    if name in triton_failures or not tensors:
        return None
    device = tensors[0].device
    if device.type == "cpu":
        if os.environ.get("SNNFRAME_TRITON") != "interpret":
            return None
    elif device.type != "cuda":
        return None
    floats = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
    if not all(t.device == device and t.dtype in floats and t.numel() > 0 for t in tensors):
        return None
    module = load(name)
    if module is None or (device.type == "cpu" and not module.INTERPRETED):
        return None
    return module


def triton_input(name: str, x):
    """``(x, module)``: the input as a neuron's kernels read it, and the Triton module ``name`` if it runs on ``x``.

    A Triton kernel loads float16/bfloat16 input itself and computes in float32, so such input
    stays as it is (no float32 copy of ``[T, ...]``). Time-expanded input is the exception: its one
    step is upcast (cheap), so that its gradient is summed over ``T`` in float32, as on the other
    paths. Without a Triton module the input is upcast to float32 (float64 stays).
    """
    from snnframe.engine.buffers import as_compute_dtype

    module = triton(name, x)
    if module is None or (x.shape[0] > 1 and x.stride(0) == 0):
        x = as_compute_dtype(x)
    return x, module


def triton_failed(name: str, error: BaseException) -> None:
    """Record that a launch of ``name``'s kernels raised ``error``: warn once, use the PyTorch loop from now on."""
    triton_failures[name] = f"{type(error).__name__}: {error}"
    warnings.warn(
        f"snnframe: the Triton kernels {name} failed ({triton_failures[name][:300]}); "
        "running the PyTorch loop instead from now on (SNNFRAME_TRITON=0 skips them)",
        RuntimeWarning,
        stacklevel=3,
    )


def set_threads() -> None:
    """Run numba's parallel loops on as many threads as PyTorch's intra-op pool."""
    import numba
    import torch

    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
