"""Training steps on a trained network's own activations: snnframe vs the seed's snnTorch loop.

``bench_step.py`` times freshly initialised networks on synthetic input. What users train after
the first epochs is a network whose hidden layers fire sparsely, on real batches: this script
loads finished runs (``snnframe run`` output directories of a ``csnn`` recipe with ``leaky``
neurons), takes real training batches through the run's own data set and encoder, and times
the same training step (forward, ``ce_rate`` loss, backward, Adam) on three sides with the
run's trained weights:

- **snnTorch**: the seed's ``nn.Sequential`` of snnTorch ``Leaky(init_hidden=True)`` layers,
  stepped in Python (``bench_step.seed_model``), weights copied from the run;
- **dense hidden**: snnframe with the event-driven paths for hidden layers switched off (the
  first layer's event path on input frames stays as it was);
- **snnframe**: as shipped: hidden convolutions and linear layers fed by sparse spikes run
  event-driven, decided per batch from the measured density.

Before each measured step the trained weights are restored and a fresh Adam is made (untimed), so
every step sees the trained network's activations; sides alternate step by step. Printed: the
fraction of non-zero inputs of each weighted layer (measured on the benchmark batches), the
median step time (min-max) of each side and the ratios.

    python benchmarks/bench_trained.py runs/quickstart runs/quickstart_spike
    python benchmarks/bench_trained.py runs/csnn_static --batch 128 --repeats 9
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_step  # noqa: E402  (the seed model and the step sides)

from snnframe import load_run  # noqa: E402
from snnframe.engine import sparse_conv, sparse_linear  # noqa: E402


@contextlib.contextmanager
def dense_hidden():
    """Hidden layers (input needing a gradient) take the dense path; input layers keep theirs."""
    saved = sparse_conv.MAX_HIDDEN_DENSITY, sparse_linear.MAX_HIDDEN_DENSITY
    sparse_conv.MAX_HIDDEN_DENSITY = sparse_linear.MAX_HIDDEN_DENSITY = -1.0
    try:
        yield
    finally:
        sparse_conv.MAX_HIDDEN_DENSITY, sparse_linear.MAX_HIDDEN_DENSITY = saved


def batches(run, batch_size: int, count: int):
    """``count`` encoded training batches ``(x [T, B, ...], labels)`` of the run's data, shuffled with seed 0."""
    from torch.utils.data import DataLoader

    from snnframe.data import split_batch

    train, _ = run.splits()
    loader = DataLoader(
        train,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=run.encoder.collate_fn(run.info),
        generator=torch.Generator().manual_seed(0),
    )
    out = []
    for batch in loader:
        inputs, targets = split_batch(batch, torch.device("cpu"))
        out.append((run.encoder(inputs), targets))
        if len(out) == count:
            return out
    if not out:
        raise SystemExit(f"{run.run_dir}: fewer than {batch_size} training samples")
    return out


def input_densities(model: nn.Module, data) -> dict[str, float]:
    """Fraction of non-zero values entering each conv/linear layer (the network input included)."""
    counts: dict[str, list[float]] = {}
    hooks = [
        m.register_forward_pre_hook(
            lambda m, args, name=name: counts.setdefault(name, []).append(float((args[0] != 0).float().mean()))
        )
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        with torch.no_grad():
            for x, _ in data:
                model(x)
    finally:
        for h in hooks:
            h.remove()
    return {name: statistics.mean(v) for name, v in counts.items()}


def seed_copy(run, shape):
    """The seed's snnTorch network with the run's trained weights and neuron constants."""
    model = run.recipe.to_dict()["model"]
    neuron = model.get("neuron", {})
    seedlike = neuron.get("threshold", 1.0) == 1.0 and neuron.get("reset_mechanism", "subtract") == "subtract"
    if model.get("kind") != "csnn" or neuron.get("kind") != "leaky" or not seedlike:
        raise SystemExit(f"{run.run_dir}: the snnTorch side needs csnn with the seed's leaky neurons")
    bench_step.BETA = float(neuron.get("beta", bench_step.BETA))
    bench_step.SLOPE = float(neuron.get("surrogate", {}).get("slope", bench_step.SLOPE))
    net = bench_step.seed_model(shape)
    weights = {k: v for k, v in run.model.state_dict().items() if k.endswith(("weight", "bias"))}
    try:
        missing = net.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # another shape
        raise SystemExit(f"{run.run_dir}: the model is not the seed's 12C5-MP2-64C5-MP2-FC10: {exc}") from None
    if missing.unexpected_keys or any(k.endswith(("weight", "bias")) for k in missing.missing_keys):
        raise SystemExit(f"{run.run_dir}: the model is not the seed's 12C5-MP2-64C5-MP2-FC10: {missing}")
    return net


def measure(run_dir: str, batch: int | None, repeats: int, warmup: int) -> None:
    run = load_run(run_dir)
    batch = batch or run.recipe.data.batch_size
    data = batches(run, batch, warmup + repeats)
    x0 = data[0][0]
    static = x0.stride(0) == 0  # the static encoder: one image expanded over T
    shape = tuple(x0.shape[2:])
    model = run.model.train()
    densities = input_densities(model, data)
    seed = seed_copy(run, shape)
    sides = {
        "snnTorch": (seed, lambda m, x, y: bench_step.seed_side(m, x, y, static), contextlib.nullcontext),
        "dense hidden": (model, lambda m, x, y: bench_step.snnframe_side(m, x, y, "fp32"), dense_hidden),
        "snnframe": (model, lambda m, x, y: bench_step.snnframe_side(m, x, y, "fp32"), contextlib.nullcontext),
    }
    states = {name: copy.deepcopy(m.state_dict()) for name, (m, _, _) in sides.items()}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for i, (x, y) in enumerate(data):
        for name, (m, make, context) in sides.items():
            m.load_state_dict(states[name])  # the trained weights for every step
            side = make(m, x, y)
            with context():
                t0 = time.perf_counter()
                side.step()
                dt = time.perf_counter() - t0
            if i >= warmup:
                times[name].append(dt)
    print(f"\n{run_dir}: epoch {run.epoch}, batch {batch}, T = {x0.shape[0]}, input {shape}, {repeats} steps per side")
    print("  non-zero inputs: " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in densities.items()))
    base = statistics.median(times["snnTorch"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:13s} {bench_step.fmt_spread(ts):>22s}  {base / med:5.2f}x snnTorch")
    gain = statistics.median(times["dense hidden"]) / statistics.median(times["snnframe"])
    print(f"  hidden event-driven paths: {gain:.2f}x")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories of csnn recipes with leaky neurons")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: the recipe's)")
    p.add_argument("--repeats", type=int, default=7, help="measured steps per side")
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args(argv)
    # What the bptt trainer applies on CPU. Process-wide, so all three sides get it.
    from snnframe.engine.host_memory import keep_freed_memory

    kept = keep_freed_memory()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"freed memory kept: {'yes' if kept else 'no'}"
    )
    for run_dir in args.runs:
        measure(run_dir, args.batch, args.repeats, args.warmup)


if __name__ == "__main__":
    main()
