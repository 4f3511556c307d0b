"""The Triton neuron kernels against the PyTorch loops they replace (``engine/kernels/*_triton.py``).

Not collected by the main suite (the file name does not start with ``test_``): Triton decides
at import time whether ``@triton.jit`` compiles or interprets, for the whole process, so these
tests run in a process of their own (``tests/test_triton.py`` starts it):

* on CPU, under Triton's interpreter: ``TRITON_INTERPRET=1 SNNFRAME_TRITON=interpret python -m
  pytest tests/triton_kernels.py`` (CPU tensors; ~10 s);
* on a CUDA device, compiled: ``python -m pytest tests/triton_kernels.py`` (``gpu_check.sh``).

Each test runs the library's own code twice, with the Triton kernels (counted, so a silent
fallback fails the test) and with the PyTorch loop (``SNNFRAME_TRITON=0 SNNFRAME_NUMBA=0``), on
the same device. Forward results must be bitwise equal (same operations in the same order, no
FMA contraction); gradients within 1e-5 (float32: the adjoint's sums run in another order) or
1e-10 (float64). Sizes stay small (T <= 17, N <= ~400): the interpreter costs ~50 us per
operation and step.
"""

from __future__ import annotations

import contextlib
import os

import pytest
import torch

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
if INTERPRET:
    DEVICE = torch.device("cpu")
    TRITON_MODE = "interpret"
elif torch.cuda.is_available():
    DEVICE = torch.device(os.environ.get("SNNFRAME_TEST_DEVICE", "cuda"))
    TRITON_MODE = "1"
else:
    pytest.skip(
        "needs TRITON_INTERPRET=1 (CPU, set before triton is imported) or a CUDA device; tests/test_triton.py runs it",
        allow_module_level=True,
    )
pytest.importorskip("triton")

from snnframe.builtins.neurons.alif import ALIF  # noqa: E402
from snnframe.builtins.neurons.leaky import Leaky  # noqa: E402
from snnframe.builtins.neurons.plif import PLIF  # noqa: E402
from snnframe.builtins.neurons.synaptic import Synaptic  # noqa: E402
from snnframe.engine import SpikingSequential, StepNeuron, kernels  # noqa: E402
from snnframe.engine.kernels import lif_triton, plif_triton, synaptic_triton  # noqa: E402
from snnframe.engine.surrogate import ATan, FastSigmoid, Sigmoid, StraightThrough, Surrogate, Triangular  # noqa: E402

RESETS = ["subtract", "zero", "none"]
MODULES = {"lif": lif_triton, "synaptic": synaptic_triton, "plif": plif_triton}
LAUNCHERS = {
    lif_triton: ["lif_forward", "lif_backward"],
    synaptic_triton: ["synaptic_forward", "synaptic_backward"],
    plif_triton: ["plif_forward", "plif_backward"],
}
assert lif_triton.INTERPRETED == INTERPRET


class Box(Surrogate):
    """A third party's surrogate without a kernel form: its derivative is precomputed for the kernels."""

    def derivative(self, x):
        return (x.abs() < 0.25).to(x.dtype) * 2.0


SURROGATES = {
    "fast_sigmoid": FastSigmoid(slope=5.0),
    "atan": ATan(alpha=2.0),
    "sigmoid": Sigmoid(slope=4.0),
    "triangular": Triangular(),
    "straight_through": StraightThrough(),
    "precomputed": Box(),
}


@contextlib.contextmanager
def backend(name):
    """``"triton"``: the kernels (CUDA, or CPU tensors under the interpreter); ``"loop"``: the PyTorch loop."""
    saved = {k: os.environ.get(k) for k in ("SNNFRAME_TRITON", "SNNFRAME_NUMBA")}
    os.environ["SNNFRAME_TRITON"] = TRITON_MODE if name == "triton" else "0"
    os.environ["SNNFRAME_NUMBA"] = "0"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(autouse=True)
def launches(monkeypatch):
    """Count the launches of every kernel; no kernel may have failed (and fallen back) in a test."""
    counts = {}
    for module, names in LAUNCHERS.items():
        for name in names:
            original = getattr(module, name)

            def counted(*args, _original=original, _name=name, **kwargs):
                counts[_name] = counts.get(_name, 0) + 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(module, name, counted)
    yield counts
    assert not kernels.triton_failures, kernels.triton_failures


def current(shape, dtype=torch.float32, seed=0, scale=0.8, shift=0.35):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * scale + shift).to(DEVICE, dtype)


def weights(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(DEVICE)


def run(make, x, losses="both", seed=1, name="triton"):
    """Spikes, membrane, the input's gradient and every parameter gradient of ``make()`` on ``x``."""
    with backend(name):
        torch.manual_seed(0)
        neuron = make().to(DEVICE)
        xi = x.detach().clone().requires_grad_(True)
        s, m = neuron(xi, return_mem=True)
        loss = 0
        if losses in ("both", "spikes"):
            loss = loss + (s * weights(s.shape, seed).to(s.dtype)).sum()
        if losses in ("both", "mem"):
            loss = loss + (m * weights(m.shape, seed + 1).to(m.dtype)).sum()
        loss.backward()
    grads = [xi.grad] + [p.grad if p.grad is not None else torch.zeros_like(p) for p in neuron.parameters()]
    return s.detach(), m.detach(), grads


def compare(make, x, losses="both", tol=None, launches=None, kernel="lif"):
    got = run(make, x, losses)
    ref = run(make, x, losses, name="loop")
    if launches is not None:
        assert launches.get(f"{kernel}_forward", 0) >= 1 and launches.get(f"{kernel}_backward", 0) >= 1, launches
    assert got[0].dtype == ref[0].dtype and got[1].dtype == ref[1].dtype
    assert torch.equal(got[0], ref[0]), "spikes"
    assert torch.equal(got[1], ref[1]), "membrane"
    tol = tol or (1e-10 if got[1].dtype == torch.float64 else 1e-5)
    for i, (a, b) in enumerate(zip(got[2], ref[2])):
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=lambda m, i=i: f"gradient {i}: {m}")
    return got


def fires(spikes):
    rate = spikes.float().mean().item()
    assert 0.05 < rate < 0.9, f"firing rate {rate}: the test would not exercise spikes and resets"


# ---- leaky ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("surrogate, reset", [(name, RESETS[i % 3]) for i, name in enumerate(SURROGATES)], ids="-".join)
def test_leaky_gradients_every_surrogate(surrogate, reset, launches):
    """Each surrogate inline (and one precomputed by its ``derivative``); each reset twice."""
    sg = SURROGATES[surrogate]
    make = lambda: Leaky(
        beta=0.8, threshold=0.75, reset_mechanism=reset, surrogate=sg, learn_beta=True, learn_threshold=True
    )
    got = compare(make, current((17, 3, 50), seed=1), launches=launches)
    fires(got[0])


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("losses", ["spikes", "mem"])
def test_leaky_gradient_of_one_output_only(reset, losses, launches):
    make = lambda: Leaky(beta=0.8, threshold=0.75, reset_mechanism=reset, learn_beta=True, learn_threshold=True)
    compare(make, current((12, 70), seed=2), losses=losses, launches=launches)


@pytest.mark.parametrize("reset", RESETS)
def test_leaky_float64(reset, launches):
    make = lambda: Leaky(beta=0.6, threshold=0.8, reset_mechanism=reset, learn_beta=True, learn_threshold=True).double()
    compare(make, current((11, 70), torch.float64, seed=3), launches=launches)


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_leaky_half_input_is_read_as_it_is(reset, dtype, launches):
    """float16/bfloat16 input: no float32 copy, float32 state, spikes and membrane; the gradient
    comes back in the input's dtype, rounded to nearest even (the loop's float32 gradient cast by
    autograd): equal, up to one rounding step where the float32 values differ in their last bits."""
    make = lambda: Leaky(beta=0.5, threshold=1.0, reset_mechanism=reset, learn_beta=True, learn_threshold=True)
    x = current((10, 90), dtype, seed=5)
    got = compare(make, x, tol=2**-7, launches=launches)
    assert got[0].dtype == got[1].dtype == torch.float32 and got[2][0].dtype == dtype


def test_leaky_time_expanded_input(launches):
    """Static input (stride 0 along T) is read in place, in float32 and in bfloat16 (whose one step is upcast)."""
    make = lambda: Leaky(beta=0.5, threshold=0.9, learn_beta=True, learn_threshold=True)
    for dtype in (torch.float32, torch.bfloat16):
        x = (current((40,), dtype, seed=6, shift=0.6)).unsqueeze(0).expand(9, 40)
        assert x.stride(0) == 0
        got = compare(make, x, tol=1e-5 if dtype == torch.float32 else 2**-7, launches=launches)
        assert got[2][0].dtype == dtype


def test_leaky_channels_last_and_other_strides(launches):
    """Channels-last steps keep their layout (no copy); any other strides are copied into it."""
    make = lambda: Leaky(beta=0.7, threshold=0.8, learn_beta=True, learn_threshold=True)
    x = current((6, 2, 5, 4, 3), seed=7)
    cl = torch.stack([step.contiguous(memory_format=torch.channels_last) for step in x])
    assert cl[0].is_contiguous(memory_format=torch.channels_last) and not cl[0].is_contiguous()
    got = compare(make, cl, launches=launches)
    assert got[0][0].is_contiguous(memory_format=torch.channels_last)
    compare(make, x.transpose(1, 3), launches=launches)  # neither contiguous nor channels-last


def test_leaky_several_programs_and_a_masked_tail(launches, monkeypatch):
    """128 neurons per program over N = 335: three programs, the last one masked."""
    monkeypatch.setattr(lif_triton, "block_size", lambda n, device: 128)
    make = lambda: Leaky(beta=0.7, threshold=0.9, reset_mechanism="zero", learn_beta=True, learn_threshold=True)
    compare(make, current((13, 5, 67), seed=8), launches=launches)


def test_leaky_single_step_and_no_gradient(launches):
    make = lambda: Leaky(beta=0.5, threshold=0.4, learn_threshold=True)
    compare(make, current((1, 33), seed=9), launches=launches)
    x = current((7, 30), seed=10)
    outs = []
    for name in ("triton", "loop"):
        with backend(name), torch.no_grad():
            outs.append(Leaky(beta=0.5)(x, return_mem=True))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


class StepLIF(StepNeuron):
    def charge(self, x, mem):
        return 0.7 * mem + 2.0 * x


def test_affine_step_neurons_run_the_triton_scan(launches):
    compare(lambda: StepLIF(threshold=0.9, learn_threshold=True), current((9, 40), seed=11), launches=launches)


def test_bf16_autocast_network(launches):
    """A network under bfloat16 autocast (CPU autocast in the interpreter): the neuron reads the
    linear layer's bfloat16 output directly; equal to the PyTorch loop's result."""
    outs = []
    for name in ("triton", "loop"):
        with backend(name):
            torch.manual_seed(0)
            net = SpikingSequential(torch.nn.Linear(20, 30), Leaky(beta=0.6, threshold=0.3)).to(DEVICE)
            x = current((8, 4, 20), seed=12).requires_grad_(True)
            with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
                s = net(x)
            (s * weights(s.shape, 13).to(s.dtype)).sum().backward()
            outs.append((s.detach(), x.grad, net[0].weight.grad))
    assert torch.equal(outs[0][0], outs[1][0])
    for a, b in zip(outs[0][1:], outs[1][1:]):
        torch.testing.assert_close(a, b, rtol=2**-7, atol=1e-5)
    assert launches.get("lif_forward") and launches.get("lif_backward")


def test_a_failing_kernel_falls_back_to_the_loop_with_a_warning(monkeypatch):
    monkeypatch.setattr(lif_triton, "lif_forward", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no GPU")))
    x = current((5, 20), seed=14)
    with backend("triton"), pytest.warns(RuntimeWarning, match="lif_triton failed"):
        s, m = Leaky(beta=0.5)(x, return_mem=True)
    assert "lif_triton" in kernels.triton_failures
    with backend("triton"):
        assert kernels.triton("lif_triton", x) is None  # not tried again
    kernels.triton_failures.clear()
    with backend("loop"):
        ref = Leaky(beta=0.5)(x, return_mem=True)
    assert torch.equal(s, ref[0]) and torch.equal(m, ref[1])


# ---- synaptic, alif, plif ------------------------------------------------------------------------


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("surrogate", ["atan", "fast_sigmoid", "precomputed"])
def test_synaptic(reset, surrogate, launches):
    sg = SURROGATES[surrogate]
    make = lambda: Synaptic(alpha=0.6, beta=0.7, threshold=0.8, reset_mechanism=reset, surrogate=sg, **LEARN_ALL)
    got = compare(make, current((15, 2, 40), seed=20, scale=0.5, shift=0.2), launches=launches, kernel="synaptic")
    fires(got[0])


LEARN_ALL = dict(learn_alpha=True, learn_beta=True, learn_threshold=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_synaptic_other_dtypes(dtype, launches):
    make = lambda: Synaptic(alpha=0.5, beta=0.6, threshold=0.9, reset_mechanism="zero", **LEARN_ALL)
    compare(
        make,
        current((9, 60), dtype, seed=21, scale=0.5, shift=0.2),
        launches=launches,
        kernel="synaptic",
        tol=2**-7 if dtype == torch.bfloat16 else None,
    )


def test_synaptic_without_learnt_alpha_keeps_no_current(launches):
    make = lambda: Synaptic(alpha=0.5, beta=0.6, threshold=0.9, learn_beta=True)
    compare(make, current((9, 60), seed=22, scale=0.5, shift=0.2), launches=launches, kernel="synaptic")


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("surrogate", ["atan", "precomputed"])
def test_alif(reset, surrogate, launches):
    sg = SURROGATES[surrogate]
    make = lambda: ALIF(
        beta=0.8,
        threshold=0.7,
        beta_a=0.3,
        adapt_decay=0.9,
        reset_mechanism=reset,
        surrogate=sg,
        learn_beta=True,
        learn_threshold=True,
    )
    got = compare(make, current((16, 3, 30), seed=30), launches=launches)
    fires(got[0])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_alif_other_dtypes_and_no_beta_gradient(dtype, launches):
    make = lambda: ALIF(beta=0.8, threshold=0.7, beta_a=0.3, adapt_decay=0.9, learn_threshold=True)
    compare(make, current((10, 50), dtype, seed=31), launches=launches, tol=2**-7 if dtype == torch.bfloat16 else None)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_plif(reset, decay_input, detach_reset, launches):
    make = lambda: PLIF(
        init_tau=3.0,
        threshold=0.7,
        reset_mechanism=reset,
        decay_input=decay_input,
        detach_reset=detach_reset,
        surrogate=FastSigmoid(slope=5.0),
    )
    x = current((14, 2, 40), seed=40, shift=0.5 if decay_input else 0.25)
    got = compare(make, x, launches=launches, kernel="plif")
    fires(got[0])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
@pytest.mark.parametrize("surrogate", ["atan", "precomputed"])
def test_plif_other_dtypes_and_surrogates(dtype, surrogate, launches):
    make = lambda: PLIF(init_tau=2.0, threshold=0.6, surrogate=SURROGATES[surrogate])
    compare(
        make,
        current((9, 50), dtype, seed=41, shift=0.5),
        launches=launches,
        kernel="plif",
        tol=2**-7 if dtype == torch.bfloat16 else None,
    )


def test_plif_gradient_of_the_membrane_only_with_detached_reset(launches):
    """No spike gradient and a detached reset: the kernel never evaluates σ'."""
    make = lambda: PLIF(init_tau=2.0, threshold=0.6, detach_reset=True, surrogate=SURROGATES["precomputed"])
    compare(make, current((9, 50), seed=42, shift=0.5), losses="mem", launches=launches, kernel="plif")


def test_block_sizes_for_the_gpu():
    if DEVICE.type != "cuda":
        assert lif_triton.block_size(300, torch.device("cpu")) == 512  # one program in the interpreter
        return
    sms = torch.cuda.get_device_properties(DEVICE).multi_processor_count
    assert lif_triton.block_size(4096, DEVICE) == 128
    assert lif_triton.block_size(1024 * 4 * sms, DEVICE) == 1024


def test_the_engine_loads_the_modules_tested_here():
    assert kernels.load("lif_triton") is lif_triton and kernels.load("plif_triton") is plif_triton
