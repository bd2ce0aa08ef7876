#!/usr/bin/env bash
# Reproduce the shipped model: data, training, slimming, export, held-out evaluation.
# About 1.5 h on a 2-core CPU. Everything lands in data/, runs/ (ignored by git),
# weights/ and models_onnx/. Needs: pip install -e ".[cpu,train,export,eval]"
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. Synthetic biopsies: 300 for training (6 of them for validation), 12 held-out test
#    scans at seed scale from another seed.
bm-synth -o data/synth_train --count 300 --size 3000x1000 --seed 0 --val-fraction 0.02 --test-fraction 0 -q
bm-synth -o data/synth_test --count 12 --size 6000x2000 --seed 1000 --val-fraction 0 --test-fraction 1 -q

# 2. Train the compact preset (U-Net 16 + DeepLabv3-MobileNetV3-Large) on the CPU.
bm-train data/synth_train -o runs/compact --preset compact --steps 800 --val-every 400 \
    --batch-size 4 --crop 192 --seed 0 --threads 1

# 3. Ship the checkpoint kept by lowest validation density error, with float16 storage.
python -m bonemarrow.training.slim runs/compact/best_density.pt weights/bonemarrow_compact.pt --half

# 4. Export fp32 and int8 behind their parity gates.
bm-export weights/bonemarrow_compact.pt -o models_onnx/bonemarrow_compact.onnx
bm-export weights/bonemarrow_compact.pt -o models_onnx/bonemarrow_compact_int8.onnx --precision int8 \
    --calibration data/synth_train

# 5. Held-out metrics: each member and the ensemble (PyTorch, through the runtime's tiler),
#    and the shipped ONNX model through bm-run + bm-eval.
python -m bonemarrow.training.evaluate weights/bonemarrow_compact.pt data/synth_test --split test \
    -o runs/compact/test_metrics.json
bm-run data/synth_test/images -o runs/compact/test_run --quiet
bm-eval runs/compact/test_run data/synth_test/labels -o runs/compact/test_eval
