"""Critic-free alternatives through trl 1.16: GRPO (Shao et al. 2024) and RLOO (Ahmadian et al. 2024).

Same data (prompt rows with ``raw_prompt`` and reference ``prompt``), same reward callable and the same
output format (a HF model directory in the checkpoint dir) as the project's PPO; trl does the rest. A KL
anchor to the SFT model stays on by default (``beta > 0``): text-only reward models are easy to game.
Subtracting the reference prompt's reward is a per-prompt constant and cancels in the group baselines.
The consistency term (``consistency_weight``, ``consistency_model``) is part of ``reward_fn`` and applies here too.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

logger = logging.getLogger(__name__)


def make_trl_reward_func(reward_fn):
    """Adapt ``reward_fn(raw_prompts, prompts, reference_prompts)`` to trl's reward-function protocol."""

    def beautiful_prompt_reward(prompts, completions, raw_prompt, reference_prompt=None, **kwargs):
        del prompts, kwargs
        refs = list(reference_prompt) if reference_prompt is not None and all(reference_prompt) else None
        return reward_fn(list(raw_prompt), [c.strip() for c in completions], refs).float().tolist()

    return beautiful_prompt_reward


def build_prompt_dataset(rows: Sequence[dict]):
    """A ``datasets.Dataset`` with the instruction ``prompt`` and the columns the reward needs."""
    from datasets import Dataset

    from easynlp_bp.text.template import build_prompt

    return Dataset.from_list([
        {"prompt": build_prompt(r["raw_prompt"]), "raw_prompt": r["raw_prompt"], "reference_prompt": r.get("prompt") or ""}
        for r in rows
    ])


def train_with_trl(params, ppo, sft_dir: str, reward_fn, train_rows: Sequence[dict], eval_rows: Sequence[dict],
                   output_dir: str, resume_from: Optional[str] = None) -> dict:
    """Run trl's GRPOTrainer or RLOOTrainer (``params.rl_algorithm``) and save the policy to ``output_dir``.

    ``params`` carries ``rl_algorithm``, ``num_generations`` and ``beta`` (the app's keys); ``ppo`` is the
    :class:`PPOConfig` whose rollout settings (``max_new_tokens``, ``temperature``, ``top_k``, ``top_p``),
    ``learning_rate``, ``mini_batch_size`` (prompts × generations per device step), ``cliprange`` (trl's
    epsilon), ``total_steps``, ``checkpoint_interval`` (in optimizer steps here, trl's unit) and ``seed`` apply.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from easynlp_bp.models.causal_lm import BeautifulPromptModel

    if params.rl_algorithm == "grpo":
        from trl import GRPOConfig as Config
        from trl import GRPOTrainer as Trainer
    elif params.rl_algorithm == "rloo":
        from trl import RLOOConfig as Config
        from trl import RLOOTrainer as Trainer
    else:
        raise ValueError(f"rl_algorithm={params.rl_algorithm!r} is not a trl algorithm; use grpo or rloo.")
    if ppo.mini_batch_size % params.num_generations:
        raise ValueError(f"mini_batch_size={ppo.mini_batch_size} must be a multiple of "
                         f"num_generations={params.num_generations} (whole groups per step).")
    bp = BeautifulPromptModel.from_pretrained(sft_dir)
    config = Config(
        output_dir=output_dir, learning_rate=ppo.learning_rate, per_device_train_batch_size=ppo.mini_batch_size,
        num_generations=params.num_generations, max_completion_length=ppo.max_new_tokens,
        temperature=ppo.temperature, top_k=ppo.top_k, top_p=ppo.top_p, beta=params.beta,
        epsilon=ppo.cliprange, max_steps=ppo.total_steps, max_grad_norm=ppo.max_grad_norm or None,
        weight_decay=ppo.weight_decay, adam_beta1=ppo.adam_beta1, adam_beta2=ppo.adam_beta2,
        lr_scheduler_type="constant", logging_steps=1, save_steps=ppo.checkpoint_interval or ppo.total_steps,
        save_total_limit=2, seed=ppo.seed, report_to=["tensorboard"], bf16=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(), disable_dropout=True, dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=bp.model, reward_funcs=make_trl_reward_func(reward_fn), args=config,
        train_dataset=build_prompt_dataset(train_rows), processing_class=bp.tokenizer,
    )
    trainer.train(resume_from_checkpoint=True if resume_from == "last" else resume_from)
    save_final_trl_model(trainer, bp.tokenizer, output_dir)
    rewards = [e["reward"] for e in trainer.state.log_history if "reward" in e]
    return {"rl_algorithm": params.rl_algorithm, "global_step": trainer.state.global_step,
            "first_reward": rewards[0] if rewards else None, "last_reward": rewards[-1] if rewards else None,
            "output_dir": str(Path(output_dir))}


def save_final_trl_model(trainer, tokenizer, output_dir: str) -> None:
    """Save the trained policy and ``tokenizer`` to ``output_dir`` through a staging folder moved into place
    (:func:`easynlp_bp.models.folder_checks.staged_model_dir`), so a kill never leaves a torn model folder; trl's
    ``checkpoint-*`` and ``runs/`` beside it are left as they are. Every process calls it (the save may gather
    sharded weights); only the main one writes and moves."""
    from easynlp_bp.models.folder_checks import staged_model_dir

    is_main = trainer.is_world_process_zero()
    with staged_model_dir(output_dir, is_main_process=is_main) as staging:
        trainer.save_model(str(staging))
        if is_main:
            tokenizer.save_pretrained(str(staging))
