"""Build HF ``TrainingArguments`` from resolved EasyNLP hyperparameters (shared by the SFT and RM apps)."""
from __future__ import annotations

from typing import Any


def build_training_arguments(
    output_dir: str, hp: dict, *, seed: int, bf16: str = "auto", has_eval: bool = False, **overrides: Any
):
    """``TrainingArguments`` for a run whose flags were resolved into ``hp``.

    Args:
        output_dir: ``--checkpoint_dir``; resumable ``checkpoint-N`` folders and TensorBoard logs go there.
        hp: resolved ``learning_rate``, ``epoch_num``, ``micro_batch_size``, ``gradient_accumulation_steps``,
            ``weight_decay``, ``max_grad_norm``, ``warmup_proportion``, ``logging_steps``,
            ``save_checkpoint_steps``.
        seed: ``--random_seed``.
        bf16: ``true``, ``false`` or ``auto`` (on when a CUDA GPU is used).
        has_eval: evaluate on the dev set at the end of every epoch.
        overrides: any other ``TrainingArguments`` field (e.g. ``adam_beta2``).
    """
    import torch
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    settings = dict(
        output_dir=output_dir,
        learning_rate=hp["learning_rate"],
        num_train_epochs=hp["epoch_num"],
        per_device_train_batch_size=hp["micro_batch_size"],
        per_device_eval_batch_size=hp["micro_batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation_steps"],
        weight_decay=hp["weight_decay"],
        max_grad_norm=hp["max_grad_norm"],
        warmup_steps=hp["warmup_proportion"],  # a float below 1 is a share of the steps
        lr_scheduler_type="cosine",
        logging_steps=hp["logging_steps"],
        save_steps=hp["save_checkpoint_steps"],
        save_total_limit=2,
        eval_strategy="epoch" if has_eval else "no",
        bf16=bf16 == "true" or (bf16 == "auto" and cuda),
        use_cpu=not cuda,  # also makes a torchrun launch on CPU a real gloo DDP run
        ddp_find_unused_parameters=False,
        seed=seed,
        report_to=["tensorboard"],
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
    )
    settings.update(overrides)
    return TrainingArguments(**settings)
