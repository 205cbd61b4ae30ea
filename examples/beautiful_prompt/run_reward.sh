#!/usr/bin/env bash
# Train both reward models with the reference settings (bloom-1b1, 1 epoch, lr 1e-5, batch 16, max length 384),
# then report MSE / Pearson / Spearman on the dev tables.
# Usage: bash run_reward.sh GPU_IDS AES_TRAIN AES_DEV PS_TRAIN PS_DEV [OUT]
#   AES_* tables: columns prompt, aesthetic_score        (the aesthetic RM reads "{prompt}</s>")
#   PS_*  tables: columns raw_prompt, prompt, pick_score (the PickScore RM reads "Input: {raw}\nOutput: {prompt}</s>")
#   Labels are image scores (the beautiful_prompt_score app). Tables with a header line; see docs/reward_models.md.
#   e.g. bash run_reward.sh 0 rm_aes_train.jsonl rm_aes_dev.jsonl rm_ps_train.jsonl rm_ps_dev.jsonl outputs
set -euo pipefail
GPUS=${1:?GPU ids, e.g. 0 or 0,1,2,3}
AES_TRAIN=${2:?aesthetic train table}; AES_DEV=${3:?aesthetic dev table}
PS_TRAIN=${4:?pickscore train table}; PS_DEV=${5:?pickscore dev table}; OUT=${6:-outputs}
N=$(awk -F, '{print NF}' <<<"$GPUS")
COMMON=(--worker_gpu="$N" --learning_rate=1e-5 --epoch_num=1 --micro_batch_size=16 --sequence_length=384
        --weight_decay=0 --warmup_proportion=0 --save_checkpoint_steps=500 --logging_steps=10)

for KIND in aesthetic pickscore; do
  if [[ $KIND == aesthetic ]]; then TRAIN=$AES_TRAIN; DEV=$AES_DEV; else TRAIN=$PS_TRAIN; DEV=$PS_DEV; fi
  CUDA_VISIBLE_DEVICES=$GPUS easynlp --app_name=beautiful_prompt_reward --mode=train "${COMMON[@]}" \
    --tables="$TRAIN,$DEV" --checkpoint_dir="$OUT/reward_$KIND" \
    --user_defined_parameters="reward_type=$KIND pretrain_model_name_or_path=bigscience/bloom-1b1 bf16=true"
  CUDA_VISIBLE_DEVICES=${GPUS%%,*} easynlp --app_name=beautiful_prompt_reward --mode=evaluate \
    --tables="$DEV" --checkpoint_dir="$OUT/reward_$KIND"
done
# The PPO stage loads both: CombinedReward.from_pretrained("$OUT/reward_aesthetic", "$OUT/reward_pickscore").
