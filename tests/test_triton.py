"""The Triton neuron kernels, from the main test process.

Triton decides when ``@triton.jit`` runs (at import) whether kernels compile or run in its
interpreter, for the whole process. So the kernel tests (``tests/triton_kernels.py``) run in
processes of their own: under the interpreter on CPU tensors (always), and compiled on a CUDA
device when there is one. This process checks what needs no interpreter: the dispatch rules and
that every kernel variant compiles for a GPU (ahead of time, with the ``ptxas`` in Triton's
wheel; no GPU needed) to the arithmetic the interpreter cannot show (no FMA contraction, IEEE
division, round-to-nearest bfloat16 stores).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from snnframe.builtins.neurons.alif import ALIF
from snnframe.builtins.neurons.leaky import Leaky
from snnframe.builtins.neurons.plif import PLIF
from snnframe.builtins.neurons.synaptic import Synaptic
from snnframe.engine import kernels

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
triton = pytest.importorskip("triton")


def run_kernel_tests(env_updates, drop=()):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_updates)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TESTS / "triton_kernels.py")]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-8000:]
    summary = [line for line in out.splitlines() if re.search(r"\d+ passed", line)]
    seconds = time.perf_counter() - start
    print(f"tests/triton_kernels.py: {summary[-1] if summary else '?'} ({seconds:.1f} s with start-up)")
    assert summary and "skipped" not in summary[-1], out[-3000:]


def test_the_kernels_in_the_interpreter():
    """CPU tensors through Triton's interpreter, against the PyTorch loops (bitwise forward)."""
    run_kernel_tests({"TRITON_INTERPRET": "1", "SNNFRAME_TRITON": "interpret"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_the_kernels_compiled_on_cuda():
    run_kernel_tests({}, drop=("TRITON_INTERPRET", "SNNFRAME_TRITON"))


# ---- dispatch --------------------------------------------------------------------------------------


def test_cpu_tensors_never_reach_compiled_kernels(monkeypatch):
    x = torch.randn(4, 10)
    monkeypatch.delenv("SNNFRAME_TRITON", raising=False)
    assert kernels.triton("lif_triton", x) is None
    module = kernels.load("lif_triton")
    if module is None or module.INTERPRETED:
        pytest.skip("needs the compiled (not interpreted) Triton module")
    monkeypatch.setenv("SNNFRAME_TRITON", "interpret")  # asks for the interpreter, which this process has not
    assert kernels.triton("lif_triton", x) is None


def test_triton_switch_and_unsuitable_tensors(monkeypatch):
    monkeypatch.setenv("SNNFRAME_TRITON", "0")
    assert not kernels.triton_enabled()
    assert kernels.load("lif_triton") is None and kernels.load("synaptic_triton") is None
    monkeypatch.setenv("SNNFRAME_TRITON", "interpret")
    assert kernels.triton("lif_triton", torch.zeros(3, 0)) is None  # empty
    assert kernels.triton("lif_triton", torch.zeros(3, 2, dtype=torch.int32)) is None
    assert kernels.triton("lif_triton", torch.zeros(3, 2, device="meta")) is None


@pytest.mark.parametrize("neuron", [Leaky, Synaptic, ALIF, PLIF], ids=lambda c: c.__name__)
def test_low_precision_input_is_upcast_off_the_triton_path(neuron):
    """The built-ins take bfloat16 input as it is (for the Triton kernels); on CPU it is upcast,
    so results equal those of the float32 input and the gradient has the input's dtype."""
    x = (torch.randn(8, 3, 20, generator=torch.Generator().manual_seed(0)) + 0.5).bfloat16()
    outs = []
    for xi in (x.detach().requires_grad_(), x.float().requires_grad_()):
        s, m = neuron()(xi, return_mem=True)
        (s.sum() + m.sum()).backward()
        outs.append((s, m, xi.grad))
    assert outs[0][0].dtype == outs[0][1].dtype == torch.float32 and outs[0][2].dtype == torch.bfloat16
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert torch.equal(outs[0][2], outs[1][2].bfloat16())


# ---- ahead-of-time compilation for a GPU -------------------------------------------------------------


def _variants():
    """(kernel, pointer dtypes, constexprs, name) covering every kernel and each of its constexpr branches."""
    import triton.language as tl

    from snnframe.engine.kernels import lif_triton, plif_triton, synaptic_triton

    f32, f64 = tl.float32, tl.float64
    fwd, bwd = lif_triton.lif_forward_kernel, lif_triton.lif_backward_kernel
    lif_f = dict(BLOCK=1024, RESET=0, STORE_MEM=True, ADAPT=False, STORE_SHIFTED=False, STATE=f32)
    lif_b = dict(BLOCK=1024, RESET=0, SID=1, HAS_GS=True, HAS_GM=True, HAS_SHIFTED=False, WANT_BETA=True, WANT_THR=True)
    lif_b.update(STATE=f32, GX_BF16_RTNE=False)
    yield fwd, {}, lif_f, "lif forward fp32"
    yield fwd, {"x_ptr": "*bf16"}, {**lif_f, "RESET": 1}, "lif forward bf16 input, zero reset"
    yield fwd, {"x_ptr": "*fp16"}, {**lif_f, "RESET": 2, "STORE_MEM": False, "T": 1}, "lif forward fp16, T=1"
    yield fwd, {}, {**lif_f, "ADAPT": True, "STORE_SHIFTED": True}, "alif forward"
    f64_ptrs = {p.name: "*fp64" for p in fwd.params if p.name.endswith("_ptr")}
    yield fwd, f64_ptrs, {**lif_f, "STATE": f64}, "lif forward fp64"
    for sid in range(6):
        yield bwd, {}, {**lif_b, "SID": sid, "RESET": sid % 3}, f"lif backward surrogate {sid}"
    yield bwd, {"gx_ptr": "*bf16"}, {**lif_b, "HAS_SHIFTED": True, "HAS_GM": False}, "alif backward, bf16 grad"
    yield bwd, {"gx_ptr": "*bf16"}, {**lif_b, "GX_BF16_RTNE": True, "HAS_GS": False}, "lif backward, by-hand bf16"
    yield bwd, {}, {**lif_b, "WANT_BETA": False, "WANT_THR": False, "T": 1}, "lif backward T=1"
    syn_f = dict(BLOCK=512, RESET=0, STORE_MEM=True, STORE_SYN=True, STATE=f32)
    yield synaptic_triton.synaptic_forward_kernel, {"x_ptr": "*bf16"}, syn_f, "synaptic forward"
    syn_b = dict(BLOCK=512, RESET=1, SID=0, HAS_GS=True, HAS_GM=True, WANT_ALPHA=True, WANT_BETA=True)
    syn_b.update(WANT_THR=True, STATE=f32, GX_BF16_RTNE=False)
    yield synaptic_triton.synaptic_backward_kernel, {"gx_ptr": "*bf16"}, syn_b, "synaptic backward"
    plif_f = dict(BLOCK=256, RESET=1, DECAY_INPUT=True, STORE_H=True, STATE=f32)
    yield plif_triton.plif_forward_kernel, {}, plif_f, "plif forward"
    plif_b = dict(BLOCK=256, RESET=0, SID=5, HAS_GS=True, HAS_GH=True, DECAY_INPUT=True, DETACH_RESET=False)
    plif_b.update(WANT_K=True, STATE=f32, GX_BF16_RTNE=False)
    yield plif_triton.plif_backward_kernel, {}, plif_b, "plif backward"
    yield plif_triton.plif_backward_kernel, {}, {**plif_b, "RESET": 1, "DETACH_RESET": True}, "plif backward detached"


def _compile(kernel, pointers, constexprs, fp_fusion=False):
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature = {}
    for p in kernel.params:
        if p.is_constexpr or p.name in constexprs:
            signature[p.name] = "constexpr"
        elif p.name.endswith("_ptr"):
            signature[p.name] = pointers.get(p.name, "*fp32")
        else:
            signature[p.name] = "i32"
    source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    options = {"num_warps": 4, "enable_fp_fusion": fp_fusion}
    return triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options).asm["ptx"]


def test_every_kernel_compiles_for_a_gpu_ahead_of_time(tmp_path, monkeypatch):
    module = kernels.load("lif_triton")
    if module is None or module.INTERPRETED:
        pytest.skip("needs the compiled (not interpreted) Triton module")
    try:
        from triton.backends.nvidia.compiler import get_ptxas

        ptxas = get_ptxas(90).path
    except Exception as error:  # noqa: BLE001 - no NVIDIA backend or ptxas in this Triton
        pytest.skip(f"Triton's NVIDIA backend or its ptxas is not available: {error}")
    if not os.path.isfile(ptxas):
        pytest.skip(f"no ptxas at {ptxas}")
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))  # compile for real, leave no cache behind
    start = time.perf_counter()
    ptx = {name: _compile(kernel, ptrs, const) for kernel, ptrs, const, name in _variants()}
    print(f"{len(ptx)} kernel variants compiled for sm_90 in {time.perf_counter() - start:.1f} s")
    # no FMA contraction: β U + X is rounded twice, as the PyTorch loop does
    assert "fma.rn.f32" not in ptx["lif forward fp32"] and "mul.rn.f32" in ptx["lif forward fp32"]
    fused = _compile(*next(_variants())[:3], fp_fusion=True)
    assert "fma.rn.f32" in fused  # (what the default would do)
    # IEEE division in the surrogates (PyTorch's), not the approximate div.full
    for sid in (0, 1):
        text = ptx[f"lif backward surrogate {sid}"]
        assert "div.rn.f32" in text and "div.full" not in text and "div.approx" not in text
    # bfloat16 stores round to nearest even on the GPU (the interpreter truncates)
    assert "cvt.rn.bf16.f32" in ptx["alif backward, bf16 grad"]
    # 64-bit offsets: T * N may pass 2^31
    assert "mul.wide.s32" in ptx["lif forward fp32"]
