#!/usr/bin/env bash
# The GPU check: one script, under 5 minutes on one GPU. In order:
#   1. versions, the device, whether the Triton kernels are active;
#   2. the Triton kernel tests, compiled on the GPU (tests/triton_kernels.py: bitwise forward and
#      gradients against the PyTorch loop, every neuron, reset, surrogate and input dtype);
#   3. benchmarks/bench_gpu.py: correctness at full size, neuron-layer forward + backward and CSNN
#      training steps at batch 128, against snnTorch (fp32 and bf16) and SpikingJelly's multi-step
#      torch implementation (rows skipped, with a note, where a package is missing), a block sweep;
#   4. benchmarks/bench_step.py in fp32 with peak memory (snnTorch vs snnframe), if time is left;
#   5. benchmarks/bench_events.py: tonic's pipeline vs snnframe's, frames binned on the GPU, if time is left.
# Usage: benchmarks/gpu_check.sh [DEVICE]    DEVICE: cuda (default: GPU 0, or the first of
#                                            CUDA_VISIBLE_DEVICES), cuda:1, ...
#        benchmarks/gpu_check.sh --smoke     CPU only: Triton's interpreter and tiny sizes, to check the
#                                            script itself where there is no GPU (a few minutes on 2 cores)
# PYTHON selects the interpreter. SpikingJelly rows need spikingjelly (+ loguru) importable, e.g. on
# PYTHONPATH. The exit status is 1 if a correctness check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DEVICE=${1:-cuda}
LIMIT=285 # seconds for the whole script; each stage gets what is left
status=0

left() {
    local s=$((LIMIT - SECONDS))
    echo $((s > 1 ? s : 1))
}

if [ "$DEVICE" = "--smoke" ]; then
    echo "== gpu_check --smoke: CPU, Triton's interpreter (no GPU numbers)"
    TRITON_INTERPRET=1 SNNFRAME_TRITON=interpret "$PYTHON" -m pytest -q -p no:cacheprovider tests/triton_kernels.py || status=1
    "$PYTHON" benchmarks/bench_gpu.py --smoke || status=1
    "$PYTHON" benchmarks/bench_step.py --device cpu --quick --no-memory --no-eval --workloads static \
        --sides snnTorch,snnframe || status=1
    echo "gpu_check --smoke: $SECONDS s, status $status"
    exit $status
fi

# 1. the device
"$PYTHON" - "$DEVICE" <<'PY' || exit 1
import sys, torch
device = sys.argv[1]
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device (torch %s, CUDA build %s)" % (torch.__version__, torch.version.cuda))
index = torch.device(device).index or 0
if index >= torch.cuda.device_count():
    sys.exit(f"gpu_check: {device} requested but only {torch.cuda.device_count()} device(s) visible")
from snnframe.engine import kernels
x = torch.zeros(2, 2, device=device)
try:
    import triton
    version = triton.__version__
except Exception as error:  # noqa: BLE001
    version = f"missing ({type(error).__name__})"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(index)}, triton {version}; "
      f"Triton kernels active: {kernels.triton('lif_triton', x) is not None}")
PY

# 2. the kernel tests, compiled (the first launch of each kernel variant compiles it: ~0.5 s each)
echo "== tests/triton_kernels.py on $DEVICE"
SNNFRAME_TEST_DEVICE=$DEVICE timeout "$(left)" "$PYTHON" -m pytest -q -p no:cacheprovider tests/triton_kernels.py ||
    status=1

# 3. correctness at full size, neuron layers, block sweep, CSNN training steps
timeout "$(left)" "$PYTHON" benchmarks/bench_gpu.py --device "$DEVICE" --budget $(($(left) - 60)) || status=1

# 4. the step benchmark with peak memory, fp32 (each side's memory in its own process)
if [ "$(left)" -gt 50 ]; then
    timeout "$(left)" "$PYTHON" benchmarks/bench_step.py --device "$DEVICE" --warmup 2 --repeats 5 --memory-runs 1 \
        --no-eval --workloads static,events100 --sides snnTorch,snnframe || echo "bench_step: stopped ($?)"
else
    echo "bench_step: skipped ($(left) s left)"
fi
# 5. event data: tonic's pipeline vs snnframe's epochs, frames binned on the GPU
if [ "$(left)" -gt 40 ]; then
    timeout "$(left)" "$PYTHON" benchmarks/bench_events.py --device "$DEVICE" --warm 3 || echo "bench_events: stopped ($?)"
else
    echo "bench_events: skipped ($(left) s left)"
fi
echo "gpu_check: $SECONDS s, status $status (1: a correctness check failed)"
exit $status
