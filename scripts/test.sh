#!/usr/bin/env bash
# Set up a virtual environment from the project's own files, check the layering, and run every test.
# The app's browser test drives Debian's chromium (never a downloaded browser).
# Note: PyPI's torch 2.14.1 for Linux x86_64 is the CUDA build (about 4 GB of NVIDIA libraries and
# triton come with it, a 6.4 GB venv); CPU-only wheels exist only on download.pytorch.org (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "[$1/5] $2"; }

step 1 "chromium for the browser test (Debian package)"
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null \
        || echo "note: chromium could not be installed; the browser test will skip"
else
    echo "    $(command -v chromium || echo 'no apt-get: the browser test will skip without chromium')"
fi

step 2 "virtual environment .venv"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip

step 3 "installing .[cpu,train,export,eval,app,dev] (torch's CUDA build is several GB the first time)"
# pip's own "Collecting"/"Successfully installed" lines show what it is doing; its exit status still counts.
python -m pip install --progress-bar off -e ".[cpu,train,export,eval,app,dev]" \
    | awk '/^(Collecting|Successfully installed)/ { print "    " $0; fflush() }'

step 4 "layering contracts (lint-imports, .importlinter)"
lint-imports --no-cache --no-logo

step 5 "pytest"
python -m pytest "$@"
