"""Tiny torch components that satisfy the contracts, for trainer and visualizer tests.

A separable 3-class problem in 8 features, an encoder repeating the input over
time, and a two-layer leaky integrate-and-fire network with dropout (so the
resume tests also exercise the restored torch RNG).
"""

import os
import signal
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from snnframe.contracts import DatasetInfo, DataSettings, Experiment
from snnframe.engine.neuron import SpikingNeuron

FEATURES, CLASSES = 8, 3


class ToyDataset:
    def __init__(self, n_train: int = 96, n_test: int = 45, seed: int = 123):
        g = torch.Generator().manual_seed(seed)
        prototypes = 1.5 * torch.randn(CLASSES, FEATURES, generator=g)

        def make(n: int) -> TensorDataset:
            labels = torch.arange(n) % CLASSES
            return TensorDataset(prototypes[labels] + 0.7 * torch.randn(n, FEATURES, generator=g), labels)

        self.train, self.test = make(n_train), make(n_test)
        self.info = DatasetInfo("image", (FEATURES,), CLASSES, tuple("abc"))

    def splits(self, transform):
        return self.train, self.test


class RepeatEncoder:
    modality = "image"

    def __init__(self, steps: int = 6):
        self.steps = steps

    def sample_transform(self, info):
        return None

    def collate_fn(self, info):
        return None

    def input_shape(self, info):
        return info.shape

    def __call__(self, batch):
        return batch.unsqueeze(0).expand(self.steps, *batch.shape)


class FastSigmoidSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + 10 * x.abs()) ** 2


class ToyLIF(SpikingNeuron):
    """Leaky integrate-and-fire over ``[T, B, N]`` with subtractive reset."""

    def __init__(self, beta: float = 0.7):
        super().__init__()
        self.beta = beta

    def simulate(self, current, return_mem):
        mem = torch.zeros_like(current[0])
        spikes, mems = [], []
        for step in current:
            mem = self.beta * mem + step
            spike = FastSigmoidSpike.apply(mem - 1.0)
            mems.append(mem)
            mem = mem - spike.detach()
            spikes.append(spike)
        return torch.stack(spikes), torch.stack(mems) if return_mem else None


class ToySNN(nn.Module):
    def __init__(self, hidden: int = 16, neuron=ToyLIF):
        super().__init__()
        self.fc1 = nn.Linear(FEATURES, hidden)
        self.drop = nn.Dropout(0.1)
        self.lif1 = neuron()
        self.fc2 = nn.Linear(hidden, CLASSES)
        self.lif2 = neuron()

    def forward(self, x):
        h = self.lif1(self.drop(self.fc1(x)))
        return self.lif2(self.fc2(h) * 2.0)


class MaskRecordingSNN(ToySNN):
    """Records which hidden activations its dropout zeroed in each training forward pass.

    Dropout masks come from the process's torch stream, whatever its data: two processes
    record the same masks exactly when they draw the same random numbers.
    """

    def __init__(self):
        super().__init__()
        self.dropped: list[list[int]] = []
        self.drop.register_forward_hook(self._record)

    def _record(self, module, inputs, output):
        if module.training:
            self.dropped.append(((output == 0) & (inputs[0] != 0)).flatten().nonzero().flatten().tolist())


class InjectedCrash(Exception):
    pass


class CrashingSNN(ToySNN):
    """Raises after ``crash_after`` training forward passes: a run killed mid-epoch."""

    def __init__(self, crash_after: int):
        super().__init__()
        self.calls, self.crash_after = 0, crash_after

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls > self.crash_after:
                raise InjectedCrash(f"crash in forward pass {self.calls}")
        return super().forward(x)


class KilledSNN(CrashingSNN):
    """Kills its own process (SIGKILL: no clean-up, no flush) instead of raising."""

    def forward(self, x):
        try:
            return super().forward(x)
        except InjectedCrash:
            os.kill(os.getpid(), signal.SIGKILL)


class SignallingSNN(ToySNN):
    """Sends its own process ``signum`` during its ``signal_at``-th forward pass in training (or evaluation):
    what a cluster scheduler's SIGTERM, or a Ctrl-C, does at that moment."""

    def __init__(self, signal_at: int, signum: int = signal.SIGTERM, during: str = "train"):
        super().__init__()
        self.calls, self.signal_at, self.signum, self.during = 0, signal_at, signum, during

    def forward(self, x):
        if self.training == (self.during == "train"):
            self.calls += 1
            if self.calls == self.signal_at:
                if self.signum == signal.SIGINT:
                    # the handler in force (the test checks the trainer left it alone) and what Python's does, raised
                    # here: a real SIGINT's KeyboardInterrupt may surface in a finalizer the garbage collector runs,
                    # where Python prints and drops it (the test was flaky that way)
                    self.sigint_handler = signal.getsignal(signal.SIGINT)
                    raise KeyboardInterrupt
                signal.raise_signal(self.signum)
        return super().forward(x)


class PoisonedSNN(ToySNN):
    """Sets one weight to nan in its ``poison_at``-th training forward pass: weights gone bad, loss still finite
    (a nan membrane never crosses the threshold, so the network just falls silent)."""

    def __init__(self, poison_at: int):
        super().__init__()
        self.calls, self.poison_at = 0, poison_at

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.poison_at:
                with torch.no_grad():
                    self.fc2.weight[0, 0] = float("nan")
        return super().forward(x)


def seed_everything(seed: int) -> None:
    """What the core does before building the components."""
    from snnframe.run import seed_everything as core_seed_everything

    core_seed_everything(seed)


def make_experiment(
    run_dir: Path,
    *,
    seed: int = 0,
    resume: bool = False,
    model=ToySNN,
    batch_size: int = 16,
    steps: int = 6,
    is_main: bool = True,
    dataset=None,
    num_workers: int = 0,
) -> Experiment:
    """An Experiment as the core builds it; ``model`` is called after seeding."""
    seed_everything(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    return Experiment(
        name=run_dir.name,
        seed=seed,
        run_dir=run_dir,
        recipe={},
        resume=resume,
        dataset=ToyDataset() if dataset is None else dataset,
        encoder=RepeatEncoder(steps),
        model=model(),
        data=DataSettings(batch_size=batch_size, subset=1, test_subset=1, num_workers=num_workers),
        is_main=is_main,
    )
