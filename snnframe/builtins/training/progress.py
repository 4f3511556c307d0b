"""What a training run shows while it runs: the progress bar and the percent format."""

import contextlib
import logging
import sys


def percent(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.2f}%"


def progress_bar(total: int, description: str, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, disable=not show, leave=False, dynamic_ncols=True, file=sys.stderr)


def redirect_logging(show: bool):
    """Route console log lines around the progress bar instead of through it."""
    if not show:
        return contextlib.nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm(loggers=[logging.getLogger("snnframe")])
