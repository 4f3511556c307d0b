"""Downloading through tonic without leaving partial files in the user's data folder.

tonic downloads straight into ``<root>/<Name>/`` and opens the archive for writing before it
connects, so an offline or interrupted download leaves a 0-byte or truncated archive there.
Here tonic downloads and extracts into a hidden temporary folder beside it; only a complete
result is moved into ``<root>/<Name>/``, and the temporary folder is always removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def download_with_tonic(make: Callable[[str], object], root: Path, folder: str) -> None:
    """Run ``make(save_to)`` -- a tonic data set's constructor, which downloads and extracts what
    ``<save_to>/<folder>`` lacks -- in a temporary ``save_to``, then move its files into
    ``<root>/<folder>``. Files already in ``<root>/<folder>`` (e.g. an archive not yet extracted)
    are copied in first so that tonic finds them; exceptions propagate."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    staging_root = Path(tempfile.mkdtemp(prefix=".snnframe-download-", dir=root))
    try:
        target, staging = root / folder, staging_root / folder
        if target.is_dir():
            staging.mkdir()
            for item in target.iterdir():
                if item.is_file():  # a copy, not a link: tonic may rewrite a bad archive in place
                    shutil.copy2(item, staging / item.name)
        make(str(staging_root))
        _move_into(staging, target)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)


def _move_into(source: Path, target: Path) -> None:
    """Move ``source``'s contents into ``target``, merging folders that exist on both sides."""
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        destination = target / item.name
        if item.is_dir() and destination.is_dir():
            _move_into(item, destination)
        else:
            os.replace(item, destination)
