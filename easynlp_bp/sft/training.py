"""The SFT recipe: the paper's settings (and a from-scratch preset), run with the HF ``Trainer``.

The HF ``Trainer`` gives bf16, gradient accumulation, DDP/DeepSpeed, TensorBoard, progress bars and
resumable checkpoints from a well-kept library; this module only chooses its settings.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from easynlp_bp.models.bloom_sdpa import takes_packed_rows
from easynlp_bp.sft.data import collate_for_training
from easynlp_bp.sft.packing import collate_packed
from easynlp_bp.models.training_checkpoints import resolve_resume_checkpoint
from easynlp_bp.training_arguments import build_training_arguments

# The reference SFT settings (DESIGN.md section 2): flags and filter keys the user leaves unset take these.
PAPER_SFT = {
    "learning_rate": 2e-5, "epoch_num": 4, "micro_batch_size": 16, "sequence_length": 384,
    "weight_decay": 0.0, "warmup_proportion": 0.03, "gradient_accumulation_steps": 1, "max_grad_norm": 1.0,
    "logging_steps": 10, "save_checkpoint_steps": 500,
    "min_pick_score": 18.5, "min_target_tokens": 25, "short_target_tokens": 35, "short_target_drop": 0.3,
}
# A model built at random from a config (the embedded default) needs a much larger learning rate, and its
# project-trained tokenizer makes the reference's BLOOM-token length filters meaningless. 384 tokens (the
# paper's): the longest open-vocabulary default pairs (template + 40-word raw prompt with its own modifiers, its
# copy, new modifiers) fit; packed batches (sft/packing.py) spend nothing on the room the short ones leave.
# Batches of 8: copying is learned through a sudden transition (an induction circuit) that comes after a
# number of optimizer *steps*; at equal compute 8 x 2,850 steps copy far better than 32 x 714 (measured on
# PartiPrompts, docs/consistency.md: 92 % of prompts copied whole against 2 %).
FROM_SCRATCH_SFT = {
    **PAPER_SFT, "learning_rate": 3e-3, "epoch_num": 6, "micro_batch_size": 8, "sequence_length": 384,
    "logging_steps": 50, "min_target_tokens": 0, "short_target_tokens": 0, "short_target_drop": 0.0,
}


def sft_preset(is_from_scratch: bool) -> dict:
    """The settings unset flags take: from-scratch for a model built from a config, else the paper's."""
    return FROM_SCRATCH_SFT if is_from_scratch else PAPER_SFT


def train_sft(model, tokenizer, train_set, dev_set, output_dir: str, hp: dict, *, seed: int, bf16: str = "auto",
              group_by_length: bool = False, resume_from_checkpoint: Optional[str] = None):
    """Fine-tune ``model`` on ``train_set`` (loss on target tokens only); ``output_dir`` gets the resumable
    checkpoints and the training curves. Save the final model with :func:`save_final_model`.

    Args:
        hp: resolved settings (see :data:`PAPER_SFT`).
        resume_from_checkpoint: a ``checkpoint-N`` directory, or ``"last"`` for the newest in ``output_dir``.

    Returns:
        (the HF ``Trainer`` after training — its ``state`` holds the step count and log history, the output of
        ``Trainer.train``).
    """
    from transformers import Trainer

    training_args = build_training_arguments(
        output_dir, hp, seed=seed, bf16=bf16, has_eval=dev_set is not None, n_train_examples=len(train_set),
        adam_beta1=0.9, adam_beta2=0.95,  # the reference's AdamW betas
        # each epoch still sees every pair once; only which pairs share a batch changes
        train_sampling_strategy="group_by_length" if group_by_length else "random",
    )
    # the same pairs per step either way; packed rows skip most padding (the same loss, docs/benchmarks.md)
    collate = collate_packed if takes_packed_rows(model) else collate_for_training
    trainer = Trainer(
        model=model, args=training_args, train_dataset=train_set, eval_dataset=dev_set,
        data_collator=lambda batch: collate(batch, tokenizer.pad_token_id),
    )
    # "last" is the newest *complete* checkpoint: HF's own choice may be one a kill left half-written
    train_output = trainer.train(resume_from_checkpoint=resolve_resume_checkpoint(resume_from_checkpoint, output_dir))
    if trainer.is_world_process_zero():
        from easynlp_bp.training_plots import plot_log_history

        plot_log_history(trainer.state.log_history, str(Path(output_dir) / "training_curves.png"))
    return trainer, train_output


def save_final_model(trainer, tokenizer, output_dir: str, finalize: Callable[[Path], None]) -> None:
    """Save the trained model and tokenizer to ``output_dir`` atomically: into a staging folder, where
    ``finalize(staging)`` (main process only) adds the model card and run config, then moved into place
    (:func:`easynlp_bp.models.folder_checks.staged_model_dir`), so a kill never leaves a torn model folder."""
    from easynlp_bp.models.folder_checks import staged_model_dir

    is_main = trainer.is_world_process_zero()
    with staged_model_dir(output_dir, is_main_process=is_main) as staging:
        trainer.save_model(str(staging))
        if is_main:
            tokenizer.save_pretrained(staging)
            finalize(staging)


def sft_checkpoint_card(base_model: str, is_stand_in: bool, settings: dict, metrics: dict, raw_prompts: list[str],
                        data: str):
    """The model card of an SFT model: the seed generation settings and the languages of its ``raw_prompts``."""
    from easynlp_bp.models.finished_checkpoint import CheckpointCard
    from easynlp_bp.prompting.language import training_languages
    from easynlp_bp.prompting.params import seed_generation_settings

    return CheckpointCard(kind="sft", base_model=base_model, generation=seed_generation_settings(), is_stand_in=is_stand_in,
                          settings=settings, metrics=metrics, languages=training_languages(raw_prompts), data=data)
