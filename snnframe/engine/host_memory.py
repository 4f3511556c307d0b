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

The kept heap has one cost: DataLoader workers are forked, and a forked worker shares the
parent's pages copy-on-write; every page of the kept heap that training writes again while a
worker lives is copied (a page fault and 4 KiB each) and the worker keeps the old one. On the
``csnn_spike`` recipe (batch 128, T~300, two workers, ~10 GB kept) that added several GB and
slowed every epoch after the first. :func:`release_freed_memory` hands the kept free heap back
(``malloc_trim(0)``) and the trainer calls it before each loader with workers starts; the
first steps after it fault their temporaries in again once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_applied = False
_libc = None


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
    if ok:
        global _libc
        _libc = libc
    return ok


def release_freed_memory() -> bool:
    """Return the kept free heap to the OS (after :func:`keep_freed_memory`); whether it ran.

    Called before DataLoader workers are forked, so that they do not share (and training does
    not copy) a heap of freed blocks. ``SNNFRAME_RELEASE_BEFORE_WORKERS=0`` turns it off.
    """
    if not _applied or _libc is None or os.environ.get("SNNFRAME_RELEASE_BEFORE_WORKERS", "1") == "0":
        return False
    try:
        _libc.malloc_trim(0)
    except AttributeError:  # a libc without malloc_trim
        return False
    return True
