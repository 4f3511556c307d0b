"""What the core hands to plugins and expects back.

Every component is built by calling the factory a plugin registered with the
recipe table's keys as keyword arguments; a few arguments are *injected* by the
core instead of coming from the recipe (``Kind.injected`` in :mod:`snnframe.kinds`).
The objects the factories return follow the shapes below.  Tensors are time-major:
``[T, B, ...]``. Model code (neurons, surrogates, the multi-step engine) is described in
:mod:`snnframe.engine`.

This module must stay import-light (no torch at import time): it is imported by
``snnframe validate`` and ``snnframe list-plugins``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

log = logging.getLogger("snnframe")

Modality = Literal["image", "events"]


@attrs.frozen
class DatasetInfo:
    """What a dataset yields, so encoders and architectures can size themselves.

    ``shape`` is ``(C, H, W)`` for images and tonic's ``sensor_size``
    ``(W, H, P)`` for events.
    """

    modality: Modality
    shape: tuple[int, ...]
    num_classes: int
    classes: tuple[str, ...] = ()


@runtime_checkable
class Dataset(Protocol):
    """Returned by a ``register_datasets`` factory (called with ``root=`` and the recipe's keys).

    The factory must be cheap (``snnframe validate`` calls it); reading files
    happens in :meth:`splits`.
    """

    info: DatasetInfo

    def splits(self, transform: Callable | None) -> tuple[Any, Any]:
        """Return ``(train, test)`` map-style datasets of ``(sample, label)``.

        ``transform`` is the encoder's per-sample transform (may be ``None``);
        datasets apply it before any on-disk cache and apply training
        augmentation after it.
        """


@runtime_checkable
class Encoder(Protocol):
    """Returned by a ``register_encoders`` factory.

    Per-sample work (e.g. denoising an event recording) runs in the data pipeline
    through :meth:`sample_transform`; per-batch work (repeating an image over time,
    Bernoulli draws, binning events into frames) runs on the training device in
    :meth:`__call__`.
    """

    modality: Modality  # what the encoder accepts; checked against the dataset's

    def sample_transform(self, info: DatasetInfo) -> Callable | None: ...

    def collate_fn(self, info: DatasetInfo) -> Callable | None:
        """DataLoader collation, or ``None`` for PyTorch's default.

        It returns ``(inputs, targets)``; ``inputs`` is moved to the device with
        ``inputs.to(device, non_blocking=...)`` when it is a tensor or has such a method
        (e.g. :class:`snnframe.events.EventBatch`), item by item for tuples, lists, dicts.
        """

    def input_shape(self, info: DatasetInfo) -> tuple[int, ...]:
        """Shape of one time step of one sample, e.g. ``(1, 28, 28)``."""

    def __call__(self, batch: Any) -> Any:
        """A collated batch (on the device) to network input ``[T, B, *input_shape]``.

        Input that is constant over time is returned as an expanded view
        (stride 0 along T) so the engine can compute the first layers once.
        """


class NeuronError(ValueError):
    """A neuron factory refused its values while the architecture was built; ``path`` is its table."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path


@attrs.frozen
class NeuronTable:
    """One neuron table of the recipe, ready to build layers from."""

    factory: Callable[..., Any]
    kwargs: dict[str, Any]  # the table's parameters (and ``surrogate``), without ``shape``
    what: str  # 'neuron "leaky"'
    path: str  # "model.neuron", "model.neurons.3"

    def takes_shape(self) -> bool:
        """Whether the factory has a ``shape`` parameter (then it may need one: recurrent weights)."""
        try:
            return "shape" in inspect.signature(self.factory).parameters
        except (TypeError, ValueError):
            return False

    def check(self) -> None:
        """Build one layer, unless the factory takes ``shape`` (then the architecture's build checks it)."""
        if not self.takes_shape():
            self.build(None)

    def build(self, shape: tuple[int, ...] | None, layer: int | None = None) -> Any:
        """A fresh layer (``shape`` passed on if the factory takes it); ``NeuronError`` for a bad value."""
        kwargs = dict(self.kwargs)
        if shape is not None and self.takes_shape():
            kwargs["shape"] = shape
        try:
            return self.factory(**kwargs)
        except NeuronError:
            raise
        except ValueError as exc:
            message = str(exc)
            if self.takes_shape():  # the problem may be the layer's: say which one
                where = f"spiking layer {layer}" if layer is not None else "a spiking layer"
                given = "without shape=" if shape is None else f"with shape {shape}"
                message = f"{message} ({where}: the architecture called neuron() {given})"
            raise NeuronError(self.path, message) from None


class NeuronFactory:
    """The ``neuron`` an architecture receives: ``neuron(shape=...)`` builds the next spiking layer.

    Call it once per spiking layer, from the input on. The ``i``-th call builds spiking layer
    ``i`` from the recipe's ``[model.neurons.<i>]`` table where it has one, else from
    ``[model.neuron]`` (each call a fresh module, with the table's surrogate). ``shape`` is
    the shape of one step of one sample of the layer's input — ``(C, H, W)`` after a
    convolution, ``(features,)`` after a linear layer; it is passed on to neuron factories
    that have a ``shape`` parameter (recurrent neurons size their weights with it). An
    architecture that calls ``neuron()`` without it works with every neuron that needs none.

    ``calls`` counts the layers built, ``shapes`` records the shape of each call.
    """

    def __init__(
        self,
        factory: Callable[..., Any],
        kwargs: dict[str, Any],
        what: str = "neuron",
        *,
        path: str = "model.neuron",
        layers: dict[int, NeuronTable] | None = None,
    ):
        self.factory, self.kwargs, self.what = factory, dict(kwargs), what
        self.default = NeuronTable(factory, self.kwargs, what, path)
        self.layers = dict(layers or {})  # spiking layer number (from 1) -> its own table
        self.calls = 0
        self.shapes: list[tuple[int, ...] | None] = []

    def __call__(self, shape: Sequence[int] | None = None) -> Any:
        self.calls += 1
        shape = None if shape is None else tuple(int(size) for size in shape)
        self.shapes.append(shape)
        return self.table(self.calls).build(shape, self.calls)

    def table(self, layer: int) -> NeuronTable:
        """The table spiking layer ``layer`` (from 1) is built from."""
        return self.layers.get(layer, self.default)

    def check(self) -> None:
        """Build one layer of each table, so that a bad parameter is a recipe problem before anything runs.

        Tables whose factory takes ``shape`` are checked when the architecture builds them.
        """
        for table in [self.default, *self.layers.values()]:
            table.check()

    def __repr__(self) -> str:
        layers = f", layers {sorted(self.layers)}" if self.layers else ""
        return f"NeuronFactory({self.what}, {self.kwargs}{layers})"


@runtime_checkable
class Visualizer(Protocol):
    def __call__(self, ctx: VisualContext) -> Sequence[Path]:
        """Write files into ``ctx.run_dir`` and return their paths."""


@attrs.frozen
class LoggerContext:
    """Handed to each logger's ``start`` before training (on the main process only)."""

    run_dir: Path
    name: str  # experiment.name
    recipe: dict[str, Any]  # the fully resolved recipe, as saved in recipe.toml
    resume: bool  # the run continues from a checkpoint: epochs after it may be logged again


@attrs.frozen
class EpochReport:
    """One finished epoch, handed to each logger's ``log_epoch``.

    ``metrics`` is the epoch's ``metrics.jsonl`` row (``epoch``, ``train_loss``, ``test_acc``,
    ``lr``, ``firing_rates`` ...); ``histograms`` maps a name (a spiking layer's, ``"1:leaky"``)
    to a 1-d CPU tensor of values (each neuron's firing rate on the test set).
    """

    epoch: int
    metrics: dict[str, Any]
    histograms: dict[str, Any] = attrs.field(factory=dict)


@runtime_checkable
class Logger(Protocol):
    """Returned by a ``register_loggers`` factory: per-epoch metrics to TensorBoard, W&B, MLflow ..."""

    def start(self, ctx: LoggerContext) -> None:
        """Called once before training (open files, connect)."""

    def log_epoch(self, report: EpochReport) -> None:
        """Called after every epoch, once its row is in ``metrics.jsonl``."""

    def close(self) -> None:
        """Called once after training, also when it failed (flush, disconnect)."""


@attrs.define
class DataSettings:
    batch_size: int
    subset: int
    test_subset: int
    num_workers: int


@attrs.define
class Experiment:
    """Everything a trainer needs, built and validated by the core."""

    name: str
    seed: int
    run_dir: Path
    recipe: dict[str, Any]  # the fully resolved recipe, as saved in recipe.toml
    resume: bool
    dataset: Dataset
    encoder: Encoder
    model: Any  # torch.nn.Module: [T, B, *input_shape] -> output spikes [T, B, num_classes]
    data: DataSettings
    is_main: bool = True  # False on ranks > 0 of a distributed run: write nothing
    loggers: list[tuple[str, Logger]] = attrs.field(factory=list)  # started; empty on ranks > 0
    logger_failures: list[str] = attrs.field(factory=list, init=False)
    _splits: tuple[Any, Any] | None = attrs.field(default=None, init=False, repr=False)
    _on_begin: list[Callable[[], Any]] = attrs.field(factory=list, init=False, repr=False)

    def begin(self) -> None:
        """Say that training begins: the trainer has read and checked what it resumes from.

        A trainer calls this once, after loading its checkpoint (on ``--resume``) and before it
        writes anything into the run directory. On ``--resume`` the core writes ``recipe.toml`` and
        ``training.log`` only from then on, so that a resume that fails (a damaged checkpoint)
        leaves the run directory exactly as it was. Further calls do nothing; a trainer that never
        calls it gets those files written when ``fit`` returns.
        """
        callbacks, self._on_begin = self._on_begin, []
        for callback in callbacks:
            callback()

    def on_begin(self, callback: Callable[[], Any]) -> None:
        """Run ``callback`` at :meth:`begin` (the core's use)."""
        self._on_begin.append(callback)

    @property
    def info(self) -> DatasetInfo:
        return self.dataset.info

    def splits(self) -> tuple[Any, Any]:
        """Train and test datasets with the encoder's sample transform and the recipe's subsets."""
        if self._splits is None:
            from snnframe.data import prepared_splits

            self._splits = prepared_splits(self.dataset, self.encoder, self.data.subset, self.data.test_subset)
        return self._splits

    def log_epoch(self, report: EpochReport) -> None:
        """Hand a finished epoch to every logger (trainers call this once per epoch, on the main process).

        A logger that raises is reported in the log and dropped; training goes on, and the run
        reports the failure when it ends. Training has begun by then (see :meth:`begin`).
        """
        self.begin()
        for name, logger in list(self.loggers):
            try:
                logger.log_epoch(report)
            except Exception as exc:  # a logger must not cost the user the run
                log.error("logger %s failed at epoch %d and is switched off: %s", name, report.epoch, exc)
                log.debug("logger %s traceback", name, exc_info=True)
                self.logger_failures.append(f"{name} ({type(exc).__name__}: {exc})")
                self.loggers.remove((name, logger))


@attrs.define
class TrainResult:
    """Returned by ``trainer.fit(experiment)``."""

    model: Any  # the trained torch.nn.Module (unwrapped from DDP), on ``device``
    history: list[dict[str, Any]]  # the rows of metrics.jsonl
    device: Any  # torch.device
    is_main: bool = True  # visualizers run only where this is True


@attrs.define
class VisualContext:
    """Handed to each visualizer after training (rank 0 only)."""

    run_dir: Path
    model: Any
    encoder: Encoder
    test_set: Any
    history: list[dict[str, Any]]
    device: Any
    info: DatasetInfo
