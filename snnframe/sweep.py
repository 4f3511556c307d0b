"""``snnframe sweep``: one recipe over seeds and a grid of values, each combination its own run.

Runs are ordinary run directories (``<out_dir>/<name>-s<seed>[-<key>=<value>]...``) trained one
after the other with :func:`snnframe.run.run`: running the same sweep again skips the finished
ones and resumes the interrupted ones (``--resume``'s machinery, so a changed recipe is refused).
Then ``<out_dir>/<name>-sweep/`` gets ``summary.md``, ``summary.csv`` (final and best test
accuracy, mean ± standard deviation over seeds per grid point) and ``test_acc.png`` (the test
accuracy curves, mean and spread).

Spreading a sweep over machines is left to the tools people have (docs/insight.md): ``--list``
prints every combination's ``snnframe run`` command, ``--only K`` runs one combination (a Slurm
array task), and a last ``snnframe sweep`` over finished runs writes the summary.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from snnframe.errors import Preempted, SnnframeError, UsageError
from snnframe.recipe import apply_overrides, check_core, read_with_overrides
from snnframe.rundir import METRICS_FILE, RECIPE_FILE

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


@attrs.frozen
class Point:
    """One combination: a seed and a value for every grid key."""

    index: int
    seed: int
    values: tuple[tuple[str, str], ...]  # (key, value as written on the command line)
    name: str
    run_dir: Path
    epochs: int
    overrides: tuple[str, ...]  # everything passed to `snnframe run`, base --set first


@attrs.define
class Sweep:
    recipe: Path
    name: str
    out_dir: Path
    seeds: list[int]
    grid: list[tuple[str, list[str]]]
    points: list[Point]

    @property
    def summary_dir(self) -> Path:
        return self.out_dir / f"{self.name}-sweep"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; ``"0-4"`` is 0 to 4."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise UsageError(f'--seeds "{text}": expected seeds such as 0,1,2 or 0-4')
        low, high = int(match[1]), int(match[2] or match[1])
        if high < low:
            raise UsageError(f'--seeds "{text}": the range {part} is empty (write it low-high, e.g. {high}-{low})')
        seeds += range(low, high + 1)
    if len(set(seeds)) != len(seeds):
        raise UsageError(f'--seeds "{text}": a seed is repeated')
    return seeds


def split_values(text: str) -> list[str]:
    """``"a,[1,2],'x,y'"`` -> ``["a", "[1,2]", "'x,y'"]``: commas inside brackets, braces or quotes stay."""
    values, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(current.strip())
            current = ""
            continue
        current += char
    values.append(current.strip())
    return values


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """``["train.lr=1e-3,1e-2"]`` -> ``[("train.lr", ["1e-3", "1e-2"])]``."""
    grid = []
    for item in items:
        key, sep, values_text = item.partition("=")
        key = key.strip()
        values = split_values(values_text) if sep else []
        if not key or not values or any(not v for v in values):
            raise UsageError(f'--grid "{item}": expected KEY=V1,V2,... e.g. --grid train.lr=1e-3,1e-2')
        if key in ("experiment.seed", "experiment.name"):
            raise UsageError(f"--grid {key}: the sweep sets {key} itself (use --seeds for seeds)")
        if key in [k for k, _ in grid]:
            raise UsageError(f"--grid {key}: given twice")
        grid.append((key, values))
    return grid


def name_part(value: str) -> str:
    """A grid value as it appears in a run's name: ``[10,15]`` -> ``10_15``, ``"mse_count"`` -> ``mse_count``."""
    return _UNSAFE.sub("_", value).strip("_") or "_"


def plan(recipe: str | Path, seeds: list[int], overrides: list[str] = (), grid: list[str] = ()) -> Sweep:
    """Every combination of ``grid`` values and ``seeds``, in that order, with its run directory."""
    recipe = Path(recipe)
    base = read_with_overrides(recipe, list(overrides))
    parsed, problems = check_core(base, str(recipe), default_name=recipe.stem)
    problems.raise_if_any(str(recipe))
    name, out_dir = parsed.experiment.name, Path(parsed.experiment.out_dir)
    axes = parse_grid(list(grid))
    points: list[Point] = []
    seen: dict[str, tuple] = {}
    combos = itertools.product(*[[(key, v) for v in values] for key, values in axes]) if axes else [()]
    for values in combos:
        for seed in seeds:
            run_name = f"{name}-s{seed}" + "".join(f"-{key}={name_part(v)}" for key, v in values)
            if run_name in seen:
                raise UsageError(f"--grid values {seen[run_name]} and {values} give the same run name {run_name}")
            seen[run_name] = values
            point_overrides = (
                *overrides,
                *(f"{key}={v}" for key, v in values),
                f"experiment.seed={seed}",
                f"experiment.name={run_name}",
            )
            data = apply_overrides(read_with_overrides(recipe, []), list(point_overrides))
            resolved, problems = check_core(data, str(recipe), default_name=recipe.stem)
            problems.raise_if_any(str(recipe))
            points.append(
                Point(len(points), seed, values, run_name, resolved.run_dir, resolved.train.epochs, point_overrides)
            )
    return Sweep(recipe, name, out_dir, list(seeds), axes, points)


def rows_of(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl`` (none if it has no such file)."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a crash: the run resumes before it
    return rows


def status(point: Point) -> str:
    """``"finished"`` (all epochs in metrics.jsonl), ``"interrupted"`` (a run directory to resume) or ``"new"``."""
    rows = rows_of(point.run_dir)
    if rows and rows[-1].get("epoch", 0) >= point.epochs:
        return "finished"
    if (point.run_dir / RECIPE_FILE).is_file():
        return "interrupted"
    return "new"


def command(sweep: Sweep, point: Point) -> str:
    """The ``snnframe run`` command that trains ``point`` by itself (with ``--resume`` once it has a run directory)."""
    words = ["snnframe", "run", str(sweep.recipe)]
    for override in point.overrides:
        words += ["--set", override]
    if status(point) == "interrupted":
        words.append("--resume")
    return shlex.join(words)


def run_sweep(
    sweep: Sweep,
    *,
    only: list[int] | None = None,
    plugins: Any = None,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """Train the sweep's combinations that are not finished (``only``: just these indices).

    Every combination to train is checked first (recipe, plugins, run directory), so that a
    mistake stops the sweep before anything trains. A run that fails is reported and the
    others still run; returns the failures' messages. A run stopped by SIGTERM stops the sweep
    (``Preempted``): running it again resumes that run.
    """
    from snnframe.run import prepare, run

    chosen = sweep.points if only is None else [sweep.points[i] for i in only]
    todo = [(p, status(p)) for p in chosen]
    todo = [(p, s) for p, s in todo if s != "finished"]
    skipped = len(chosen) - len(todo)
    echo(
        f"sweep {sweep.name}: {len(chosen)} run{'s' if len(chosen) != 1 else ''}, {skipped} finished, "
        f"{sum(s == 'interrupted' for _, s in todo)} to resume, {sum(s == 'new' for _, s in todo)} to start"
    )
    for point, state in todo:
        prepare(sweep.recipe, list(point.overrides), resume=state == "interrupted", plugins=plugins)
    failures = []
    for number, (point, state) in enumerate(todo, start=1):
        echo(f"sweep {sweep.name}: run {number}/{len(todo)}: {point.name} ({'resumed' if state != 'new' else 'new'})")
        try:
            run(sweep.recipe, list(point.overrides), resume=state == "interrupted", plugins=plugins)
        except Preempted as exc:  # SIGTERM (a scheduler's preemption): stop the whole sweep, resumable
            raise Preempted(f"{point.name}: {exc}; run the same sweep command again to continue") from None
        except SnnframeError as exc:
            echo(f"sweep {sweep.name}: {point.name} failed: {exc}")
            failures.append(f"{point.name}: {exc}")
    return failures


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1); the deviation is ``None`` for fewer than 2 values."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def collect(sweep: Sweep) -> list[dict[str, Any]]:
    """Per grid point: its values, the finished runs' test-accuracy curves, final and best accuracy."""
    groups: dict[tuple, dict[str, Any]] = {}
    for point in sweep.points:
        group = groups.setdefault(point.values, {"values": point.values, "runs": [], "missing": []})
        rows = rows_of(point.run_dir)
        curve = [(r["epoch"], r["test_acc"]) for r in rows if r.get("test_acc") is not None]
        if status(point) != "finished" or not curve:
            group["missing"].append(point.name)
            continue
        accs = [a for _, a in curve]
        group["runs"].append(
            {"name": point.name, "seed": point.seed, "curve": curve, "final": accs[-1], "best": max(accs)}
        )
    for group in groups.values():
        group["final"] = _mean_std([r["final"] for r in group["runs"]])
        group["best"] = _mean_std([r["best"] for r in group["runs"]])
    return list(groups.values())


def _label(values: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values) or "all runs"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def _pm(mean_std: tuple[float | None, float | None]) -> str:
    mean, std = mean_std
    if mean is None:
        return "n/a"
    return f"{_pct(mean)} ± {_pct(std)}" if std is not None else f"{_pct(mean)} (one seed)"


def write_summary(sweep: Sweep) -> tuple[list[Path], bool]:
    """``summary.md``, ``summary.csv`` and ``test_acc.png`` in the sweep's directory.

    Returns their paths and whether anything changed: files whose content would stay the same
    are not rewritten (the plot is redrawn only when the tables change or it is missing).
    """
    groups = collect(sweep)
    directory = sweep.summary_dir
    directory.mkdir(parents=True, exist_ok=True)
    keys = [key for key, _ in sweep.grid]

    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(
        [*keys, "runs", "final_test_acc_mean", "final_test_acc_std", "best_test_acc_mean", "best_test_acc_std"]
    )
    for group in groups:
        numbers = [*group["final"], *group["best"]]
        writer.writerow(
            [*(v for _, v in group["values"]), len(group["runs"]), *("" if x is None else f"{x:.6f}" for x in numbers)]
        )
    csv_path = directory / "summary.csv"
    changed = _write_if_changed(csv_path, table.getvalue())

    seeds = ", ".join(str(s) for s in sweep.seeds)
    lines = [
        f"# Sweep {sweep.name}",
        "",
        f"Recipe `{sweep.recipe}`, seeds {seeds}"
        + (", grid " + "; ".join(f"`{k}` = {', '.join(vs)}" for k, vs in sweep.grid) if sweep.grid else "")
        + ". Test accuracy in %, mean ± sample standard deviation over seeds.",
        "",
        "| grid point | runs | final test accuracy | best test accuracy |",
        "|---|---|---|---|",
    ]
    lines += [f"| {_label(g['values'])} | {len(g['runs'])} | {_pm(g['final'])} | {_pm(g['best'])} |" for g in groups]
    lines += ["", "| run | seed | epochs | final | best |", "|---|---|---|---|---|"]
    for group in groups:
        for r in group["runs"]:
            lines.append(
                f"| {r['name']} | {r['seed']} | {r['curve'][-1][0]} | {_pct(r['final'])} | {_pct(r['best'])} |"
            )
    missing = [name for g in groups for name in g["missing"]]
    if missing:
        lines += ["", "Not finished (left out): " + ", ".join(missing)]
    md_path = directory / "summary.md"
    changed = _write_if_changed(md_path, "\n".join(lines) + "\n") or changed

    png_path = directory / "test_acc.png"
    if changed or not png_path.is_file():
        from snnframe.io import atomic_writer

        with atomic_writer(png_path) as f:
            _plot(groups, sweep.name).savefig(f, format="png", dpi=120)
        changed = True
    return [md_path, csv_path, png_path], changed


def _write_if_changed(path: Path, text: str) -> bool:
    from snnframe.io import atomic_write

    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    atomic_write(path, text)
    return True


def _plot(groups: list[dict[str, Any]], name: str) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, group in enumerate(groups):
        if not group["runs"]:
            continue
        color = f"C{i % 10}"
        epochs = sorted({e for r in group["runs"] for e, _ in r["curve"]})
        per_epoch = [[100 * a for r in group["runs"] for e, a in r["curve"] if e == epoch] for epoch in epochs]
        means = [sum(v) / len(v) for v in per_epoch]
        stds = [_mean_std(v)[1] or 0.0 for v in per_epoch]
        for r in group["runs"]:
            ax.plot([e for e, _ in r["curve"]], [100 * a for _, a in r["curve"]], color=color, alpha=0.3, lw=0.8)
        label = f"{_label(group['values'])} (n={len(group['runs'])})"
        ax.errorbar(epochs, means, yerr=stds, color=color, lw=2, marker="o", ms=3, capsize=3, label=label)
        ax.fill_between(
            epochs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)], color=color, alpha=0.2
        )
    every_epoch = [e for g in groups for r in g["runs"] for e, _ in r["curve"]]
    if every_epoch:
        ax.set_xlim(min(every_epoch) - 0.5, max(every_epoch) + 0.5)
    if 0 < len(set(every_epoch)) <= 15:
        ax.set_xticks(sorted(set(every_epoch)))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Test accuracy (%)")
    ax.set_title(f"Sweep {name}: test accuracy, mean ± std over seeds")
    ax.grid(True, alpha=0.3)
    if any(g["runs"] for g in groups):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
