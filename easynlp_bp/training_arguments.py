"""HF ``TrainingArguments`` from resolved EasyNLP hyperparameters (SFT and RM apps); which checkpoint to resume is
:mod:`easynlp_bp.models.training_checkpoints`."""
from __future__ import annotations

import logging
import math
import os
from typing import Any, Optional

logger = logging.getLogger(__name__)


def fit_logging_steps(logging_steps: int, total_steps: int) -> int:
    """A logging interval that gives the loss curve at least two points in a run of ``total_steps``.

    A run shorter than ``logging_steps`` would log no loss at all (``final_train_loss`` null, a one-dot plot).
    """
    if total_steps >= 2 * logging_steps:
        return logging_steps
    fitted = max(1, total_steps // 2)
    logger.warning("--logging_steps=%d is longer than half of this run's %d optimizer steps; logging every %d "
                   "steps so the loss curve has points.", logging_steps, total_steps, fitted)
    return fitted


def final_train_loss(log_history: list[dict], train_output: Any = None) -> Optional[float]:
    """The last logged training loss, else the run's mean loss from ``Trainer.train``'s output."""
    logged = next((e["loss"] for e in reversed(log_history) if "loss" in e), None)
    if logged is None and train_output is not None:
        logged = getattr(train_output, "training_loss", None)
    return logged


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX): there, autocast to bf16 makes a training
    step of the embedded default's model ~1.4x faster (docs/benchmarks.md, main job); elsewhere bf16 is emulated
    and slower than fp32."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def build_training_arguments(
    output_dir: str, hp: dict, *, seed: int, bf16: str = "auto", has_eval: bool = False,
    n_train_examples: Optional[int] = None, **overrides: Any
):
    """``TrainingArguments`` for a run whose flags were resolved into ``hp``.

    Args:
        output_dir: ``--checkpoint_dir``; resumable ``checkpoint-N`` folders and TensorBoard logs go there.
        hp: resolved ``learning_rate``, ``epoch_num``, ``micro_batch_size``, ``gradient_accumulation_steps``,
            ``weight_decay``, ``max_grad_norm``, ``warmup_proportion``, ``logging_steps``,
            ``save_checkpoint_steps``.
        seed: ``--random_seed``.
        bf16: ``true``, ``false`` or ``auto`` (on with a CUDA GPU, or on a CPU with native bf16 arithmetic:
            :func:`cpu_has_native_bf16`). Mixed precision: the weights and optimizer stay fp32.
        has_eval: evaluate on the dev set at the end of every epoch.
        n_train_examples: training set size; with it, ``logging_steps`` is shortened for short runs
            (:func:`fit_logging_steps`).
        overrides: any other ``TrainingArguments`` field (e.g. ``adam_beta2``).
    """
    import torch
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    logging_steps = hp["logging_steps"]
    if n_train_examples is not None:
        per_step = hp["micro_batch_size"] * hp["gradient_accumulation_steps"] * int(os.environ.get("WORLD_SIZE", 1))
        total_steps = math.ceil(math.ceil(n_train_examples / per_step) * hp["epoch_num"])
        logging_steps = fit_logging_steps(logging_steps, total_steps)
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
        logging_steps=logging_steps,
        save_steps=hp["save_checkpoint_steps"],
        save_total_limit=2,
        eval_strategy="epoch" if has_eval else "no",
        bf16=bf16 == "true" or (bf16 == "auto" and (cuda or cpu_has_native_bf16())),
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
