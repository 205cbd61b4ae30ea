#!/usr/bin/env bash
# SFT of bloom-1b1 with the reference settings. Usage: bash run_sft.sh GPU_IDS TRAIN DEV [OUT]
#   e.g. bash run_sft.sh 0,1,2,3 train.tsv dev.tsv outputs/sft
# TRAIN/DEV: header-less TSV with the paper's pair columns raw_prompt, prompt, pick_score, aesthetic_score
# (the schema below): the reference filter drops pick_score < 18.5 only when the table carries pick_score.
set -euo pipefail
GPUS=${1:?GPU ids, e.g. 0,1,2,3}; TRAIN=${2:?train table}; DEV=${3:?dev table}; OUT=${4:-outputs/sft}
N=$(awk -F, '{print NF}' <<<"$GPUS")
CUDA_VISIBLE_DEVICES=$GPUS easynlp --app_name=beautiful_prompt --mode=train \
  --worker_gpu="$N" \
  --tables="$TRAIN,$DEV" --input_schema=raw_prompt:str:1,prompt:str:1,pick_score:float:1,aesthetic_score:float:1 \
  --checkpoint_dir="$OUT" \
  --learning_rate=2e-5 --epoch_num=4 --micro_batch_size=16 --sequence_length=384 \
  --weight_decay=0 --warmup_proportion=0.03 --save_checkpoint_steps=500 --logging_steps=10 \
  --user_defined_parameters="pretrain_model_name_or_path=bigscience/bloom-1b1 bf16=true"
