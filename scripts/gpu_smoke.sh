#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one short run (a few minutes): training with AMP on CUDA,
# export of the GPU-trained checkpoint through the parity gate, bm-run on the exported model, and
# the tests that skip without a GPU. Needs the train and export extras (and pytest).
#
#   bash scripts/gpu_smoke.sh [WORKDIR]          # BM_DEVICE=cpu runs the same flow on a CPU
set -euo pipefail
work=${1:-$(mktemp -d)}
device=${BM_DEVICE:-cuda}
mkdir -p "$work"
"${PYTHON:-python3}" - "$device" <<'PY'
import sys, torch
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    sys.exit("gpu_smoke: PyTorch sees no CUDA device (BM_DEVICE=cpu runs the flow on the CPU)")
print(f"torch {torch.__version__}, device {torch.cuda.get_device_name(0) if sys.argv[1] == 'cuda' else 'cpu'}")
PY
step() { echo "== $1"; }
fail() { echo "gpu_smoke: $1 failed:"; tr '\r' '\n' < "$2" | grep -v '^\s*$' | tail -5; exit 1; }

step "synthetic dataset"
bm-synth -o "$work/data" --count 8 --size 768x384 --seed 0 --quiet
step "bm-train on $device (AMP where CUDA)"
bm-train "$work/data" -o "$work/run" --steps 40 --batch-size 4 --crop 192 --val-every 20 --val-tile 256 \
    --device "$device" 2>"$work/train.err" | grep -E "^device|step" || fail bm-train "$work/train.err"
step "checkpoint loads on a CPU-only path (weights_only)"
"${PYTHON:-python3}" - "$work/run/last.pt" <<'PY'
import sys, torch
from bonemarrow.training.checkpoint import load_checkpoint
model, config = load_checkpoint(sys.argv[1], map_location="cpu")
devices = {p.device.type for p in model.parameters()}
assert devices == {"cpu"}, devices
print(f"loaded {sys.argv[1]}: preset {config.get('preset')}, parameters on {devices}")
PY
step "bm-export of the $device-trained checkpoint (parity gate)"
bm-export "$work/run/last.pt" -o "$work/model.onnx" --quiet 2>"$work/export.err" || fail bm-export "$work/export.err"
"${PYTHON:-python3}" -c "import json,sys; g=json.load(open(sys.argv[1])); print({k: g[k] for k in g if k in ('passed', 'precision')})" \
    "$work/model.parity.json"
step "bm-run with the exported model"
bm-run "$work/data/images" -o "$work/out" --model "$work/model.onnx" --quiet
ls "$work/out" | head -3
step "tests that need a GPU"
"${PYTHON:-python3}" -m pytest -q -p no:cacheprovider tests/benchmarks/test_bench_devices.py tests/runtime/test_rt_providers.py
echo "gpu_smoke: all passed ($work)"
