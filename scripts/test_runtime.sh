#!/usr/bin/env bash
# The fast CI path: a separate venv with the runtime alone (.[cpu,dev], no torch), the layering
# contracts, and every test that runs without torch: the runtime's (tests/runtime,
# tests/test_labels_metrics.py), packaging, synthetic data, the bench's pure parts. Tests that need
# torch, psd-tools or streamlit skip cleanly (pytest.importorskip at module or conftest level).
# About 0.6 GB and a few minutes, against scripts/test.sh's 6.4 GB of CUDA-built torch.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${RUNTIME_VENV:-.venv-runtime}
step() { echo "[$1/4] $2"; }

step 1 "virtual environment $VENV"
python3 -m venv "$VENV"
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip

step 2 "installing .[cpu,dev] (no torch)"
python -m pip install --progress-bar off -e ".[cpu,dev]" \
    | awk '/^(Collecting|Successfully installed)/ { print "    " $0; fflush() }'
if python -c "import torch" 2>/dev/null; then
    echo "error: torch is importable in $VENV; the runtime path must run without it" >&2
    exit 2
fi

step 3 "layering contracts (lint-imports, .importlinter)"
lint-imports --no-cache --no-logo

step 4 "pytest without torch (the runtime's tests; torch-only modules skip)"
python -m pytest "$@"
