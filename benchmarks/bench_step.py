"""Training-step benchmark: snnframe's engine vs the seed's snnTorch loop, side by side.

All sides train the reference CSNN (``12C5-MP2-64C5-MP2-FC10``, Leaky beta=0.5, fast-sigmoid
slope 25, cross-entropy rate loss, Adam lr 1e-2) from the same initial weights on the same
batch: the seed's snnTorch loop, snnframe with the built-in ``leaky`` (fused numba kernels), and
snnframe with ``StepLIF`` (``step_lif.py``: the same neuron written in the engine's per-step
form), and (``--sides snnframe,layers``) the ``layers`` architecture building the same CSNN from
the seed's notation. The snnframe sides step as the ``bptt`` trainer does: a batch of more than
9,600 folded samples (``T x B``: events300 at batch 128) in pieces (``train.micro_batch =
"auto"``, docs/training.md), one optimizer step. Steps of the sides alternate, so load from
other processes hits all alike; each reported time is the median over the measured steps
(spread: min-max). Peak memory is the rise of the peak RSS (CPU; glibc pinned to mmap every
block >= 128 KiB, so RSS follows the live tensors) or of the CUDA allocator's peak during one
training step, each side in fresh subprocesses (median of ``--memory-runs``).

    python benchmarks/bench_step.py            # full: static, events T=100 and T=300
    python benchmarks/bench_step.py --quick    # fewer steps, T=300 only for memory
    python benchmarks/bench_step.py --batch 32,128 --workloads events300   # each workload at B=32 and B=128
    python benchmarks/bench_step.py --device cuda --precision bf16
    python benchmarks/bench_step.py --sides snnframe,layers --no-memory   # layers vs csnn
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # step_lif

WORKLOADS = {
    # name: (kind, batch, steps, input shape)
    "static": ("static", 128, 50, (1, 28, 28)),
    "events100": ("events", 32, 100, (2, 34, 34)),
    "events300": ("events", 32, 300, (2, 34, 34)),
}
EVENT_DENSITY = 0.02  # fraction of active pixels per 1 ms frame (N-MNIST: ~1-2 %)
BETA, SLOPE, LR = 0.5, 25.0, 1e-2


@dataclass
class Side:
    name: str
    model: nn.Module
    step: callable  # () -> None, one training step
    evaluate: callable  # () -> None, one no-grad forward


# ---- the two implementations -------------------------------------------------------------


def seed_model(input_shape):
    """The seed's snnTorch network: an nn.Sequential stepped once per time step."""
    import snntorch as snn
    from snntorch import surrogate

    grad = surrogate.fast_sigmoid(slope=SLOPE)
    c, h, w = input_shape
    for _ in range(2):
        h, w = (h - 4) // 2, (w - 4) // 2
    return nn.Sequential(
        nn.Conv2d(c, 12, 5),
        nn.MaxPool2d(2),
        snn.Leaky(beta=BETA, spike_grad=grad, init_hidden=True),
        nn.Conv2d(12, 64, 5),
        nn.MaxPool2d(2),
        snn.Leaky(beta=BETA, spike_grad=grad, init_hidden=True),
        nn.Flatten(),
        nn.Linear(64 * h * w, 10),
        snn.Leaky(beta=BETA, spike_grad=grad, init_hidden=True, output=True),
    )


def seed_side(model, x, y, static):
    import snntorch.functional as SF
    from snntorch import utils

    loss_fn = SF.ce_rate_loss()
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.999))
    steps = x.shape[0]

    def forward():
        utils.reset(model)
        spikes = []
        for t in range(steps):
            spk, _ = model(x[0] if static else x[t])
            spikes.append(spk)
        return torch.stack(spikes)

    def step():
        loss = loss_fn(forward(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def evaluate():
        with torch.no_grad():
            forward()

    return Side("snnTorch", model, step, evaluate)


def snnframe_model(input_shape, neuron="leaky", architecture="csnn"):
    from step_lif import StepLIF

    from snnframe.builtins.models.csnn import csnn
    from snnframe.builtins.models.layers import layers
    from snnframe.builtins.neurons.leaky import Leaky
    from snnframe.engine.surrogate import FastSigmoid

    class GenericStepLIF(StepLIF):
        fuse_affine = False  # the engine's generic per-step loop, not the fused LIF scan

    cls = {"leaky": Leaky, "step": StepLIF, "generic": GenericStepLIF}[neuron]

    def make():
        return cls(beta=BETA, surrogate=FastSigmoid(slope=SLOPE))

    if architecture == "layers":  # the same network from the seed's notation
        return layers(input_shape=input_shape, num_classes=10, neuron=make, spec="12C5-MP2-64C5-MP2-FC10")
    return csnn(input_shape=input_shape, num_classes=10, neuron=make)


# side name -> (snnframe neuron, architecture); step-LIF's affine charge runs on the fused LIF scan,
# step-generic forces the same neuron through the generic per-step loop (what a non-affine charge
# gets); layers builds csnn's network from the seed's notation
SIDES = {
    "snnTorch": None,
    "snnframe": ("leaky", "csnn"),
    "step-LIF": ("step", "csnn"),
    "step-generic": ("generic", "csnn"),
    "layers": ("leaky", "layers"),
}


def snnframe_side(model, x, y, precision, name="snnframe"):
    from snnframe.builtins.losses.spike_losses import ce_rate
    from snnframe.builtins.training import microbatch

    loss_fn = ce_rate()
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.999))
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    scaler = torch.amp.GradScaler(x.device.type, enabled=precision == "fp16")

    def autocast():
        return torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None)

    # the bptt trainer's step: a long batch in pieces (train.micro_batch = "auto"), one optimizer step
    batch = x.shape[1]
    size = microbatch.piece_size("auto", x, batch, x.device, microbatch.allowed("auto", loss_fn, model))

    def step():
        opt.zero_grad()
        for part, share in microbatch.pieces(batch, size):
            with autocast():
                loss = loss_fn(model(x[:, part]), y[part]) * share
            scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def evaluate():
        with torch.no_grad(), autocast():
            model(x)

    return Side(name, model, step, evaluate)


# ---- workload ------------------------------------------------------------------------------


def make_batch(workload, device, seed=0, batch=None):
    """``x [T, B, ...]`` (static: an expanded view, as the ``static`` encoder returns) and labels;
    ``batch`` replaces the workload's batch size."""
    kind, default_batch, steps, shape = WORKLOADS[workload]
    batch = batch or default_batch
    g = torch.Generator().manual_seed(seed)
    if kind == "static":
        # MNIST-like: ~20 % of pixels lit, intensities in [0.5, 1]
        lit = torch.rand(batch, *shape, generator=g) < 0.2
        img = torch.where(lit, 0.5 + 0.5 * torch.rand(batch, *shape, generator=g), 0.0).to(device)
        x = img.unsqueeze(0).expand(steps, *img.shape)
    else:
        x = (torch.rand(steps, batch, *shape, generator=g) < EVENT_DENSITY).float().to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    return x, y


def build(workload, device, which, precision="fp32", compile_model=False, batch=None):
    kind, _, _, shape = WORKLOADS[workload]
    torch.manual_seed(0)
    seed_net = seed_model(shape).to(device)
    x, y = make_batch(workload, device, batch=batch)
    if which == "snnTorch":
        return seed_side(seed_net, x, y, kind == "static")
    net = snnframe_model(shape, *SIDES[which]).to(device)
    own = dict(net.named_parameters())
    with torch.no_grad():
        for name, p in seed_net.named_parameters():  # same initial weights
            own[name].copy_(p)
    if compile_model:
        net = torch.compile(net)
    return snnframe_side(net, x, y, precision, which)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def compare(sides, what, warmup, repeats, device):
    """Alternate the sides' ``what`` (step/evaluate); per-side lists of seconds."""
    for _ in range(warmup):
        for side in sides:
            getattr(side, what)()
    times = {side.name: [] for side in sides}
    for _ in range(repeats):
        for side in sides:
            times[side.name].append(timed(getattr(side, what), device))
    return times


# ---- memory (one subprocess per side) ------------------------------------------------------


def status_bytes(field):
    """``VmRSS`` / ``VmHWM`` (peak RSS) of this process from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def pin_malloc():
    """Serve every block >= 128 KiB by mmap and unmap it when freed (glibc), for both sides.

    glibc's default threshold adapts to the program's history, which made the RSS peak of the
    same step vary by 30 % between processes; pinned, the RSS follows the live tensors.
    """
    os.environ["SNNFRAME_KEEP_FREED_MEMORY"] = "0"  # snnframe's allocator tuning: off for this
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD (setting it disables the adaptation)
        libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def memory_child(workload, which, device, precision, batch=None):
    if device.type == "cpu":
        pin_malloc()
    side = build(workload, device, which, precision, batch=batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        side.step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
        base = status_bytes("VmRSS")
        side.step()
        peak = status_bytes("VmHWM") - base
    print(json.dumps({"peak_bytes": peak}))


def peak_memory(workload, which, device, precision, batch=None):
    cmd = [
        sys.executable,
        __file__,
        "--memory-child",
        which,
        "--workloads",
        workload,
        "--device",
        str(device),
        "--precision",
        precision,
    ] + (["--batch", str(batch)] if batch else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_bytes"]


# ---- dense-FLOP floor ----------------------------------------------------------------------


def sgemm_rate(device, n=4096, repeats=5):
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = min(timed(lambda: a @ b, device) for _ in range(repeats))
    return 2 * n**3 / best


def step_flops(workload, hoisted, batch=None):
    """Multiply-add FLOPs (x2) of the convolutions and the linear layer: forward + backward.

    Backward costs 2x forward (input and weight gradients), except for the first layer, which
    needs no input gradient. With ``hoisted`` (snnframe on static input) the first conv runs on
    ``B`` samples instead of ``T * B``.
    """
    kind, default_batch, steps, (c, h, w) = WORKLOADS[workload]
    batch = batch or default_batch
    n = steps * batch
    h1, w1 = h - 4, w - 4
    conv1 = 2 * c * 25 * 12 * h1 * w1
    h2, w2 = h1 // 2 - 4, w1 // 2 - 4
    conv2 = 2 * 12 * 25 * 64 * h2 * w2
    fc = 2 * 64 * (h2 // 2) * (w2 // 2) * 10
    first = (batch if hoisted and kind == "static" else n) * conv1 * 2
    return first + n * (conv2 + fc) * 3


# ---- report --------------------------------------------------------------------------------


def fmt_mib(sizes):
    return f"{statistics.median(sizes) / 2**20:.0f} MiB ({min(sizes) / 2**20:.0f}-{max(sizes) / 2**20:.0f})"


def fmt_spread(ts):
    return f"{statistics.median(ts) * 1e3:.0f} ms ({min(ts) * 1e3:.0f}-{max(ts) * 1e3:.0f})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 warm-up + 3 measured steps per side")
    p.add_argument("--workloads", default="static,events100,events300")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7, help="measured steps per side")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16", "fp16"],
        help="autocast dtype of the snnframe side (snnTorch stays fp32, as the seed runs)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the snnframe model")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--memory-runs", type=int, default=3, help="peak-memory processes per side")
    p.add_argument("--no-eval", action="store_true", help="skip the no-grad evaluation timing")
    p.add_argument(
        "--sides",
        default="snnTorch,snnframe,step-LIF,step-generic",
        help="which implementations to run (ratios are against the first; 'layers' is snnframe's csnn "
        "built by the layers architecture from the seed's spec)",
    )
    p.add_argument(
        "--batch",
        default=None,
        help="comma-separated batch sizes, each workload run at each (default: the workload's own, "
        "static 128, events 32), e.g. 32,128",
    )
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batch.split(",")] if args.batch else [None]
    if any(b is not None and b < 1 for b in batches):
        p.error("--batch sizes must be positive")

    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    workloads = args.workloads.split(",")
    if args.memory_child:
        return memory_child(workloads[0], args.memory_child, device, args.precision, batches[0])
    warmup, repeats = (1, 3) if args.quick else (args.warmup, args.repeats)
    kept = False
    if device.type == "cpu":
        # What the bptt trainer applies on CPU. Process-wide, so both timed sides get it
        # (the memory subprocesses pin glibc instead).
        from snnframe.engine.host_memory import keep_freed_memory

        kept = keep_freed_memory()

    print(
        f"torch {torch.__version__}, device {device}"
        + (
            f" ({torch.cuda.get_device_name(device)})"
            if device.type == "cuda"
            else f", {torch.get_num_threads()} threads, freed memory kept: {'yes' if kept else 'no'}"
        )
        + f", precision {args.precision}{', compiled' if args.compile else ''}"
    )
    rate = sgemm_rate(device)
    print(f"measured SGEMM rate (4096^3, fp32): {rate / 1e9:.0f} GFLOP/s\n")

    rows = []
    for workload, size in [(w, b) for w in workloads for b in batches]:
        kind, default_batch, steps, shape = WORKLOADS[workload]
        batch = size or default_batch
        names = args.sides.split(",")
        sides = [build(workload, device, name, args.precision, args.compile, batch) for name in names]
        quick_skip = args.quick and workload == "events300"
        train = None if quick_skip else compare(sides, "step", warmup, repeats, device)
        evals = None if (args.no_eval or quick_skip) else compare(sides, "evaluate", warmup, repeats, device)
        del sides
        mem = None
        if not args.no_memory:  # fresh processes, alternating; the median of each side's runs
            runs = {name: [] for name in names}
            for _ in range(1 if args.quick else args.memory_runs):
                for which in runs:
                    runs[which].append(peak_memory(workload, which, device, args.precision, size))
            mem = runs
        rows.append((workload, batch, steps, train, evals, mem))
        print_row(workload, batch, steps, train, evals, mem, rate)
    return rows


def print_row(workload, batch, steps, train, evals, mem, rate):
    """Times and peak memory of each side; ratios against the first side (snnTorch) and, for the
    step-form LIF, against the built-in ``leaky`` (the issue's bound: <= 1.3x time, <= 1.2x memory)."""
    print(f"== {workload}: B={batch}, T={steps}")
    if train:
        names = list(train)
        base = statistics.median(train[names[0]])
        for name in names:
            t = statistics.median(train[name])
            ratio = "" if name == names[0] else f"   speed-up {base / t:.2f}x"
            print(f"  train step  {name:12} {fmt_spread(train[name])} = {batch / t:.0f} samples/s{ratio}")
        if "snnTorch" in train:
            floor_seed = step_flops(workload, False, batch) / rate
            floor_own = step_flops(workload, True, batch) / rate
            print(
                f"  dense-FLOP floor (conv+linear FLOPs / SGEMM rate): snnTorch's step {floor_seed * 1e3:.0f} ms,"
                f" snnframe's step {floor_own * 1e3:.0f} ms"
            )
        _versus_builtin(train, "step time")
    if evals:
        names = list(evals)
        base = statistics.median(evals[names[0]])
        shown = ", ".join(f"{n} {fmt_spread(evals[n])}" for n in names)
        ratios = ", ".join(f"{base / statistics.median(evals[n]):.2f}x" for n in names[1:])
        print(f"  evaluation  {shown}   speed-up {ratios}")
    if mem:
        names = list(mem)
        base = statistics.median(mem[names[0]])
        shown = ", ".join(f"{n} {fmt_mib(mem[n])}" for n in names)
        ratios = ", ".join(f"{statistics.median(mem[n]) / base:.2f}x" for n in names[1:])
        print(f"  peak memory of a step  {shown}   ratio {ratios}")
        _versus_builtin(mem, "peak memory")
    sys.stdout.flush()


def _versus_builtin(values, what):
    for name in ("step-LIF", "step-generic"):
        if "snnframe" in values and name in values:
            ratio = statistics.median(values[name]) / statistics.median(values["snnframe"])
            print(f"  {name} / built-in leaky, {what}: {ratio:.2f}x")
    if "snnframe" in values and "layers" in values:
        ratio = statistics.median(values["layers"]) / statistics.median(values["snnframe"])
        print(f"  layers (seed's spec) / csnn, {what}: {ratio:.3f}x")


if __name__ == "__main__":
    main()
