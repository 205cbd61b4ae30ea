#!/usr/bin/env bash
# PPO of the bloom-1b1 SFT model with the reference settings (paper / trlx config). Usage:
#   bash run_ppo.sh GPU_IDS SFT_DIR RM_AESTHETIC_DIR RM_PICKSCORE_DIR TRAIN DEV [OUT]
#   e.g. bash run_ppo.sh 0,1,2,3 outputs/sft outputs/rm_aes outputs/rm_ps ppo_train.tsv ppo_dev.tsv outputs/ppo
# TRAIN/DEV: raw_prompt and reference prompt columns (40k training prompts, 500 held out in the paper).
# total_steps counts optimizer steps (trlx's unit): 64 rollouts / batch 4 x 4 epochs = 64 per iteration.
# Resume a killed run by adding --resume_from_checkpoint=last.
set -euo pipefail
GPUS=${1:?GPU ids, e.g. 0,1,2,3}; SFT=${2:?SFT model dir}; RM_AES=${3:?aesthetic RM dir}
RM_PS=${4:?PickScore RM dir}; TRAIN=${5:?train prompts}; DEV=${6:?dev prompts}; OUT=${7:-outputs/ppo}
N=$(awk -F, '{print NF}' <<<"$GPUS")
CUDA_VISIBLE_DEVICES=$GPUS easynlp --app_name=beautiful_prompt_ppo --mode=train \
  --worker_gpu="$N" \
  --tables="$TRAIN,$DEV" --input_schema=raw_prompt:str:1,prompt:str:1 \
  --checkpoint_dir="$OUT" \
  --learning_rate=5e-6 --max_grad_norm=1.0 --weight_decay=1e-6 --random_seed=1000 \
  --user_defined_parameters="pretrain_model_name_or_path=$SFT \
    reward_model_aesthetic=$RM_AES reward_model_pickscore=$RM_PS alpha=0.7 delta_reward=true \
    total_steps=5000 num_rollouts=64 chunk_size=16 ppo_epochs=4 mini_batch_size=4 num_layers_unfrozen=8 \
    init_kl_coef=0.05 kl_target=6 kl_horizon=10000 gamma=1 lam=0.95 cliprange=0.2 cliprange_value=0.2 \
    vf_coef=0.5 scale_reward=running cliprange_reward=10 max_new_tokens=256 top_k=0 top_p=1.0 temperature=1.0 \
    eval_interval=10 eval_size=500 checkpoint_interval=10"

# Held-out evaluation of the result (mean reward, reference-prompt reward, KL to the SFT model):
CUDA_VISIBLE_DEVICES=${GPUS%%,*} easynlp --app_name=beautiful_prompt_ppo --mode=evaluate \
  --tables="$DEV" --input_schema=raw_prompt:str:1,prompt:str:1 --checkpoint_dir="$OUT" \
  --user_defined_parameters="pretrain_model_name_or_path=$SFT reward_model_aesthetic=$RM_AES \
    reward_model_pickscore=$RM_PS max_new_tokens=256"

# Critic-free alternatives through trl (same reward, data and output format; KL anchor beta > 0):
#   ... --user_defined_parameters="rl_algorithm=grpo num_generations=8 beta=0.04 mini_batch_size=16 ..."
