"""Data-only passes over the ``ndigits`` splits: how long the event pipeline takes without a model.

``DataLoader`` (batch 64, main process), one torch thread, the ``frames`` encoder's collation and
``encoder(batch)`` included, denoise 10 ms, the data set's default rotation on the training split;
10 ms and 1 ms frames, with and without the disk cache, three passes per split. Uses only APIs
that the previous pipeline had too, so it can time an older checkout the same way:

    python benchmarks/event_passes.py DATA_ROOT CACHE_DIR
    git archive bf2fd88 | tar -x -C /tmp/base && cd /tmp/base && \\
        PYTHONPATH=. python /path/to/benchmarks/event_passes.py DATA_ROOT OTHER_CACHE_DIR
"""

import shutil
import sys
import time
from pathlib import Path

import torch

import snnframe
from snnframe.builtins.datasets.ndigits import NDigits
from snnframe.builtins.encoders.frames import Frames


def passes(root: Path, cache: Path, window_us: int, use_cache: bool, repeats: int = 3):
    shutil.rmtree(cache, ignore_errors=True)  # each configuration starts without a cache
    encoder = Frames(time_window_us=window_us, denoise_us=10000)
    dataset = NDigits(root=str(root), cache=use_cache, cache_dir=str(cache))
    start = time.perf_counter()
    train, test = dataset.splits(encoder.sample_transform(dataset.info))
    setup = time.perf_counter() - start
    times = {}
    for name, split in (("train", train), ("test", test)):
        times[name] = []
        for _ in range(repeats):
            loader = torch.utils.data.DataLoader(split, batch_size=64, collate_fn=encoder.collate_fn(dataset.info))
            start = time.perf_counter()
            for inputs, _ in loader:
                encoder(inputs)
            times[name].append(time.perf_counter() - start)
    return setup, times


def main() -> None:
    root, cache = Path(sys.argv[1]), Path(sys.argv[2])
    torch.set_num_threads(1)
    print(f"snnframe from {Path(snnframe.__file__).parent}")
    for window_us in (10_000, 1000):
        for use_cache in (True, False):
            setup, times = passes(root, cache, window_us, use_cache)
            text = "; ".join(f"{name} passes {', '.join(f'{t:.2f}' for t in ts)} s" for name, ts in times.items())
            print(f"{window_us // 1000} ms frames, cache={use_cache}: splits() {setup:.2f} s; {text}", flush=True)


if __name__ == "__main__":
    main()
