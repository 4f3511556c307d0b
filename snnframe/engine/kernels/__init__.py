"""Compiled kernels of the engine, and the one loader for them.

Modules are named ``<operation>_<backend>.py`` (``lif_numba``, ``maxpool_numba``,
``conv_pool_numba``) beside the Python wrapper of the operation (``lif``, ``maxpool``), which
chooses a kernel for the tensors at hand and falls back to PyTorch operations otherwise.

numba is a plain wheel (LLVM inside, no compiler needed). A kernel module is imported on first
use; when numba is missing or broken, or ``SNNFRAME_NUMBA=0`` is set, :func:`load` returns
``None`` and callers run their PyTorch path instead.
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType


def numba_enabled() -> bool:
    """Whether numba kernels may be used (``SNNFRAME_NUMBA=0`` switches them off)."""
    return os.environ.get("SNNFRAME_NUMBA", "1") != "0"


@functools.cache
def _import(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except Exception:  # numba missing or broken
        return None


def load(name: str) -> ModuleType | None:
    """The numba kernel module ``name`` of this package (e.g. ``"maxpool_numba"``), or ``None``."""
    return _import(f"{__name__}.{name}") if numba_enabled() else None


def set_threads() -> None:
    """Run numba's parallel loops on as many threads as PyTorch's intra-op pool."""
    import numba
    import torch

    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
