"""GPU check of snnframe's Triton neuron kernels: correctness at full size, then speed, side by side.

    python benchmarks/bench_gpu.py                 # CUDA (what benchmarks/gpu_check.sh runs), ~1.5 min
    python benchmarks/bench_gpu.py --smoke         # CPU, Triton's interpreter, tiny sizes: exercises the code

Sections (each prints as it goes; later ones are skipped, with a note, past ``--budget`` seconds):

1. **correctness** on the device, at the size of the CSNN's first layer: the Triton kernels
   against the PyTorch loop (``SNNFRAME_TRITON=0``) for leaky (3 resets, float32 and bfloat16
   input), synaptic, alif and plif: spike mismatches (expected 0), the largest membrane difference
   in ulps (expected 0: kernels launch without FMA contraction) and the largest gradient error
   relative to the largest gradient. What the interpreter cannot check: FMA contraction, the
   GPU's division, exp and bfloat16 rounding. A failure makes the exit status 1.
2. **neuron layers**, forward + backward, median over repetitions: snnframe-triton (fp32, bf16
   input), snnframe's PyTorch loop, snnTorch's ``Leaky`` stepped in Python (fp32, bf16) and
   SpikingJelly's multi-step ``LIFNode`` on its torch implementation (fp32, bf16); speed-ups
   against snnTorch at fp32 and at the same precision.
3. **block sweep**: neurons per program x warps for the Triton LIF kernels on the first
   workload (to tune ``lif_triton.block_size``), with the heuristic's choice.
4. **training steps** of the reference CSNN at batch 128 (static T=50, events T=100): snnframe,
   snnframe with the PyTorch loop, the seed's snnTorch loop and SpikingJelly multi-step, in fp32
   and under bf16 autocast (all sides); speed-ups against snnTorch.

SpikingJelly rows need ``spikingjelly`` (and ``loguru``, for 2.0) importable; both are pure
Python, so a copy on ``PYTHONPATH`` works on a machine without network. Missing packages skip
their rows with a note. SpikingJelly 2.0 picks its CUDA implementation from
``SJ_LIF_CUDA_IMPLEMENTATION`` at import; this script sets it to ``torch`` (the multi-step
PyTorch path) unless it is set already. SpikingJelly spikes on ``h >= v_th`` and resets on the
same step: compare its speed, not its outputs.
"""

from __future__ import annotations

import os
import sys

SMOKE = "--smoke" in sys.argv
if SMOKE:  # before triton is imported: @triton.jit reads it then
    os.environ.setdefault("TRITON_INTERPRET", "1")
    os.environ["SNNFRAME_TRITON"] = "interpret"
os.environ.setdefault("SJ_LIF_CUDA_IMPLEMENTATION", "torch")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib.metadata  # noqa: E402
import inspect  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_step

from snnframe.builtins.neurons.alif import ALIF  # noqa: E402
from snnframe.builtins.neurons.leaky import Leaky  # noqa: E402
from snnframe.builtins.neurons.plif import PLIF  # noqa: E402
from snnframe.builtins.neurons.synaptic import Synaptic  # noqa: E402
from snnframe.engine import kernels  # noqa: E402
from snnframe.engine.surrogate import ATan  # noqa: E402

BETA, THRESHOLD, ALPHA = 0.5, 1.0, 2.0
TRITON_ON = "interpret" if SMOKE else "1"
START = time.perf_counter()
FAILED = []


def elapsed():
    return time.perf_counter() - START


@contextlib.contextmanager
def snnframe_backend(name):
    """``"triton"``: the Triton kernels; ``"loop"``: the PyTorch loop (what CUDA ran before)."""
    saved = os.environ.get("SNNFRAME_TRITON")
    os.environ["SNNFRAME_TRITON"] = TRITON_ON if name == "triton" else "0"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("SNNFRAME_TRITON", None)
        else:
            os.environ["SNNFRAME_TRITON"] = saved


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn, device, warmup, reps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def versions():
    import triton

    out = [f"torch {torch.__version__}", f"triton {triton.__version__}"]
    for name in ("snntorch", "spikingjelly"):
        try:
            module = __import__(name)
        except Exception as error:  # noqa: BLE001
            out.append(f"{name} missing ({type(error).__name__})")
            continue
        try:
            out.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:  # importable without metadata (a copy on PYTHONPATH)
            out.append(f"{name} {getattr(module, '__version__', '(version unknown)')}")
    return ", ".join(out)


# ---- 1. correctness -------------------------------------------------------------------------------


def run_neuron(make, x, w, backend):
    with snnframe_backend(backend):
        torch.manual_seed(0)
        neuron = make().to(x.device)
        xi = x.detach().clone().requires_grad_(True)
        s, m = neuron(xi, return_mem=True)
        (s * w + m * w.flip(0)).sum().backward()
    grads = [xi.grad] + [p.grad for p in neuron.parameters()]
    return s.detach(), m.detach(), grads


def check(device, steps, n):
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(steps, n, device=device, generator=g) * 0.8 + 0.3
    w = torch.randn(steps, n, device=device, generator=g)
    cases = [
        (
            f"leaky {r}",
            lambda r=r: Leaky(beta=0.8, threshold=0.9, reset_mechanism=r, learn_beta=True, learn_threshold=True),
        )
        for r in ("subtract", "zero", "none")
    ]
    cases += [
        ("synaptic", lambda: Synaptic(alpha=0.6, beta=0.7, learn_alpha=True, learn_beta=True, learn_threshold=True)),
        ("alif", lambda: ALIF(beta=0.8, threshold=0.9, learn_beta=True, learn_threshold=True)),
        ("plif", lambda: PLIF(init_tau=2.0, threshold=0.6)),
    ]
    eps = torch.finfo(torch.float32).eps
    print(f"== correctness on {device}: Triton kernels vs the PyTorch loop, T={steps} N={n}")
    for name, make in cases:
        for dtype in (torch.float32, torch.bfloat16) if name.startswith("leaky") else (torch.float32,):
            xi = x.to(dtype)
            got = run_neuron(make, xi, w, "triton")
            ref = run_neuron(make, xi, w, "loop")
            mismatches = int((got[0] != ref[0]).sum())
            ulps = ((got[1] - ref[1]).abs() / (eps * ref[1].abs().clamp_min(1e-30))).max().item()
            errors = [
                ((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-30)).item()
                for a, b in zip(got[2], ref[2])
            ]
            limit = 1e-4 if dtype == torch.float32 else 2**-7
            ok = mismatches == 0 and ulps == 0 and max(errors) <= limit
            if not ok:
                FAILED.append(f"{name} {dtype}")
            what = "x, params" if len(errors) > 1 else "x"
            print(
                f"  {'ok  ' if ok else 'FAIL'} {name:15s} {str(dtype)[6:]:9s} spike mismatches {mismatches}/"
                f"{got[0].numel()}, max |Δmem| {ulps:.1f} ulp, max grad error {max(errors):.1e} ({what})"
            )
    active = kernels.triton("lif_triton", x) is not None
    print(f"  Triton path active: {active}; kernel failures: {kernels.triton_failures or 'none'}")
    if not active or kernels.triton_failures:
        FAILED.append("Triton path not active")


# ---- 2. neuron layers -------------------------------------------------------------------------------


def snnframe_layer(backend):
    neuron = Leaky(beta=BETA, threshold=THRESHOLD, surrogate=ATan(alpha=ALPHA))

    def step(x):
        with snnframe_backend(backend):
            return neuron(x)

    return step


def snntorch_layer():
    import snntorch as snn
    from snntorch import surrogate

    lif = snn.Leaky(beta=BETA, threshold=THRESHOLD, spike_grad=surrogate.atan(alpha=ALPHA))

    def step(x):
        mem = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            spk, mem = lif(x[t], mem)
            out.append(spk)
        return torch.stack(out)

    return step


def sj_lif(**extra):
    """SpikingJelly's multi-step LIF: τ=2 without input decay (β = 0.5), soft reset, detached reset."""
    from spikingjelly.activation_based import neuron, surrogate

    kw = dict(tau=2.0, decay_input=False, v_threshold=THRESHOLD, v_reset=None, detach_reset=True, step_mode="m")
    kw.update(surrogate_function=surrogate.ATan(alpha=ALPHA), **extra)
    if "backend" in inspect.signature(neuron.LIFNode.__init__).parameters:  # GitHub API: backend="torch"
        kw["backend"] = "torch"
    return neuron.LIFNode(**kw)


def sj_implementation():
    from spikingjelly.activation_based import neuron

    if "backend" in inspect.signature(neuron.LIFNode.__init__).parameters:
        return "backend='torch'"
    return f"SJ_LIF_CUDA_IMPLEMENTATION={os.environ.get('SJ_LIF_CUDA_IMPLEMENTATION')}"


def spikingjelly_layer():
    from spikingjelly.activation_based import functional

    lif = sj_lif()

    def step(x):
        functional.reset_net(lif)
        return lif(x)

    return step


def optional(name, build, notes):
    try:
        return build()
    except Exception as error:  # noqa: BLE001 - a missing or incompatible package: skip its rows
        notes.append(f"{name} rows skipped: {type(error).__name__}: {error}"[:200])
        return None


def time_neurons(device, workloads, warmup, reps, budget):
    print("\n== neuron layers: forward + backward (loss = sum(spikes * w)), median ms; speed-up vs snnTorch")
    notes = []
    sides = {
        "snnframe-triton": snnframe_layer("triton"),
        "snnframe-loop": snnframe_layer("loop"),
        "snntorch": optional("snnTorch", snntorch_layer, notes),
        "spikingjelly-torch": optional("SpikingJelly", spikingjelly_layer, notes),
    }
    rows = [
        ("snnframe-triton", torch.float32),
        ("snnframe-triton", torch.bfloat16),
        ("snnframe-loop", torch.float32),
        ("snntorch", torch.float32),
        ("snntorch", torch.bfloat16),
        ("spikingjelly-torch", torch.float32),
        ("spikingjelly-torch", torch.bfloat16),
    ]
    if sides["spikingjelly-torch"] is not None:
        notes.append(f"SpikingJelly runs {sj_implementation()}")
    for note in notes:
        print(f"  note: {note}")
    for name, steps, n in workloads:
        if elapsed() > budget:
            print(f"  {name}: skipped (past the {budget:.0f} s budget)")
            continue
        g = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(steps, n, device=device, generator=g) * 0.8 + 0.3
        w = torch.randn(steps, n, device=device, generator=g)
        print(f"  {name}: T={steps} N={n}")
        times = {}
        for side, dtype in rows:
            step = sides[side]
            if step is None:
                continue
            xi, wi = x.to(dtype), w.to(dtype)

            def fwd_bwd(step=step, xi=xi, wi=wi):
                a = xi.detach().requires_grad_(True)
                (step(a) * wi).sum().backward()

            try:
                times[(side, dtype)] = median_ms(fwd_bwd, device, warmup, reps)
            except Exception as error:  # noqa: BLE001
                print(f"    {side:20s} {str(dtype)[6:]:9s} failed: {type(error).__name__}: {error}"[:200])
        ref32 = times.get(("snntorch", torch.float32))
        for (side, dtype), ms in times.items():
            same = times.get(("snntorch", dtype))
            vs32 = f"x{ref32 / ms:6.2f} vs snnTorch fp32" if ref32 else ""
            vs = f"   x{same / ms:6.2f} vs snnTorch {str(dtype)[6:]}" if same and dtype != torch.float32 else ""
            print(f"    {side:20s} {str(dtype)[6:]:9s} {ms:9.3f} ms  {vs32}{vs}")


# ---- 3. block sweep ---------------------------------------------------------------------------------


def block_sweep(device, steps, n, warmup, reps):
    from snnframe.engine.kernels import lif as lif_kernels
    from snnframe.engine.kernels import lif_triton

    print(f"\n== block sweep (Triton LIF forward + backward kernels, T={steps} N={n}), median ms")
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(steps, n, device=device, generator=g) * 0.8 + 0.3
    gs = torch.randn(steps, n, device=device, generator=g)
    spikes, mem, grad = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    beta, thr = torch.tensor(BETA, device=device), torch.tensor(THRESHOLD, device=device)
    sid, p1, p2 = lif_kernels.surrogate_code(ATan(alpha=ALPHA))
    consts = lif_kernels.constants(device, torch.float32, (p1, p2))
    zeros = lif_kernels.constants(device, torch.float32, (0.0, 0.0))

    def run(bs, warps):
        lif_triton.lif_forward(x, spikes, mem, None, beta, thr, zeros, 0, False, block=bs, num_warps=warps)
        lif_triton.lif_backward(
            mem, None, gs, None, None, grad, beta, thr, consts, 0, sid, True, True, block=bs, num_warps=warps
        )

    results = {}
    for bs in (128, 256, 512, 1024):  # each pair compiles both kernels once (~1 s)
        for warps in (2, 4, 8):
            if bs < 32 * warps:  # fewer neurons than threads
                continue
            try:
                results[(bs, warps)] = median_ms(lambda bs=bs, warps=warps: run(bs, warps), device, warmup, reps)
            except Exception as error:  # noqa: BLE001
                print(f"  BLOCK={bs} warps={warps} failed: {type(error).__name__}: {error}"[:160])
    for (bs, warps), ms in sorted(results.items()):
        print(f"  BLOCK={bs:5d} warps={warps}: {ms:8.3f} ms")
    if results:
        best = min(results, key=results.get)
        chosen = (lif_triton.block_size(n, device), lif_triton.NUM_WARPS)
        shown = f"{results[chosen]:.3f} ms" if chosen in results else "not measured"
        print(
            f"  best BLOCK={best[0]} warps={best[1]} ({results[best]:.3f} ms); "
            f"the heuristic's BLOCK={chosen[0]} warps={chosen[1]}: {shown}"
        )


# ---- 4. training steps --------------------------------------------------------------------------------


def make_batch(kind, batch, steps, shape, device):
    g = torch.Generator().manual_seed(0)
    if kind == "static":
        lit = torch.rand(batch, *shape, generator=g) < 0.2
        img = torch.where(lit, 0.5 + 0.5 * torch.rand(batch, *shape, generator=g), 0.0).to(device)
        x = img.unsqueeze(0).expand(steps, *img.shape)
    else:
        x = (torch.rand(steps, batch, *shape, generator=g) < 0.02).float().to(device)
    return x, torch.randint(0, 10, (batch,), generator=g).to(device)


def autocast(device, precision):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def spikingjelly_csnn(shape, device, precision, x, y):
    from spikingjelly.activation_based import functional, layer

    c, h, w = shape
    for _ in range(2):
        h, w = (h - 4) // 2, (w - 4) // 2
    net = nn.Sequential(
        layer.Conv2d(c, 12, 5),
        layer.MaxPool2d(2),
        sj_lif(),
        layer.Conv2d(12, 64, 5),
        layer.MaxPool2d(2),
        sj_lif(),
        layer.Flatten(),
        layer.Linear(64 * h * w, 10),
        sj_lif(),
    ).to(device)
    functional.set_step_mode(net, "m")
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    steps = x.shape[0]

    def step():
        functional.reset_net(net)
        with autocast(device, precision):
            out = net(x)
            loss = F.cross_entropy(out.flatten(0, 1).float(), y.repeat(steps))  # a cross-entropy per step
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def training_steps(device, workloads, warmup, reps, budget):
    import bench_step

    print("\n== training steps of the reference CSNN, median ms (both precisions on every side: bf16 = autocast)")
    notes = []
    for kind, batch, steps, shape in workloads:
        for precision in ("fp32", "bf16"):
            if elapsed() > budget:
                print(f"  {kind} B={batch} T={steps} {precision}: skipped (past the {budget:.0f} s budget)")
                continue
            x, y = make_batch(kind, batch, steps, shape, device)
            torch.manual_seed(0)
            sides = {}
            seed = bench_step.seed_side(bench_step.seed_model(shape).to(device), x, y, kind == "static")

            def seed_step(seed=seed, precision=precision):
                with autocast(device, precision):
                    seed.step()

            sides["snntorch (seed)"] = seed_step
            for label, backend in (("snnframe", "triton"), ("snnframe-loop", "loop")):
                side = bench_step.snnframe_side(bench_step.snnframe_model(shape).to(device), x, y, precision)

                def own_step(side=side, backend=backend):
                    with snnframe_backend(backend):
                        side.step()

                sides[label] = own_step
            build_sj = lambda shape=shape, precision=precision, x=x, y=y: spikingjelly_csnn(
                shape, device, precision, x, y
            )
            sj = optional("SpikingJelly", build_sj, notes)
            if sj is not None:
                sides["spikingjelly-torch"] = sj
            for _ in range(warmup):
                for step in sides.values():
                    step()
            times = {name: [] for name in sides}
            for _ in range(reps):  # alternate the sides
                for name, step in sides.items():
                    sync(device)
                    t0 = time.perf_counter()
                    step()
                    sync(device)
                    times[name].append((time.perf_counter() - t0) * 1e3)
            base = statistics.median(times["snntorch (seed)"])
            print(f"  {kind} B={batch} T={steps} {precision}:")
            for name, ts in times.items():
                ms = statistics.median(ts)
                spread = f"({min(ts):.1f}-{max(ts):.1f})"
                print(f"    {name:20s} {ms:9.1f} ms {spread:15s} x{base / ms:6.2f} vs snnTorch {precision}")
    for note in dict.fromkeys(notes):
        print(f"  note: {note}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="CPU, Triton's interpreter, tiny sizes")
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget", type=float, default=170.0, help="seconds; later sections are skipped past it")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--no-steps", action="store_true", help="skip the CSNN training steps")
    args = p.parse_args(argv)
    device = torch.device("cpu" if args.smoke else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_gpu: no CUDA device (use --smoke on CPU)")
    print(versions() + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ", CPU (smoke)"))
    if args.smoke:
        warmup, reps = 1, 2
        check(device, 8, 300)
        neuron_workloads = [("smoke", 6, 256)]
        sweep = (5, 256)
        step_workloads = [("static", 2, 4, (1, 28, 28)), ("events", 2, 4, (2, 34, 34))]
    else:
        warmup, reps = 3, args.reps
        check(device, 50, 128 * 12 * 12 * 12)
        neuron_workloads = [
            ("csnn static layer 1, B=128", 50, 128 * 12 * 12 * 12),
            ("csnn static layer 2, B=128", 50, 128 * 64 * 4 * 4),
            ("csnn events layer 1, B=128", 100, 128 * 12 * 15 * 15),
        ]
        sweep = (50, 128 * 12 * 12 * 12)
        step_workloads = [("static", 128, 50, (1, 28, 28)), ("events", 128, 100, (2, 34, 34))]
    time_neurons(device, neuron_workloads, warmup, reps, args.budget)
    if elapsed() < args.budget:
        block_sweep(device, *sweep, warmup, max(3, reps // 2))
    if not args.no_steps:
        training_steps(device, step_workloads, 1 if args.smoke else 2, 2 if args.smoke else 5, args.budget)
    print(f"\nbench_gpu: {elapsed():.0f} s; correctness {'FAILED: ' + ', '.join(FAILED) if FAILED else 'ok'}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
