#!/usr/bin/env bash
# Set up a virtual environment from the project's own files and run every test.
# The app's browser test drives Debian's chromium (never a downloaded browser).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null \
        || echo "note: chromium could not be installed; the browser test will skip"
fi
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[cpu,train,export,eval,app,dev]"
python -m pytest "$@"
