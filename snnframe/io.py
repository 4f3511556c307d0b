"""Writing files so that a reader sees the old content or the new, never a part.

Every file snnframe writes that a later step or another process reads (checkpoints, the
resolved recipe, metrics, plots, data caches) goes through :func:`atomic_writer` (or
:func:`atomic_path` for libraries that want a file name): the content is written to a temporary
file beside the target, then renamed over it. A write that fails (disk full, read-only file
system, interrupted) removes the temporary file and leaves the target as it was, and raises a
:class:`WriteError` that names the target and the cause. :func:`append_line` appends a line
whole or not at all.

Temporary files are named ``.<name>.<pid>.tmp`` (``.<stem>.<pid>.tmp<suffix>`` from
:func:`atomic_path`); only a process killed mid-write leaves one, and :func:`remove_stale_temporaries`
clears them (a run does so once it holds its run directory's lock).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from snnframe.errors import SnnframeError

TEMPORARY = re.compile(r"\..+\.(\d+)\.tmp(\.[A-Za-z0-9]+)?")

_CAUSES = {
    getattr(errno, name): cause
    for name, cause in (
        ("ENOSPC", "no space left on the device"),
        ("EDQUOT", "the disk quota is exceeded"),
        ("EROFS", "the file system is read-only"),
        ("EACCES", "permission denied"),
        ("EPERM", "permission denied"),
        ("ENAMETOOLONG", "the file name is too long for the file system"),
        ("ENOTDIR", "a part of the path is a file, not a directory"),
        ("EISDIR", "it is a directory"),
        ("EIO", "an input/output error (a failing disk or a lost network file system)"),
    )
    if hasattr(errno, name)
}


def os_cause(exc: OSError) -> str:
    """What an ``OSError`` means, in words (``no space left on the device``)."""
    if exc.errno in _CAUSES:
        return _CAUSES[exc.errno]
    return exc.strerror or str(exc) or type(exc).__name__


class WriteError(SnnframeError, OSError):
    """A file could not be written; the message names it and says why. Nothing was replaced.

    An ``OSError`` too (``errno`` kept), so code that handles ``OSError`` still does.
    """

    exit_code = 1

    def __init__(self, message: str, errno_: int | None = None, path: str | Path | None = None):
        super().__init__(message)
        self.message = message
        self.errno = errno_
        self.filename = str(path) if path is not None else None

    def __str__(self) -> str:
        return self.message


def write_error(path: str | Path, exc: OSError, what: str = "write") -> WriteError:
    """``cannot write <path>: <cause>`` for ``exc`` (a ``WriteError`` is passed through)."""
    if isinstance(exc, WriteError):
        return exc
    return WriteError(f"cannot {what} {path}: {os_cause(exc)}", exc.errno, path)


def temporary_path(path: Path, keep_suffix: bool = False) -> Path:
    if keep_suffix:
        return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


# errnos of a failed write (as opposed to, say, a bad gzip stream read inside the ``with`` body)
_WRITE_ERRNOS = {
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EIO", "EFBIG", "ENAMETOOLONG")
    if hasattr(errno, name)
}


def _is_write_failure(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS


@contextlib.contextmanager
def atomic_path(path: str | Path, *, fsync: bool = False) -> Iterator[Path]:
    """A temporary path to write (``savefig(tmp)``); on success it replaces ``path`` in one rename.

    The temporary name keeps ``path``'s suffix, so libraries that pick a format from it still
    do. On failure it is removed; a failed write (disk full, read-only, ...) becomes a :class:`WriteError`.
    """
    path = Path(path)
    tmp = temporary_path(path, keep_suffix=True)
    try:
        yield tmp
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if _is_write_failure(exc):
            raise write_error(path, exc) from None
        raise
    try:
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise write_error(path, exc) from None


@contextlib.contextmanager
def atomic_writer(
    path: str | Path, mode: str = "wb", *, fsync: bool = False, encoding: str | None = None
) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path`` in one rename.

    ``mode`` is ``"wb"`` or ``"w"`` (text, ``encoding`` defaults to UTF-8). ``fsync`` flushes
    the data to the disk before the rename (for files that must survive a power cut). On failure
    the temporary file is removed; a failed write (disk full, read-only, ...) becomes a
    :class:`WriteError`, other errors of the ``with`` body pass through unchanged.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    tmp = temporary_path(path)
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    try:
        f = open(tmp, mode, encoding=encoding)
    except OSError as exc:
        raise write_error(path, exc) from None
    body = True
    try:
        with f:
            yield f
            body = False
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and (not body or _is_write_failure(exc)):
            raise write_error(path, exc) from None
        raise


def atomic_write(path: str | Path, data: str | bytes, *, fsync: bool = False) -> None:
    """Replace ``path``'s content with ``data`` (text as UTF-8) atomically."""
    mode = "w" if isinstance(data, str) else "wb"
    with atomic_writer(path, mode, fsync=fsync) as f:
        f.write(data)


def append_line(path: str | Path, line: str) -> None:
    """Append ``line`` (and a newline) to ``path``, flushed; a failed append is undone.

    A disk that fills mid-line would leave half a line; the file is cut back to its old length
    instead, and a :class:`WriteError` names it.
    """
    path = Path(path)
    data = (line + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as exc:
        raise write_error(path, exc, "append to") from None
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise write_error(path, exc, "append to") from None
    finally:
        os.close(fd)


def remove_stale_temporaries(*directories: Path) -> list[Path]:
    """Remove the temporary files (``.<name>.<pid>.tmp``) a killed writer left in ``directories``.

    Only for a directory this process alone writes (a run directory whose lock it holds):
    any temporary file of another process there is a leftover.
    """
    removed = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for p in directory.iterdir():
            m = TEMPORARY.fullmatch(p.name)
            if m and int(m[1]) != os.getpid() and p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
    return removed
