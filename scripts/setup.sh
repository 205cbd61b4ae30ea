#!/usr/bin/env bash
# Create .venv and install easynlp_bp with its test extras, pinned by constraints.txt (CPU torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt "torch==2.13.0"
# The test suite covers the optional parts too, so it installs their extras (EXTRAS overrides).
EXTRAS=${EXTRAS:-test,diffusion,serving,consistency,browser}
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[$EXTRAS]"
