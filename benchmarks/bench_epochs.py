"""Whole training epochs of the shipped seed recipes: snnframe's trainer vs the seed's snnTorch path.

What a user runs, end to end, data loading included, on the same files in the same process:

- **snnframe**: ``recipes/csnn_static.toml`` / ``recipes/csnn_spike.toml`` as shipped (batch 128,
  their ``num_workers``, augmentation), built as ``snnframe run`` builds them and trained by the
  ``bptt`` trainer's own epoch loop (``Session._train_epoch``: its DataLoaders, encoder, thread
  and allocator settings);
- **seed**: the seed project's path written from its description: torchvision's ``MNIST``
  (``ToTensor``) or tonic's pipeline for events (``NMNIST`` + ``Compose([Denoise(10 ms),
  ToFrame(1 ms)])``, ``DiskCachedDataset`` with ``RandomRotation([-10, 10])`` after the cache,
  ``PadTensors(batch_first=False)``, as in ``bench_events.py``), a ``DataLoader`` with the same
  batch size and workers, snnTorch ``Leaky(init_hidden=True)`` layers in an ``nn.Sequential``
  stepped in Python, ``utils.reset``, ``SF.ce_rate_loss``, Adam.

Data: the real formats the tests write (``tests/helpers/data_files.py``): gzipped MNIST IDX files
(the embedded digits rendered at 28x28) and N-MNIST ``.bin`` recordings (simulated saccades,
~300 ms: T ~ 300 frames of 1 ms), ``--samples`` training samples each. Both sides start from
the same initial weights. The first epoch of each side fills its disk cache (events); then
warm epochs alternate between the sides, so that load from other processes hits both alike.
Reported: training epochs (the loop over the training loader: loading, forward, backward,
optimizer step), median of the warm ones with min-max.

``--memory`` adds the peak memory of one epoch on the warm caches (filled by the timing part),
each side in a fresh process: the training process's peak RSS (``VmHWM``: everything it held,
batches received from the workers included) and, sampled every 0.25 s, the peak of the summed
PSS of that process and its DataLoader workers (PSS splits pages shared after ``fork`` between
the processes, so the sum counts each page once). In that fresh process the seed side runs
without snnframe's allocator setting (``keep_freed_memory``, which the trainer applies
process-wide); in the timing part, which shares one process, both sides run with it, which
helps the seed's many large temporaries too. The fresh process's epoch time is printed as well.

    python benchmarks/bench_epochs.py                          # both recipes, 1,000 samples, 3 warm epochs
    python benchmarks/bench_epochs.py --recipes csnn_spike --warm 2 --memory
    python benchmarks/bench_epochs.py --recipes csnn_static --set data.num_workers=1   # an override, snnframe side
    python benchmarks/bench_epochs.py --recipes csnn_spike --sides snnframe --variant data.num_workers=0 \
        --variant threads=1                # more snnframe sides in the same run, epochs alternating

``--variant`` adds a snnframe side built with more overrides (``;``-separated; ``threads=N`` runs
that side's epochs with ``torch.set_num_threads(N)``, ``env.NAME=VALUE`` with that environment
variable set, ``hidden=dense`` with the hidden layers' event-driven paths off), so that settings
compare side by side.

The timing part runs in one process per recipe, and the trainer's allocator setting
(``keep_freed_memory``) is process-wide, so the seed side runs with it there too (its large
temporaries then reuse heap instead of faulting in fresh pages: faster for the seed). A process
of the seed alone would hold no kept heap when its DataLoader forks its workers, so the seed
side returns the kept free heap (``malloc_trim``) before each epoch with workers; otherwise its
workers would share, and its training copy, the heap the other side left.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # helpers.data_files
sys.path.insert(0, str(REPO / "benchmarks"))  # bench_step: the seed's network

from bench_trained import dense_hidden  # noqa: E402  (hidden layers without their event-driven paths)

RECIPES = {"csnn_static": "mnist", "csnn_spike": "nmnist"}
LR = 1e-2


# ---- data ----------------------------------------------------------------------------------


def write_files(root: Path, samples: int, tests: int) -> None:
    from helpers.data_files import write_mnist, write_nmnist

    if not (root / "MNIST").exists():
        write_mnist(root, n_train=samples, n_test=tests)
    if not (root / "NMNIST").exists():
        write_nmnist(root, per_class_train=samples // 10, per_class_test=max(1, tests // 10))


# ---- snnframe: the recipe through the bptt trainer's own epoch loop --------------------------


class SnnframeSide:
    name = "snnframe"

    def __init__(
        self,
        recipe: str,
        root: Path,
        work: Path,
        overrides: list[str],
        threads: int | None = None,
        env: dict[str, str] | None = None,
        dense_hidden: bool = False,
    ):
        from snnframe.builtins.training.distributed import DistContext
        from snnframe.builtins.training.resume import start_random_streams
        from snnframe.builtins.training.session import Session
        from snnframe.contracts import DataSettings, Experiment
        from snnframe.recipe import read_with_overrides
        from snnframe.run import build, seed_everything

        path = REPO / "recipes" / f"{recipe}.toml"
        sets = [f"data.root={root}", "visualize=[]", f"experiment.name={recipe}", "train.progress=false"]
        if RECIPES[recipe] == "nmnist":
            sets += ["data.require_archives=false", "data.download=false", f"data.cache_dir={work / 'cache_snnframe'}"]
        else:
            sets += ["data.download=false"]
        data = read_with_overrides(str(path), sets + list(overrides))
        data.setdefault("experiment", {})["out_dir"] = str(work / "runs")
        seed_everything(int(data["experiment"].get("seed", 0)))
        prepared = build(data, str(path), recipe)
        r, parts = prepared.recipe, prepared.components
        self.recipe = r
        experiment = Experiment(
            name=r.experiment.name,
            seed=r.experiment.seed,
            run_dir=work / "runs" / recipe,
            recipe=r.to_dict(),
            resume=False,
            dataset=parts.dataset,
            encoder=parts.encoder,
            model=parts.model,
            data=DataSettings(r.data.batch_size, r.data.subset, r.data.test_subset, r.data.num_workers),
        )
        dist = DistContext.from_env()
        self.session = Session(parts.trainer, experiment, dist, torch.device("cpu"))  # builds the event cache
        start_random_streams(self.session, 0, None)
        self.session._wrap()
        self.model = parts.model
        self.batch_size, self.num_workers = r.data.batch_size, r.data.num_workers
        self.threads, self.env, self.dense_hidden = threads, env or {}, dense_hidden
        self.epochs = 0

    def epoch(self) -> float:
        self.epochs += 1
        self.session._begin_epoch(self.epochs)
        threads, env = torch.get_num_threads(), {name: os.environ.get(name) for name in self.env}
        if self.threads:
            torch.set_num_threads(self.threads)
        os.environ.update(self.env)
        try:
            with dense_hidden() if self.dense_hidden else contextlib.nullcontext():
                began = time.perf_counter()
                self.session._train_epoch(self.epochs)
                return time.perf_counter() - began
        finally:
            torch.set_num_threads(threads)
            for name, value in env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


# ---- the seed: snnTorch stepped in Python, torchvision / tonic data --------------------------


class SeedSide:
    name = "seed"

    def __init__(self, dataset: str, root: Path, work: Path, batch: int, workers: int, seed: int = 0):
        import snntorch.functional as SF
        from bench_step import seed_model

        torch.manual_seed(seed)
        self.static = dataset == "mnist"
        self.model = seed_model((1, 28, 28) if self.static else (2, 34, 34))
        self.loss = SF.ce_rate_loss()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR, betas=(0.9, 0.999))
        self.root, self.work, self.batch, self.workers = root, work, batch, workers
        self.generator = torch.Generator().manual_seed(seed)
        self.loader = None
        self.epochs = 0

    def make_loader(self):
        if self.static:
            from torchvision import datasets, transforms

            train = datasets.MNIST(
                str(self.root),
                train=True,
                transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((0,), (1,))]),
            )
            collate = None
        else:
            import tonic
            from tonic import DiskCachedDataset
            from tonic.collation import PadTensors
            from tonic.transforms import Compose, Denoise, ToFrame
            from torchvision.transforms import RandomRotation

            from snnframe.builtins.datasets._tonic_readers import ExtractedNMNIST  # tonic's NMNIST, no zip check

            frames = Compose(
                [Denoise(filter_time=10000), ToFrame(sensor_size=tonic.datasets.NMNIST.sensor_size, time_window=1000)]
            )
            events = ExtractedNMNIST(save_to=str(self.root), train=True, transform=frames)
            train = DiskCachedDataset(
                events,
                cache_path=str(self.work / "cache_tonic"),
                transform=Compose([_to_float, RandomRotation([-10, 10])]),
            )
            collate = PadTensors(batch_first=False)
        return torch.utils.data.DataLoader(
            train,
            batch_size=self.batch,
            shuffle=True,
            num_workers=self.workers,
            collate_fn=collate,
            generator=self.generator,
        )

    def epoch(self) -> float:
        from snntorch import utils

        self.epochs += 1
        if self.workers > 0:  # fork the workers from a heap as small as the seed's own process holds
            release_heap()
        began = time.perf_counter()
        if self.loader is None:
            self.loader = self.make_loader()
        self.model.train()
        for data, targets in self.loader:
            steps = 50 if self.static else data.shape[0]
            utils.reset(self.model)
            spikes = []
            for t in range(steps):
                spk, _ = self.model(data if self.static else data[t])
                spikes.append(spk)
            loss = self.loss(torch.stack(spikes), targets)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        return time.perf_counter() - began


def release_heap() -> None:
    """``malloc_trim(0)``: give free heap back to the OS (glibc; elsewhere nothing)."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _to_float(frames):
    return torch.as_tensor(frames).float()


def make_side(which: str, recipe: str, root: Path, work: Path, overrides: list[str]):
    own = SnnframeSide(recipe, root, work, overrides) if which in ("snnframe", "both") else None
    if which == "snnframe":
        return own
    from snnframe.recipe import read_with_overrides

    data = read_with_overrides(str(REPO / "recipes" / f"{recipe}.toml"), [])["data"]
    seed = SeedSide(RECIPES[recipe], root, work, data["batch_size"], data.get("num_workers", 0))
    if own is not None:  # same initial weights
        with torch.no_grad():
            theirs = dict(seed.model.named_parameters())
            for name, p in own.model.named_parameters():
                p.copy_(theirs[name])
        return own, seed
    return seed


def variant_side(variant: str, recipe: str, root: Path, work: Path, overrides: list[str]) -> SnnframeSide:
    """A further snnframe side: ``variant`` is ``;``-separated overrides, ``threads=N``,
    ``env.NAME=VALUE`` and ``hidden=dense`` (hidden layers without their event-driven paths) among them."""
    sets = [v.strip() for v in variant.split(";") if v.strip()]
    threads = [int(v.split("=", 1)[1]) for v in sets if v.startswith("threads=")]
    env = dict(v[len("env.") :].split("=", 1) for v in sets if v.startswith("env."))
    dense = "hidden=dense" in sets
    recipe_sets = [v for v in sets if not v.startswith(("threads=", "env.", "hidden="))]
    side = SnnframeSide(recipe, root, work, overrides + recipe_sets, threads[-1] if threads else None, env, dense)
    side.name = f"snnframe[{variant}]"
    return side


# ---- memory: one warm epoch in a fresh process ------------------------------------------------


def status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def tree_pss() -> int:
    """Summed PSS of this process and its live children (the DataLoader workers), bytes."""
    me = os.getpid()
    pids = [me]
    try:
        with open(f"/proc/{me}/task/{me}/children") as f:
            pids += [int(pid) for pid in f.read().split()]
    except OSError:
        pass
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:  # a worker that just exited
            pass
    return total


class PssSampler(threading.Thread):
    def __init__(self, every: float = 0.25):
        super().__init__(daemon=True)
        self.every, self.peak, self.done = every, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, tree_pss())
            self.done.wait(self.every)


def memory_child(which: str, recipe: str, root: Path, work: Path, overrides: list[str]) -> None:
    side = make_side(which, recipe, root, work, overrides)
    sampler = PssSampler()
    sampler.start()
    seconds = side.epoch()
    sampler.done.set()
    sampler.join()
    print(json.dumps({"peak": status_bytes("VmHWM"), "tree_pss": sampler.peak, "seconds": seconds}))


def child_command(flag: str, value: str, args, work: Path, recipe: str | None = None) -> list[str]:
    cmd = [sys.executable, __file__, flag, value, "--recipes", recipe or value, "--dir", str(work)]
    cmd += ["--warm", str(args.warm), "--sides", args.sides]
    for override in args.set:
        cmd += ["--set", override]
    for variant in args.variant:
        cmd += ["--variant", variant]
    return cmd


def peak_memory(which: str, recipe: str, args, work: Path) -> dict:
    cmd = child_command("--memory-child", which, args, work, recipe)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---- timing: one recipe's epochs in a child process ---------------------------------------------


def timing(recipe: str, root: Path, work: Path, args) -> None:
    """The timing part of one recipe: first epochs, then warm epochs alternating between the sides."""
    sides = make_side(args.sides, recipe, root, work, args.set)
    sides = sides if isinstance(sides, tuple) else (sides,)
    if args.variant:
        own = next((s for s in sides if s.name == "snnframe"), None)
        extra = tuple(variant_side(v, recipe, root, work, args.set) for v in args.variant)
        for side in extra if own is not None else ():  # same initial weights
            side.model.load_state_dict(own.model.state_dict())
        sides += extra
    own = next((s for s in sides if s.name == "snnframe"), None)
    if own is not None:
        r = own.recipe
        print(
            f"\n== {recipe}: batch {r.data.batch_size}, num_workers {r.data.num_workers}, "
            f"training threads {torch.get_num_threads()}"
        )
    else:
        print(f"\n== {recipe}")
    first = {side.name: side.epoch() for side in sides}
    warm = {side.name: [] for side in sides}
    print("  first epochs: " + ", ".join(f"{n} {t:.2f} s" for n, t in first.items()), flush=True)
    for k in range(args.warm):
        for side in sides:
            warm[side.name].append(side.epoch())
        print(f"  warm round {k + 1}: " + ", ".join(f"{n} {w[-1]:.2f} s" for n, w in warm.items()), flush=True)
    for side in sides:
        times = ", ".join(f"{t:.2f}" for t in warm[side.name])
        print(f"  {side.name:9} first epoch {first[side.name]:.2f} s, warm {spread(warm[side.name])}  [{times}]")
    names = [side.name for side in sides]
    base = "seed" if "seed" in names else names[0]
    for name in names:
        if name != base:
            ratio = statistics.median(warm[base]) / statistics.median(warm[name])
            print(f"  warm epoch speed-up {name} vs {base}: {ratio:.2f}x (load {os.getloadavg()[0]:.2f})")
    sys.stdout.flush()


# ---- report ------------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="csnn_spike,csnn_static")
    parser.add_argument("--samples", type=int, default=1000, help="training samples per data set (multiple of 10)")
    parser.add_argument("--tests", type=int, default=100, help="test samples per data set")
    parser.add_argument("--warm", type=int, default=3, help="warm epochs per side")
    parser.add_argument("--memory", action="store_true", help="also the peak memory of a warm epoch per side")
    parser.add_argument("--sides", default="both", choices=["both", "snnframe", "seed"])
    parser.add_argument("--set", action="append", default=[], help="a recipe override for the snnframe side")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="a further snnframe side: ';'-separated overrides, threads=N for its training threads, "
        "env.NAME=VALUE, hidden=dense (no event-driven hidden layers)",
    )
    parser.add_argument("--dir", default=None, help="working folder, kept (default: a temporary one, removed)")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--timing-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    work = Path(args.dir or tempfile.mkdtemp(prefix="bench_epochs_"))
    root = work / "data"
    if args.memory_child:
        return memory_child(args.memory_child, args.recipes, root, work, args.set)
    if args.timing_child:
        return timing(args.timing_child, root, work, args)
    try:
        began = time.perf_counter()
        write_files(root, args.samples, args.tests)
        print(f"data: {args.samples} training samples per data set in {work} ({time.perf_counter() - began:.1f} s)")
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
        )
        for recipe in args.recipes.split(","):
            # in a child process, so that its trained heap is gone before the memory processes start
            sys.stdout.flush()
            subprocess.run(child_command("--timing-child", recipe, args, work), check=True)
            if args.memory:
                mem = {}
                for which in ("seed", "snnframe") if args.sides == "both" else (args.sides,):
                    mem[which] = peak_memory(which, recipe, args, work)
                    m = mem[which]
                    print(
                        f"  {which:9} fresh process, warm-cache epoch: peak RSS {m['peak'] / 2**30:.2f} GiB, "
                        f"peak PSS with workers {m['tree_pss'] / 2**30:.2f} GiB, epoch {m['seconds']:.1f} s"
                    )
                if len(mem) == 2:
                    rss = mem["snnframe"]["peak"] / mem["seed"]["peak"]
                    pss = mem["snnframe"]["tree_pss"] / mem["seed"]["tree_pss"]
                    print(f"  peak memory snnframe / seed: RSS {rss:.2f}x, PSS with workers {pss:.2f}x")
            sys.stdout.flush()
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
