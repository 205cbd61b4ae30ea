"""The reward-model recipe: regression (MSE) on z-scored labels with the HF ``Trainer``, the paper's settings.

Labels are normalised to (label - mean) / std for training; mean and std are saved in
``reward_config.json`` so that :meth:`RewardModel.score` answers in label units.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from easynlp_bp.reward.data import collate_reward_batch
from easynlp_bp.models.training_checkpoints import resolve_resume_checkpoint
from easynlp_bp.training_arguments import build_training_arguments, final_train_loss

# The reference RM settings (DESIGN.md section 2) for pretrained backbones.
PAPER_RM = {
    "learning_rate": 1e-5, "epoch_num": 1, "micro_batch_size": 16, "sequence_length": 384,
    "weight_decay": 0.0, "warmup_proportion": 0.0, "gradient_accumulation_steps": 1, "max_grad_norm": 1.0,
    "logging_steps": 10, "save_checkpoint_steps": 500,
}
# A backbone built at random from a config (the embedded default) needs a larger learning rate and more epochs.
FROM_SCRATCH_RM = {
    **PAPER_RM, "learning_rate": 1e-3, "epoch_num": 3, "micro_batch_size": 32, "sequence_length": 128,
    "warmup_proportion": 0.05, "logging_steps": 20,
}


def is_tiny_backbone(source) -> bool:
    """Whether the backbone ``source`` (a ``ModelSource``) takes the from-scratch preset: a model built from a
    config, or one trained from such a model (the embedded default's SFT model is as small)."""
    from easynlp_bp.models.modelzoo import trained_from_config

    return source.is_from_scratch or trained_from_config(source.location)


def reward_preset(is_from_scratch: bool) -> dict:
    """The settings unset flags take: from-scratch for a backbone built from a config, else the paper's."""
    return FROM_SCRATCH_RM if is_from_scratch else PAPER_RM


def set_label_scale(rm, train_rows: list[dict], label: str, normalize_labels: bool) -> None:
    """Store the training labels' mean and std in ``rm.config`` (the RM then trains on z-scores)."""
    from easynlp_bp.reward.data import label_scaling

    rm.config.label_name = label
    if normalize_labels:
        rm.config.label_mean, rm.config.label_std = label_scaling([r[label] for r in train_rows], label)


def train_reward_model(rm, train_set, dev_set, output_dir: str, hp: dict, *, seed: int, bf16: str = "auto",
                       resume_from_checkpoint: Optional[str] = None):
    """Train ``rm`` on ``train_set``; ``output_dir`` gets the resumable checkpoints and the training curves. Save
    the final model with :func:`save_final_reward_model`.

    Call :func:`set_label_scale` before building the datasets: they normalise labels with that scale.

    Returns:
        (the HF ``Trainer``, a summary: label mean/std, steps, final training loss).
    """
    from transformers import Trainer

    training_args = build_training_arguments(output_dir, hp, seed=seed, bf16=bf16, has_eval=dev_set is not None,
                                             n_train_examples=len(train_set))
    trainer = Trainer(
        model=rm.model, args=training_args, train_dataset=train_set, eval_dataset=dev_set,
        data_collator=lambda batch: collate_reward_batch(batch, rm.tokenizer.pad_token_id),
    )
    # "last" is the newest *complete* checkpoint: HF's own choice may be one a kill left half-written
    train_output = trainer.train(resume_from_checkpoint=resolve_resume_checkpoint(resume_from_checkpoint, output_dir))
    if trainer.is_world_process_zero():
        from easynlp_bp.training_plots import plot_log_history

        plot_log_history(trainer.state.log_history, str(Path(output_dir) / "training_curves.png"))
    summary = {"label_mean": rm.config.label_mean, "label_std": rm.config.label_std,
               "global_step": trainer.state.global_step,
               "final_train_loss": final_train_loss(trainer.state.log_history, train_output)}
    return trainer, summary


def save_final_reward_model(trainer, rm, output_dir: str, finalize: Callable[[Path], None]) -> None:
    """Save the trained RM (model, tokenizer, ``reward_config.json``) to ``output_dir`` atomically: into a staging
    folder, where ``finalize(staging)`` (main process only) adds the model card and run config, then moved into
    place (:func:`easynlp_bp.models.folder_checks.staged_model_dir`), so a kill never leaves a torn model folder."""
    from easynlp_bp.models.folder_checks import staged_model_dir

    is_main = trainer.is_world_process_zero()
    with staged_model_dir(output_dir, is_main_process=is_main) as staging:
        trainer.save_model(str(staging))
        if is_main:
            rm.save_pretrained(str(staging), save_model=False)
            finalize(staging)


def reward_checkpoint_card(rm, base_model: str, is_stand_in: bool, settings: dict, metrics: dict, data: str):
    """The model card of a trained RM: its type, label name and label scale (``rm.config``)."""
    from easynlp_bp.models.finished_checkpoint import CheckpointCard

    return CheckpointCard(
        kind="reward", base_model=base_model, is_stand_in=is_stand_in, data=data, settings=settings, metrics=metrics,
        reward={"type": rm.config.reward_type, "label_name": rm.config.label_name, "label_mean": rm.config.label_mean,
                "label_std": rm.config.label_std})
