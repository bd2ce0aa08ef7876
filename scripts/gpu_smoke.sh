#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one short run (a few minutes): training with AMP on CUDA,
# export of the GPU-trained checkpoint through the parity gate, bm-run on the exported model, and
# the tests that skip without a GPU. Needs the train and export extras (and pytest).
#
#   bash scripts/gpu_smoke.sh [WORKDIR]          # BM_DEVICE=cpu runs the same flow on a CPU
#   bash scripts/gpu_smoke.sh --ort [OUTDIR]     # onnxruntime's CUDA provider (issue 17), see ort_checks below
set -euo pipefail
py=${PYTHON:-python3}

# onnxruntime-gpu's checks, in the order that matters most if the call runs out of time; each writes
# its results under OUTDIR ($OUT on the device machine) as it finishes. Needs onnxruntime-gpu on
# PYTHONPATH (scripts/gpu_ort_setup.sh) and the project importable (installed here if it is not).
ort_checks() {
    local out=${1:-${OUT:-$(mktemp -d)}} work
    work=$(mktemp -d)
    mkdir -p "$out"
    "$py" -c "import bonemarrow.runtime" 2>/dev/null || "$py" -m pip install -q --no-deps --no-build-isolation -e . \
        || { echo "gpu_smoke: cannot install the project"; exit 1; }
    echo "== onnxruntime and the GPU"
    nvidia-smi -L || true
    "$py" - <<'PY'
import onnxruntime as ort
from bonemarrow.runtime.providers import installed_runtimes
print(f"onnxruntime {ort.__version__} from {ort.__file__}; providers {ort.get_available_providers()}; "
      f"installed {installed_runtimes()}")
PY
    echo "== CUDA-provider tests (-m gpu) and the IO-binding, settings and tiler tests"
    "$py" -m pytest -q -p no:cacheprovider -m gpu tests/runtime 2>&1 | tee "$out/gpu_tests.txt" | tail -15
    "$py" -m pytest -q -p no:cacheprovider tests/runtime/test_rt_binding.py tests/runtime/test_rt_cuda_settings.py \
        tests/runtime/test_rt_tiling_host.py tests/runtime/test_rt_providers.py 2>&1 | tail -3 | tee -a "$out/gpu_tests.txt"
    echo "== bm-export fp16 of the shipped checkpoint (its gate runs on CUDA)"
    bm-export weights/bonemarrow_compact.pt -o "$work/compact_fp16.onnx" --precision fp16 --quiet \
        2>&1 | tail -3 | tee "$out/fp16_export.txt" || true
    local models=(--model models_onnx/bonemarrow_compact.onnx)
    [ -f "$work/compact_fp16.onnx" ] && models+=(--model "$work/compact_fp16.onnx")
    echo "== onnxruntime CUDA: session.run vs IO binding vs EXHAUSTIVE vs CUDA graph; a 6000x2000 scan as bm-run runs it"
    PYTHONUNBUFFERED=1 "$py" -m bonemarrow.benchmarks.ort_cuda "${models[@]}" --machine "${MACHINE:-nvidia-h200}" \
        --out "$out" 2>&1 | grep -v '^\[ort_cuda\]' || echo "gpu_smoke: ort_cuda failed"
    echo "== bm-bench GPU rows (onnxruntime CUDA fp32/fp16 beside PyTorch CUDA; whole images on CUDA)"
    PYTHONUNBUFFERED=1 bm-bench --checkpoint weights/bonemarrow_compact.pt --model models_onnx/bonemarrow_compact.onnx \
        --precisions fp32,fp16 --sections tile,whole --tile-devices cuda --devices cuda --batches 1,4,8,16 \
        --whole-precisions fp32,fp16 --repeats 3 --whole-repeats 2 --machine "${MACHINE:-nvidia-h200}-ort" \
        --out "$out" --quiet || echo "gpu_smoke: bm-bench reported a failed section"
    echo "gpu_smoke --ort: done ($out)"
}
if [ "${1:-}" = "--ort" ]; then
    ort_checks "${2:-}"
    exit 0
fi

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
"${PYTHON:-python3}" -m pytest -q -p no:cacheprovider tests/benchmarks/test_bench_devices.py tests/runtime/test_rt_providers.py \
    tests/runtime/test_rt_cuda.py  # the CUDA-provider tests skip unless onnxruntime-gpu runs (--ort installs it)
echo "gpu_smoke: all passed ($work)"
