#!/usr/bin/env bash
# The step benchmark on a CUDA GPU: snnframe vs the seed's snnTorch loop, fp32 then bf16; then the
# event-data benchmark (tonic vs snnframe epochs, frames binned on the GPU).
# Usage: benchmarks/gpu_check.sh [DEVICE]   (DEVICE: cuda, cuda:1, ...; default cuda, i.e. GPU 0
# or the first of CUDA_VISIBLE_DEVICES). PYTHON selects the interpreter. Takes 2-4 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DEVICE=${1:-cuda}

"$PYTHON" - "$DEVICE" <<'PY'
import sys, torch
device = sys.argv[1]
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device (torch %s, CUDA build %s)" % (torch.__version__, torch.version.cuda))
index = torch.device(device).index or 0
if index >= torch.cuda.device_count():
    sys.exit(f"gpu_check: {device} requested but only {torch.cuda.device_count()} device(s) visible")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(index)}")
PY

# fp32, all workloads, with peak memory (each side in its own process)
"$PYTHON" benchmarks/bench_step.py --device "$DEVICE" --warmup 3 --repeats 10
# bf16 autocast on the snnframe side (snnTorch stays fp32, as the seed runs)
"$PYTHON" benchmarks/bench_step.py --device "$DEVICE" --precision bf16 --warmup 3 --repeats 10 --no-memory \
    --workloads static,events100
# event data: tonic's pipeline vs snnframe's, frames binned on the GPU
"$PYTHON" benchmarks/bench_events.py --device "$DEVICE" --warm 3
