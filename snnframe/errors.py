"""User-facing errors: the CLI prints the message (no traceback) and exits with ``exit_code``."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SnnframeError(Exception):
    """An error caused by input the user can fix; ``str(err)`` is the whole message."""

    exit_code = 1


class UsageError(SnnframeError):
    """Wrong command-line usage."""

    exit_code = 2


class RecipeError(SnnframeError):
    """One or more problems in a recipe, each prefixed with its key path."""

    exit_code = 2

    def __init__(self, problems: Iterable[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        super().__init__(self._format())

    def _format(self) -> str:
        where = f"{self.source}: " if self.source else ""
        if len(self.problems) == 1:
            return f"{where}{self.problems[0]}"
        lines = [f"{where}{len(self.problems)} problems:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class PluginError(SnnframeError):
    """A plugin is broken or conflicts with another (names the plugins involved)."""

    exit_code = 2


class UnknownComponent(SnnframeError):
    """A name that no plugin registered for a component kind."""

    exit_code = 2


class DataError(SnnframeError):
    """A data set is missing or unreadable; the message says where files belong."""

    exit_code = 2


class RunDirError(SnnframeError):
    """The run directory cannot be used as asked (e.g. it holds a finished run)."""

    exit_code = 2


class TrainingError(SnnframeError):
    """Training stopped for a reason the user should see without a traceback."""

    exit_code = 1


class Preempted(TrainingError):
    """Training stopped on request (SIGTERM, what cluster schedulers send) after saving its state.

    The message says where the checkpoint is; ``--resume`` continues from it. The exit status is
    128 + SIGTERM, what a process ended by that signal reports.
    """

    exit_code = 143


def one_line(exc: BaseException) -> str:
    """The last line of an exception's message (its class name if it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``' (did you mean "x"?)'`` for the closest choice, or ``''``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""
