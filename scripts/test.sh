#!/usr/bin/env bash
# Set up a virtual environment from the project's own files and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[cpu,train,export,eval,dev]"
python -m pytest
