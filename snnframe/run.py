"""``snnframe run`` / ``validate``: check a recipe, prepare the run directory, hand over to the trainer."""

from __future__ import annotations

import contextlib
import datetime
import logging
import logging.handlers
import os
import random
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from snnframe import __version__
from snnframe.contracts import DataSettings, Experiment, LoggerContext, TrainResult, VisualContext
from snnframe.errors import Preempted, RecipeError, RunDirError, SnnframeError, TrainingError, one_line
from snnframe.io import TEMPORARY, WriteError, atomic_write, os_cause, remove_stale_temporaries, write_error
from snnframe.lock import FILES as LOCK_FILES
from snnframe.lock import RunLock, holder
from snnframe.memory import check_memory
from snnframe.plugins import Plugins, load_plugins
from snnframe.recipe import Recipe, check_core, read, read_with_overrides
from snnframe.recipe.build import Components, construct, resolve, with_defaults
from snnframe.rundir import (
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
    LOG_FILE,
    RECIPE_FILE,
    epoch_checkpoints,
    read_checkpoint,
)

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
    path: str | Path,
    overrides: list[str] = (),
    resume: bool = False,
    plugins: Plugins | None = None,
    read_checkpoint_now: bool = False,
) -> Prepared:
    """Everything ``run`` checks, without writing anything: recipe, plugins, components, run directory."""
    prepared = build(read_with_overrides(path, overrides), str(path), Path(path).stem, plugins)
    check_run_dir(prepared.recipe, resume, read_checkpoint_now)
    return prepared


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global streams; any seed in [0, 2**63) (``experiment.seed``)."""
    import numpy as np
    import torch

    random.seed(seed)
    # NumPy's legacy seeding takes 32 bits at a time: larger seeds as two words (smaller ones unchanged)
    np.random.seed(seed if seed < 2**32 else [seed & 0xFFFFFFFF, seed >> 32])
    torch.manual_seed(seed)


def is_main_process() -> bool:
    """Rank 0 of a torchrun launch (or a plain run) writes; the other ranks only compute."""
    return int(os.environ.get("RANK", "0")) == 0


def check_run_dir(recipe: Recipe, resume: bool, read_checkpoint_now: bool = False, locked: bool = False) -> None:
    """Whether the run directory can be used as asked, without writing anything.

    Checks that ``experiment.name`` fits the file system, that ``experiment.out_dir`` is (or can
    be made) a writable directory, that no other process holds the run directory, and that a new
    run does not overwrite one (``--resume``: that the recipe did not change). ``read_checkpoint_now``
    (``validate --resume``) also reads ``checkpoints/last.pt``; ``locked``: this process holds the
    run directory's lock (the check is repeated then).
    """
    run_dir = recipe.run_dir
    if not is_main_process():
        return
    _check_run_path(recipe)
    in_use = None if locked else holder(run_dir)
    if in_use:
        raise RunDirError(in_use)
    saved = run_dir / RECIPE_FILE
    if resume:
        if not saved.is_file():
            raise RunDirError(f"--resume: {run_dir} holds no run to resume (no recipe.toml there)")
        changed = _changed_keys(read(saved), recipe.to_dict())
        if changed:
            raise RunDirError(
                f"--resume: the recipe differs from the one {run_dir} was started with at "
                + ", ".join(changed)
                + "; only train.epochs, train.device and train.loggers may change on resume"
            )
        if read_checkpoint_now:
            _check_resumable(run_dir)
    elif run_dir.is_dir() and holds_a_run(run_dir):
        raise RunDirError(
            f"{run_dir} already holds a run; nothing was changed. Continue it with --resume, or start "
            f"a new one with --set experiment.name={recipe.experiment.name}-2"
        )


def holds_a_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` has anything but the lock's own files (and a killed writer's temporary files) in it."""
    return any(p.name not in LOCK_FILES and not TEMPORARY.fullmatch(p.name) for p in run_dir.iterdir())


def _check_run_path(recipe: Recipe) -> None:
    """``experiment.name`` and ``experiment.out_dir`` against the file system (reads only)."""
    run_dir, source = recipe.run_dir, recipe.source
    existing = next((p for p in [run_dir, *run_dir.parents] if os.path.lexists(p)), Path("."))
    if existing == run_dir and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} exists and is not a directory; set experiment.name or experiment.out_dir")
    if existing != run_dir and not existing.is_dir():
        raise RecipeError(
            [
                f"experiment.out_dir: {existing} is a file, not a directory, so {run_dir} cannot be created there; "
                "set experiment.out_dir to a directory"
            ],
            source,
        )
    name = recipe.experiment.name
    limit = _pathconf(existing, "PC_NAME_MAX", 255)
    if len(os.fsencode(name)) > limit:
        raise RecipeError(
            [
                f"experiment.name: is {len(os.fsencode(name))} bytes long, but the file system of {existing} allows "
                f"at most {limit} bytes for a name; choose a shorter name"
            ],
            source,
        )
    # the longest path a run writes: a checkpoint's temporary file
    longest = Path(os.path.abspath(run_dir)) / CHECKPOINT_DIR / f".epoch_{recipe.train.epochs}.pt.{2**22}.tmp"
    limit = _pathconf(existing, "PC_PATH_MAX", 4096)
    if len(os.fsencode(str(longest))) >= limit:
        raise RecipeError(
            [
                f"experiment.out_dir: the run directory's path {os.path.abspath(run_dir)} is too long for the file "
                f"system (its files' paths would exceed {limit} bytes); choose a shorter out_dir or name"
            ],
            source,
        )
    writable = existing if existing != run_dir else run_dir
    if not os.access(writable, os.W_OK | os.X_OK):
        read_only = _read_only(writable)
        cause = "is on a read-only file system" if read_only else "is not writable (permission denied)"
        what = "experiment.out_dir" if writable != run_dir else "the run directory"
        raise RunDirError(
            f"{what}: {writable} {cause}, so the run cannot be written there; "
            "set experiment.out_dir to a writable directory"
        )


def _pathconf(path: Path, name: str, default: int) -> int:
    try:
        return os.pathconf(path, name)
    except (OSError, ValueError, AttributeError):
        return default


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def _check_resumable(run_dir: Path) -> None:
    """``validate --resume``: ``last.pt`` can be read (or the run has not finished an epoch)."""
    last = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    if last.exists():
        read_checkpoint(last)
        return
    kept = epoch_checkpoints(last.parent)
    if kept:
        raise RunDirError(
            f"--resume: {last} is missing but {kept[0]} is there; nothing was changed. To continue from that "
            f"epoch, copy it to last.pt (cp {kept[0]} {last}) and run with --resume again"
        )


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


class _LogFile(logging.FileHandler):
    """``training.log``; a write that fails (disk full) is said once on the console, not as a traceback."""

    failed: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)  # opening the file (delayed to the first line) can fail too
        except Exception:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        exc = sys.exc_info()[1]
        if self.failed is None:
            self.failed = os_cause(exc) if isinstance(exc, OSError) else one_line(exc) if exc else "unknown"
            print(
                f"snnframe: warning: cannot write {self.baseFilename} ({self.failed}); "
                "the log goes to the console only from here on",
                file=sys.stderr,
            )
        with contextlib.suppress(Exception):
            if self.stream is not None:
                self.stream.close()
        self.stream = None
        self.setLevel(logging.CRITICAL + 1)  # no more attempts


@contextlib.contextmanager
def run_logging(run_dir: Path | None, defer: bool = False) -> Iterator[Callable[[], None]]:
    """Log ``snnframe.*`` to the console and ``run_dir/training.log``; ``None``: a silent rank > 0.

    Yields a function that starts writing ``training.log``: with ``defer`` (``--resume``) the file
    is left untouched, and its lines kept in memory, until it is called (a failed resume changes
    nothing); otherwise it is written from the start.
    """
    handlers: list[logging.Handler] = []
    buffered: logging.handlers.MemoryHandler | None = None

    def start() -> None:
        if buffered is not None and buffered.target is None:
            buffered.setTarget(file_handler)
            buffered.capacity = 0  # from now on every record goes straight through
            buffered.flush()

    if run_dir is not None:
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(logging.Formatter("%(message)s"))
        console.setLevel(logging.INFO)
        handlers.append(console)
        file_handler = _LogFile(run_dir / LOG_FILE, encoding="utf-8", delay=True)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        if defer:
            buffered = logging.handlers.MemoryHandler(
                capacity=100_000, flushLevel=logging.CRITICAL + 1, target=None, flushOnClose=False
            )
            handlers.append(buffered)
        else:
            handlers.append(file_handler)
    previous_level = log.level
    log.setLevel(logging.DEBUG)  # DEBUG (tracebacks) reaches training.log only
    for h in handlers:
        log.addHandler(h)
    try:
        yield start
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()
        if run_dir is not None:
            file_handler.close()
        log.setLevel(previous_level)


def resume_command(path: str | Path, overrides: list[str]) -> str:
    """The command that continues this run."""
    words = ["snnframe", "run", str(path)] + [w for o in overrides for w in ("--set", o)] + ["--resume"]
    command = shlex.join(words)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"the same torchrun launch of {command}"
    return command


def run(
    path: str | Path, overrides: list[str] = (), resume: bool = False, plugins: Plugins | None = None
) -> TrainResult:
    """Train the experiment a recipe describes; returns the trainer's result.

    Rank 0 holds the run directory's lock from before it writes anything until the end. On
    ``--resume`` nothing in the run directory changes until the trainer has read its checkpoint
    (:meth:`Experiment.begin`); for a new run, a failure before training leaves no directory behind.
    """
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
    check_memory(recipe, parts, experiment)  # so does a batch that cannot fit in memory
    try:
        return _train(recipe, parts, experiment, resume) if main else _fit(parts, experiment)
    except Preempted as exc:
        raise Preempted(f"{exc}; continue with: {resume_command(path, list(overrides))}") from None


def _fit(parts: Components, experiment: Experiment) -> TrainResult:
    """A rank > 0 of a distributed run: trains, writes nothing."""
    with run_logging(None):
        return parts.trainer.fit(experiment)


def _train(recipe: Recipe, parts: Components, experiment: Experiment, resume: bool) -> TrainResult:
    run_dir = recipe.run_dir
    with _run_directory(recipe, resume) as created:
        with run_logging(run_dir, defer=resume) as start_log:
            if resume:  # nothing changes in the run directory before the trainer has read its checkpoint
                experiment.on_begin(lambda: (_clean(run_dir), _rewrite_recipe_if_changed(recipe, run_dir), start_log()))
            else:
                _clean(run_dir)
                try:
                    write_recipe(recipe, run_dir)
                except OSError as exc:
                    raise WriteError(
                        f"{write_error(run_dir / RECIPE_FILE, exc)}; the run did not start and left nothing behind",
                        exc.errno,
                        run_dir / RECIPE_FILE,
                    ) from None
                created.clear()  # from here on the directory holds a run
            log.info("snnframe %s: %s -> %s", __version__, recipe.source, run_dir)

            # loggers start now, or on --resume when training begins (once the checkpoint was read and checked)
            def start() -> None:
                experiment.loggers.extend(start_loggers(parts.loggers, experiment))

            if resume:
                experiment.on_begin(start)
            else:
                start()
            try:
                result = parts.trainer.fit(experiment)
                experiment.begin()  # a trainer that did not say when it started: it finished, so write now
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


def _clean(run_dir: Path) -> None:
    """Remove the temporary files a killed run left (this process holds the lock: no other writes here)."""
    remove_stale_temporaries(run_dir, run_dir / CHECKPOINT_DIR)


def _rewrite_recipe_if_changed(recipe: Recipe, run_dir: Path) -> None:
    """On resume: ``recipe.toml`` gets the new ``train.epochs``/``device``/``loggers``; unchanged, it stays."""
    saved = run_dir / RECIPE_FILE
    if read(saved) != recipe.to_dict():
        write_recipe(recipe, run_dir)


@contextlib.contextmanager
def _run_directory(recipe: Recipe, resume: bool) -> Iterator[list[Path]]:
    """Create (new run) and lock the run directory for this process, check it again under the lock.

    Yields the list of what this process created there; while it is not cleared, a failure
    removes it again, so that a run that never started leaves nothing behind.
    """
    run_dir = recipe.run_dir
    created: list[Path] = []
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir()
        created.append(run_dir)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RunDirError(
            f"cannot create the run directory {run_dir}: {os_cause(exc)}; set experiment.out_dir to a writable "
            "directory"
        ) from None
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # only if still empty: the lock's holder may have written there
        raise
    try:
        check_run_dir(recipe, resume, locked=True)  # again: another run may have written here since prepare()
        yield created
    finally:
        if created:  # a run that never started: remove what it put there (lock held), then the directory
            for name in (RECIPE_FILE, LOG_FILE, *LOCK_FILES):
                with contextlib.suppress(OSError):
                    (run_dir / name).unlink()
        with contextlib.suppress(OSError):
            lock.release()
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # fails, as it should, if another process has put something there since


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
            cause = str(exc) if isinstance(exc, SnnframeError) else f"{type(exc).__name__}: {exc}"
            failed.append(f"{name} ({cause})")
            continue
        written += paths
    if failed or failed_loggers:
        raise _failed(experiment, failed, list(failed_loggers))
    return written
