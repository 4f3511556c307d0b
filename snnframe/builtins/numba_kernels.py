"""The built-ins' optional numba kernels: one switch and one lazy loader for all of them.

numba is a plain wheel (LLVM inside, no compiler needed). A kernel module is imported on first
use; when numba is missing or broken, or ``SNNFRAME_NUMBA=0`` is set, callers get ``None`` and
run their PyTorch path instead.
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType


def enabled() -> bool:
    return os.environ.get("SNNFRAME_NUMBA", "1") != "0"


@functools.cache
def _import(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except Exception:  # numba missing or broken
        return None


def load(module: str) -> ModuleType | None:
    """The kernel module ``module`` (e.g. ``"snnframe.builtins.models._numba_pool"``), or ``None``."""
    return _import(module) if enabled() else None
