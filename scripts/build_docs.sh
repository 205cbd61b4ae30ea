#!/usr/bin/env bash
# Build the documentation site into site/ (one command, from a fresh clone): installs easynlp_bp with the
# `docs` extra into .venv (scripts/setup.sh, pinned by constraints.txt), then `mkdocs build --strict`.
# The CLI reference and the list of examples not run by the doc test are generated from the code at build
# time (scripts/mkdocs_hooks.py); the Python API reference from the docstrings (mkdocstrings).
# Preview while writing: .venv/bin/mkdocs serve
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${EXTRAS:-docs} bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/mkdocs build --strict "$@"
echo "Documentation built: $(pwd)/site/index.html"
