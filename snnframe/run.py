"""``snnframe run`` / ``validate``: check a recipe, prepare the run directory, hand over to the trainer."""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from snnframe import __version__
from snnframe.contracts import DataSettings, Experiment, LoggerContext, TrainResult, VisualContext
from snnframe.errors import RunDirError, TrainingError, one_line
from snnframe.io import atomic_write
from snnframe.plugins import Plugins, load_plugins
from snnframe.recipe import Recipe, check_core, read, read_with_overrides
from snnframe.recipe.build import Components, construct, resolve, with_defaults
from snnframe.rundir import RECIPE_FILE

log = logging.getLogger("snnframe")

# Keys a resumed run may change. (Not data.num_workers: augmentation draws from the workers' seeds.)
RESUMABLE_CHANGES = {("train", "epochs"), ("train", "device"), ("train", "loggers")}


@attrs.define
class Prepared:
    recipe: Recipe  # resolved: every default written out
    components: Components


def build(
    data: dict[str, Any], source: str | None, default_name: str | None = None, plugins: Plugins | None = None
) -> Prepared:
    """Check recipe ``data`` against the core schema and the plugins and build its components.

    Every problem is collected into one ``RecipeError``. Nothing is written and no data is read.
    """
    recipe, problems = check_core(data, source, default_name)
    plugins = plugins if plugins is not None else load_plugins()
    factories = resolve(recipe, plugins, problems)
    if "experiment" not in problems.tables:
        seed_everything(recipe.experiment.seed)  # before the model's weights are drawn
    components = construct(recipe, factories, problems, plugins)
    problems.raise_if_any(recipe.source)
    return Prepared(with_defaults(recipe, factories), components)


def prepare(
    path: str | Path, overrides: list[str] = (), resume: bool = False, plugins: Plugins | None = None
) -> Prepared:
    """Everything ``run`` checks, without writing anything: recipe, plugins, components, run directory."""
    prepared = build(read_with_overrides(path, overrides), str(path), Path(path).stem, plugins)
    check_run_dir(prepared.recipe, resume)
    return prepared


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def is_main_process() -> bool:
    """Rank 0 of a torchrun launch (or a plain run) writes; the other ranks only compute."""
    return int(os.environ.get("RANK", "0")) == 0


def check_run_dir(recipe: Recipe, resume: bool) -> None:
    run_dir = recipe.run_dir
    saved = run_dir / RECIPE_FILE
    if not is_main_process():
        return
    if resume:
        if not saved.is_file():
            raise RunDirError(f"--resume: {run_dir} holds no run to resume (no recipe.toml there)")
        changed = _changed_keys(read(saved), recipe.to_dict())
        if changed:
            raise RunDirError(
                f"--resume: the recipe differs from the one {run_dir} was started with at "
                + ", ".join(changed)
                + "; only train.epochs and train.device may change on resume"
            )
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise RunDirError(
            f"{run_dir} already holds a run; nothing was changed. Continue it with --resume, or start "
            f"a new one with --set experiment.name={recipe.experiment.name}-2"
        )
    elif run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} exists and is not a directory")


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[str]:
    changed = []
    for key in sorted(set(old) | set(new)):
        here = prefix + (key,)
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _changed_keys(a, b, here)
        elif a != b and here not in RESUMABLE_CHANGES:
            changed.append(".".join(here))
    return changed


def write_recipe(recipe: Recipe, run_dir: Path) -> None:
    import tomli_w

    header = (
        f"# Resolved by snnframe {__version__} from {recipe.source} on "
        f"{datetime.datetime.now().isoformat(timespec='seconds')}.\n\n"
    )
    atomic_write(run_dir / RECIPE_FILE, header + tomli_w.dumps(recipe.to_dict()))


@contextlib.contextmanager
def run_logging(run_dir: Path | None) -> Iterator[None]:
    """Log ``snnframe.*`` to the console and ``run_dir/training.log``; ``None``: a silent rank > 0."""
    handlers: list[logging.Handler] = []
    if run_dir is not None:
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(logging.Formatter("%(message)s"))
        console.setLevel(logging.INFO)
        handlers.append(console)
        file_handler = logging.FileHandler(run_dir / "training.log", encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(file_handler)
    previous_level = log.level
    log.setLevel(logging.DEBUG)  # DEBUG (tracebacks) reaches training.log only
    for h in handlers:
        log.addHandler(h)
    try:
        yield
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()
        log.setLevel(previous_level)


def run(
    path: str | Path, overrides: list[str] = (), resume: bool = False, plugins: Plugins | None = None
) -> TrainResult:
    """Train the experiment a recipe describes; returns the trainer's result."""
    prepared = prepare(path, overrides, resume, plugins)
    recipe, parts = prepared.recipe, prepared.components
    main = is_main_process()
    run_dir = recipe.run_dir
    experiment = Experiment(
        name=recipe.experiment.name,
        seed=recipe.experiment.seed,
        run_dir=run_dir,
        recipe=recipe.to_dict(),
        resume=resume,
        dataset=parts.dataset,
        encoder=parts.encoder,
        model=parts.model,
        data=DataSettings(recipe.data.batch_size, recipe.data.subset, recipe.data.test_subset, recipe.data.num_workers),
        is_main=main,
    )
    experiment.splits()  # a missing data set fails here, before a run directory exists
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_recipe(recipe, run_dir)
    with run_logging(run_dir if main else None):
        log.info("snnframe %s: %s -> %s", __version__, recipe.source, run_dir)
        if main:
            experiment.loggers = start_loggers(parts.loggers, experiment)
        try:
            result = parts.trainer.fit(experiment)
        finally:
            close_loggers(experiment)
        failed_loggers = list(experiment.logger_failures)
        if result.is_main and parts.visualizers:
            visualize(parts.visualizers, experiment, result, failed_loggers)
        elif failed_loggers:
            raise _failed(experiment, [], failed_loggers)
    return result


def start_loggers(loggers: list[tuple[str, Any]], experiment: Experiment) -> list[tuple[str, Any]]:
    """Start each logger; one that fails is reported (the run says so when it ends) and left out."""
    ctx = LoggerContext(experiment.run_dir, experiment.name, experiment.recipe, experiment.resume)
    started = []
    for name, logger in loggers:
        try:
            logger.start(ctx)
        except Exception as exc:
            log.error("logger %s failed to start and is switched off: %s", name, one_line(exc))
            log.debug("logger %s traceback", name, exc_info=True)
            experiment.logger_failures.append(f"{name} ({type(exc).__name__}: {exc})")
            continue
        started.append((name, logger))
    return started


def close_loggers(experiment: Experiment) -> None:
    for name, logger in experiment.loggers:
        try:
            logger.close()
        except Exception as exc:
            log.error("logger %s failed to close: %s", name, one_line(exc))
            experiment.logger_failures.append(f"{name} ({type(exc).__name__}: {exc})")
    experiment.loggers = []


def _failed(experiment: Experiment, visualizers: list[str], loggers: list[str]) -> TrainingError:
    parts = ([f"visualizers failed: {'; '.join(visualizers)}"] if visualizers else []) + (
        [f"loggers failed: {'; '.join(loggers)}"] if loggers else []
    )
    return TrainingError(
        f"training finished and was saved in {experiment.run_dir}, but "
        + "; and ".join(parts)
        + f" (details in {experiment.run_dir / 'training.log'})"
    )


def visualize(
    visualizers: list[tuple[str, Any]],
    experiment: Experiment,
    result: TrainResult,
    failed_loggers: list[str] = (),
) -> list[Path]:
    """Run each visualizer; one that fails is logged and the others still run."""
    _, test_set = experiment.splits()
    ctx = VisualContext(
        experiment.run_dir, result.model, experiment.encoder, test_set, result.history, result.device, experiment.info
    )
    written, failed = [], []
    result.model.eval()
    for name, visualizer in visualizers:
        try:
            paths = list(visualizer(ctx))
            log.info("%s wrote %s", name, ", ".join(str(p.relative_to(experiment.run_dir)) for p in paths))
        except Exception as exc:  # a plot must not cost the user the trained run
            log.error("visualizer %s failed: %s", name, one_line(exc))
            log.debug("visualizer %s traceback", name, exc_info=True)
            failed.append(f"{name} ({type(exc).__name__}: {exc})")
            continue
        written += paths
    if failed or failed_loggers:
        raise _failed(experiment, failed, list(failed_loggers))
    return written
