#!/usr/bin/env bash
# The README's main job on the embedded default (offline, CPU): set up .venv, then
#   1. SFT a tiny BLOOM built from modelzoo/tiny-bloom-bp on pairs the project generates,
#   2. train the two reward models, starting from the SFT model, on heuristic stand-in labels (not real
#      PickScore/aesthetic scores),
#   3. PPO the SFT model against the combined reward of those two models,
#   4. beautify a few prompts with the PPO model and print them (the model copies the user's words, then adds
#      modifiers; keep_input=true would guarantee the copy, docs/consistency.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-outputs}
EASYNLP=.venv/bin/easynlp
$EASYNLP --app_name=beautiful_prompt --mode=train --checkpoint_dir="$OUT/beautiful_prompt"
for KIND in aesthetic pickscore; do
  $EASYNLP --app_name=beautiful_prompt_reward --mode=train --checkpoint_dir="$OUT/reward_$KIND" \
    --user_defined_parameters="reward_type=$KIND pretrain_model_name_or_path=$OUT/beautiful_prompt"
done
$EASYNLP --app_name=beautiful_prompt_ppo --mode=train --checkpoint_dir="$OUT/beautiful_prompt_ppo" \
  --user_defined_parameters="pretrain_model_name_or_path=$OUT/beautiful_prompt reward_model_aesthetic=$OUT/reward_aesthetic reward_model_pickscore=$OUT/reward_pickscore"
$EASYNLP --app_name=beautiful_prompt --mode=predict --checkpoint_dir="$OUT/beautiful_prompt_ppo" \
  --user_defined_parameters="seed=42 num_return_sequences=3"
