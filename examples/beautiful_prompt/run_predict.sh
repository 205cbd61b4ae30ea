#!/usr/bin/env bash
# Beautify a TSV of raw prompts. Usage: bash run_predict.sh GPU_ID MODEL_DIR INPUT.tsv OUTPUT.tsv
set -euo pipefail
GPU=${1:?GPU id}; MODEL=${2:?model dir or hub id}; IN=${3:?input tsv}; OUT=${4:?output tsv}
CUDA_VISIBLE_DEVICES=$GPU easynlp --app_name=beautiful_prompt --mode=predict \
  --checkpoint_dir="$MODEL" --tables="$IN" --input_schema=raw_prompt:str:1 \
  --outputs="$OUT" --output_schema=predictions,beams --append_cols=raw_prompt \
  --user_defined_parameters="num_return_sequences=5 batch_size=32 seed=42"
