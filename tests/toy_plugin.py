"""A plugin of pure-Python toy components, for testing the core without torch models."""

from __future__ import annotations

import json
from typing import Literal

import snnframe
from snnframe.contracts import DatasetInfo, EpochReport, TrainResult


class ToyDataset:
    def __init__(self, *, root: str, size: int = 8, modality: Literal["image", "events"] = "image"):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.root = root
        self.info = DatasetInfo(modality, (1, 4, 4), 3)
        self.size = size

    def splits(self, transform):
        data = [([i], i % 3) for i in range(self.size)]
        return data, data[: self.size // 2]


class ToyEncoder:
    modality = "image"

    def __init__(self, *, num_steps: int = 5):
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        self.num_steps = num_steps

    def sample_transform(self, info):
        return None

    def collate_fn(self, info):
        return None

    def input_shape(self, info):
        return info.shape

    def __call__(self, batch):
        return [batch] * self.num_steps


class ToySurrogate:
    def __init__(self, *, slope: float = 25.0):
        self.slope = slope


class ToyNeuron:
    def __init__(self, *, beta: float = 0.5, surrogate=None, reset: Literal["subtract", "zero"] = "subtract"):
        if not 0 <= beta <= 1:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        self.beta, self.surrogate = beta, surrogate


class ToyModel:
    def __init__(self, input_shape, num_classes, layers):
        self.input_shape, self.num_classes, self.layers = input_shape, num_classes, layers

    def eval(self):
        return self


def toy_net(*, input_shape: tuple, num_classes: int, neuron, hidden: list[int] = (8,)):
    return ToyModel(input_shape, num_classes, [neuron() for _ in hidden])


def toy_loss(*, scale: float = 1.0):
    return lambda spikes, targets: 0.0


class ToyTrainer:
    """Writes the run-directory contract's metrics without training anything."""

    def __init__(self, *, epochs: int, lr: float, device: str, loss, momentum: float = 0.0):
        self.epochs, self.lr, self.device, self.loss = epochs, lr, device, loss

    def fit(self, experiment):
        train, test = experiment.splits()
        history = []
        start = 0
        metrics = experiment.run_dir / "metrics.jsonl"
        if experiment.resume and metrics.exists():
            history = [json.loads(line) for line in metrics.read_text().splitlines()]
            start = len(history)
        experiment.begin()  # read what it resumes from: the core may write (and starts the loggers on resume)
        for epoch in range(start + 1, self.epochs + 1):
            row = {
                "epoch": epoch,
                "train_loss": 1.0 / epoch,
                "test_acc": len(test) / 10,
                "lr": self.lr,
                "train_seconds": 0.0,
                "n_train": len(train),
            }
            history.append(row)
            with metrics.open("a") as f:
                f.write(json.dumps(row) + "\n")
            if experiment.loggers:
                experiment.log_epoch(EpochReport(epoch, row))
        return TrainResult(experiment.model, history, "cpu", experiment.is_main)


class ToyVisualizer:
    def __init__(self, *, filename: str = "toy.txt"):
        self.filename = filename

    def __call__(self, ctx):
        path = ctx.run_dir / self.filename
        path.write_text(f"{len(ctx.history)} epochs\n")
        return [path]


@snnframe.hookimpl
def register_datasets(register):
    register("toy_data", ToyDataset)


@snnframe.hookimpl
def register_encoders(register):
    register("toy_enc", ToyEncoder)


@snnframe.hookimpl
def register_surrogates(register):
    register("toy_sg", ToySurrogate)


@snnframe.hookimpl
def register_neurons(register):
    register("toy_lif", "toy_plugin:ToyNeuron")  # a lazy reference, like the built-ins use


@snnframe.hookimpl
def register_architectures(register):
    register("toy_net", toy_net)


@snnframe.hookimpl
def register_losses(register):
    register("toy_loss", toy_loss)


@snnframe.hookimpl
def register_trainers(register):
    register("toy_trainer", ToyTrainer)


class BrokenVisualizer:
    def __call__(self, ctx):
        raise ValueError("nothing to draw\nsecond line")


@snnframe.hookimpl
def register_visualizers(register):
    register("toy_vis", ToyVisualizer)
    register("toy_broken", BrokenVisualizer)


class ToyLogger:
    """Writes what it is handed to <run_dir>/<filename>, one line per call."""

    def __init__(self, *, filename: str = "logger.txt"):
        self.filename = filename
        self.path = None

    def start(self, ctx):
        self.path = ctx.run_dir / self.filename
        with self.path.open("a") as f:
            f.write(f"start {ctx.name} resume={ctx.resume}\n")

    def log_epoch(self, report):
        with self.path.open("a") as f:
            f.write(f"epoch {report.epoch} train_loss={report.metrics['train_loss']}\n")

    def close(self):
        with self.path.open("a") as f:
            f.write("close\n")


class BrokenLogger(ToyLogger):
    def log_epoch(self, report):
        raise OSError("the logging server went away")


@snnframe.hookimpl
def register_loggers(register):
    register("toy_log", ToyLogger)
    register("toy_broken_log", BrokenLogger)


TOY_RECIPE = """\
[experiment]
name = "toy"
seed = 1
out_dir = "{out_dir}"

[data]
kind = "toy_data"
batch_size = 4
size = 10

[encoder]
kind = "toy_enc"
num_steps = 3

[model]
kind = "toy_net"
hidden = [4, 4]

[model.neuron]
kind = "toy_lif"
beta = 0.25

[model.neuron.surrogate]
kind = "toy_sg"
slope = 10

[train]
kind = "toy_trainer"
epochs = 2
lr = 0.01
device = "cpu"

[train.loss]
kind = "toy_loss"

[[visualize]]
kind = "toy_vis"
"""
