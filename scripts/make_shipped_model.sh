#!/usr/bin/env bash
# Reproduce the shipped model: data, training, slimming, export, held-out evaluation.
# About 1.5 h on a 2-core CPU. Everything lands in data/, runs/ (ignored by git),
# weights/ and models_onnx/. Needs: pip install -e ".[cpu,train,export,eval]"
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. Synthetic biopsies at the hospital scans' pixel scale: 300 for training (6 of them
#    validate), and 8 held-out test scans from another seed.
bm-synth -o data/synth_train --count 300 --size 3000x1000 --seed 0 --val-fraction 0.02 --test-fraction 0 -q
bm-synth -o data/synth_test --count 8 --size 3000x1000 --seed 1000 --val-fraction 0 --test-fraction 1 -q

# 2. Train the compact preset (U-Net 16 + DeepLabv3-MobileNetV3-Large) on the CPU.
bm-train data/synth_train -o runs/compact --preset compact --steps 800 --val-every 400 \
    --batch-size 4 --crop 192 --seed 0 --threads 1

# 3. Ship the checkpoint kept by lowest validation density error, with float16 storage.
python -m bonemarrow.training.slim runs/compact/best_density.pt weights/bonemarrow_compact.pt --half

# 4. Export fp32 and int8 behind their parity gates.
bm-export weights/bonemarrow_compact.pt -o models_onnx/bonemarrow_compact.onnx
bm-export weights/bonemarrow_compact.pt -o models_onnx/bonemarrow_compact_int8.onnx --precision int8 \
    --calibration data/synth_train

# 5. Held-out metrics of each member and the ensemble (PyTorch through the runtime's tiler),
#    then the shipped ONNX model on the bundled samples through bm-run + bm-eval.
python -m bonemarrow.training.evaluate weights/bonemarrow_compact.pt data/synth_test --split test \
    --threads 2 -o runs/compact/test_metrics.json
bm-run samples/ -o runs/compact/samples_run
bm-eval runs/compact/samples_run samples/truth -o runs/compact/samples_eval
