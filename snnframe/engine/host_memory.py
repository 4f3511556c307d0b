"""Keep freed CPU memory for reuse instead of returning it to the OS (glibc only).

Time-folded activations are large (tens of MB): glibc serves each with a fresh ``mmap`` and
unmaps it on free, so every training step pays a page fault per 4 KiB of every large
temporary; on the 2-core benchmark machine that was ~80 ms of a ~350 ms step (filling a fresh
44 MB tensor: 14 ms; a reused one: 1 ms). Raising glibc's mmap and trim thresholds makes large
blocks come from the heap and stay there once freed -- what PyTorch's CUDA caching allocator
does on GPUs. The process keeps its peak footprint instead of shrinking between steps.

A process-wide setting, so the caller that owns the process applies it: the ``bptt`` trainer
when a run starts on a CPU device (and the step benchmark); models never do. Set
``SNNFRAME_KEEP_FREED_MEMORY=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_applied = False


def keep_freed_memory() -> bool:
    """Tune glibc's allocator once per process; whether it is (now) tuned."""
    global _applied
    if _applied:
        return True
    if os.environ.get("SNNFRAME_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1 and mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1) == 1
    _applied = ok
    return ok
