"""What the core hands to plugins and expects back.

Every component is built by calling the factory a plugin registered with the
recipe table's keys as keyword arguments; a few arguments are *injected* by the
core instead of coming from the recipe (see ``INJECTED``).  The objects the
factories return follow the shapes below.  Tensors are time-major: ``[T, B, ...]``.

This module must stay import-light (no torch at import time): it is imported by
``snnframe validate`` and ``snnframe list-plugins``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Literal, Protocol, Sequence, runtime_checkable

import attrs

Modality = Literal["image", "events"]

# Arguments the core passes to a factory itself; a recipe cannot set them.
INJECTED: dict[str, tuple[str, ...]] = {
    "datasets": ("root",),
    "encoders": (),
    "neurons": ("surrogate",),
    "surrogates": (),
    "architectures": ("input_shape", "num_classes", "neuron"),
    "losses": (),
    "trainers": ("epochs", "lr", "device", "loss"),
    "visualizers": (),
}


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


@runtime_checkable
class Visualizer(Protocol):
    def __call__(self, ctx: "VisualContext") -> Sequence[Path]:
        """Write files into ``ctx.run_dir`` and return their paths."""


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
    _splits: tuple[Any, Any] | None = attrs.field(default=None, init=False, repr=False)

    @property
    def info(self) -> DatasetInfo:
        return self.dataset.info

    def splits(self) -> tuple[Any, Any]:
        """Train and test datasets with the encoder's sample transform and the recipe's subsets."""
        if self._splits is None:
            from snnframe.data import keep_every

            train, test = self.dataset.splits(self.encoder.sample_transform(self.info))
            self._splits = keep_every(train, self.data.subset), keep_every(test, self.data.test_subset)
        return self._splits


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
