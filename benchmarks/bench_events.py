"""Event-data benchmark: one training epoch through tonic's own pipeline vs snnframe's, side by side.

Both sides read the same N-MNIST-format ``.bin`` files (written by ``tests/helpers/data_files.py``:
simulated saccade recordings of the embedded digits, ~3,800 events each) and train the same tiny
network (``mlp`` with one hidden layer of 8 ``leaky`` neurons, ``ce_rate``, Adam) from the same
initial weights, batch 128, 1 ms frames, ±10° rotation of training samples:

- **tonic**: ``tonic.datasets.NMNIST`` with ``Compose([Denoise(10 ms), ToFrame(1 ms)])``, tonic's
  ``DiskCachedDataset`` (HDF5 per sample) with ``RandomRotation([-10, 10])`` after the cache, and
  ``PadTensors(batch_first=False)`` -- what the seed project did;
- **snnframe**: the ``nmnist`` data set with the ``frames`` encoder: denoised events cached in one
  file per split, rotation on event coordinates, frames binned per batch by one scatter-add.

The first epoch of each side starts from an empty cache (for snnframe it includes building the
cache in ``splits()``); warm epochs then alternate between the sides so that load from other
processes hits both alike; each reported time is the median (min-max in brackets).

    python benchmarks/bench_events.py                     # 1,000 recordings, 5 warm epochs per side
    python benchmarks/bench_events.py --samples 300 --warm 2
    python benchmarks/bench_events.py --device cuda       # bins on the GPU, model on the GPU
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # helpers.data_files writes the N-MNIST-format files


def write_files(root: Path, samples: int) -> None:
    from helpers.data_files import write_nmnist

    write_nmnist(root, per_class_train=samples // 10, per_class_test=1)


def make_model(seed: int):
    from snnframe.builtins.models.mlp import mlp
    from snnframe.builtins.neurons.leaky import Leaky
    from snnframe.engine.surrogate import FastSigmoid

    torch.manual_seed(seed)
    return mlp(
        input_shape=(2, 34, 34),
        num_classes=10,
        hidden=[8],
        neuron=lambda: Leaky(beta=0.5, surrogate=FastSigmoid(slope=25)),
    )


class Side:
    """One pipeline: ``loader()`` builds its DataLoader (empty cache on the first call), ``encode``
    turns a batch into network input on the device."""

    def __init__(self, name, loader, encode, model, device):
        from snnframe.builtins.losses.spike_losses import CERate

        self.name, self.make_loader, self.encode = name, loader, encode
        self.model = model.to(device)
        self.device = device
        self.loss = CERate()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-2)
        self.loader = None
        self.samples = 0

    def epoch(self) -> float:
        start = time.perf_counter()
        if self.loader is None:
            self.loader = self.make_loader()  # snnframe: builds the event cache here
        for inputs, targets in self.loader:
            x = self.encode(inputs)
            spikes = self.model(x)
            loss = self.loss(spikes, targets.to(self.device))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start


def tonic_side(root: Path, cache: Path, batch: int, workers: int, device, model) -> Side:
    import tonic
    from tonic import DiskCachedDataset
    from tonic.collation import PadTensors
    from tonic.transforms import Compose, Denoise, ToFrame
    from torchvision.transforms import RandomRotation

    from snnframe.builtins.datasets._tonic_readers import ExtractedNMNIST  # tonic's NMNIST without its zip check

    def to_float(frames):
        return torch.as_tensor(frames).float()

    def loader():
        frames = Compose(
            [Denoise(filter_time=10000), ToFrame(sensor_size=tonic.datasets.NMNIST.sensor_size, time_window=1000.0)]
        )
        train = ExtractedNMNIST(save_to=str(root), train=True, transform=frames)
        cached = DiskCachedDataset(
            train, cache_path=str(cache), transform=Compose([to_float, RandomRotation([-10, 10])])
        )
        return torch.utils.data.DataLoader(
            cached, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=PadTensors(batch_first=False)
        )

    return Side("tonic", loader, lambda x: x.to(device), model, device)


def snnframe_side(root: Path, cache: Path, batch: int, workers: int, device, model) -> Side:
    from snnframe.builtins.datasets.nmnist import NMNIST
    from snnframe.builtins.encoders.frames import Frames

    encoder = Frames(time_window_us=1000, denoise_us=10000)
    dataset = NMNIST(root=str(root), require_archives=False, cache_dir=str(cache))

    def loader():
        train, _ = dataset.splits(encoder.sample_transform(dataset.info))
        return torch.utils.data.DataLoader(
            train, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=encoder.collate_fn(dataset.info)
        )

    return Side("snnframe", loader, lambda batch: encoder(batch.to(device)), model, device)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000, help="training recordings (multiple of 10)")
    parser.add_argument("--warm", type=int, default=5, help="warm epochs per side")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (both sides)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dir", default=None, help="working folder (default: a temporary one, removed after)")
    args = parser.parse_args()

    from snnframe.engine import host_memory

    device = torch.device(args.device)
    if device.type == "cpu":
        host_memory.keep_freed_memory()  # what the bptt trainer does on CPU; process-wide, so both sides
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench_events_"))
    try:
        start = time.perf_counter()
        write_files(work / "data", args.samples)
        print(f"wrote {args.samples} N-MNIST-format training files in {time.perf_counter() - start:.1f} s")
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs, device {device}, batch {args.batch}, workers {args.workers}"
        )
        sides = [
            tonic_side(work / "data", work / "cache_tonic", args.batch, args.workers, device, make_model(0)),
            snnframe_side(work / "data", work / "cache_snnframe", args.batch, args.workers, device, make_model(0)),
        ]
        first = {side.name: side.epoch() for side in sides}
        warm = {side.name: [] for side in sides}
        for _ in range(args.warm):
            for side in sides:
                warm[side.name].append(side.epoch())
        print(f"\n{'':10} {'first epoch (empty cache)':>28} {'warm epoch, median (min-max)':>32}")
        for side in sides:
            print(f"{side.name:10} {first[side.name]:>26.2f} s {spread(warm[side.name]):>32}")
        for side in sides:
            print(f"  {side.name} warm epochs: {', '.join(f'{t:.2f}' for t in warm[side.name])} s")
        ratio = statistics.median(warm["tonic"]) / statistics.median(warm["snnframe"])
        print(
            f"\nsnnframe vs tonic: warm {ratio:.1f}x faster (median), first epoch "
            f"{first['tonic'] / first['snnframe']:.1f}x faster"
        )
        sizes = {
            name: sum(f.stat().st_size for f in (work / f"cache_{name}").rglob("*") if f.is_file())
            for name in ("tonic", "snnframe")
        }
        print(f"cache on disk: tonic {sizes['tonic'] / 2**20:.1f} MiB, snnframe {sizes['snnframe'] / 2**20:.1f} MiB")
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
