"""Writing files so that a reader sees the old content or the new, never a part.

Every file snnframe writes that a later step or another process reads (checkpoints, the
resolved recipe, metrics, data caches) goes through :func:`atomic_writer`: the content is
written to a temporary file beside the target, then renamed over it. A write that fails
(disk full, interrupted) removes the temporary file and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_writer(
    path: str | Path, mode: str = "wb", *, fsync: bool = False, encoding: str | None = None
) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path`` in one rename.

    ``mode`` is ``"wb"`` or ``"w"`` (text, ``encoding`` defaults to UTF-8). ``fsync`` flushes
    the data to the disk before the rename (for files that must survive a power cut).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    try:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write(path: str | Path, data: str | bytes, *, fsync: bool = False) -> None:
    """Replace ``path``'s content with ``data`` (text as UTF-8) atomically."""
    mode = "w" if isinstance(data, str) else "wb"
    with atomic_writer(path, mode, fsync=fsync) as f:
        f.write(data)
