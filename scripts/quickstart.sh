#!/usr/bin/env bash
# Set up .venv, train the embedded default (tiny BLOOM from config, generated pairs) and beautify prompts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-outputs/beautiful_prompt}
.venv/bin/easynlp --app_name=beautiful_prompt --mode=train --checkpoint_dir="$OUT"
.venv/bin/easynlp --app_name=beautiful_prompt --mode=predict --checkpoint_dir="$OUT" \
  --user_defined_parameters="seed=42 num_return_sequences=3"
