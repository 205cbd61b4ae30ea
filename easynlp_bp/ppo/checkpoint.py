"""Atomic, resumable PPO checkpoints: a HF model directory plus everything needed to continue exactly.

``checkpoint-<optimizer step>/`` holds the policy (safetensors + tokenizer, loadable by the
``beautiful_prompt`` predictor), ``value_head.safetensors``, ``optimizer.pt``, ``scheduler.pt``,
``trainer_state.json`` (steps, KL controller, running reward statistics, prompt sampler, history) and one
``rng_state_<rank>.pth`` per process. It is written under a temporary name and renamed when complete, so a
killed run never leaves a half-written ``checkpoint-*``.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Optional

import torch

from easynlp_bp.ppo.value_head import load_value_head, save_value_head

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def save_policy(trainer, directory: str | Path, model_dir: str | Path | None = None) -> None:
    """Write the policy as a HF model directory (+ tokenizer, value head) into ``directory``; main process only.

    ``model_dir``: where the model will be loaded from, for the model card's snippet, when ``directory`` is a
    temporary folder (default ``directory``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    policy = trainer.unwrapped
    policy.base.save_pretrained(directory, safe_serialization=True)
    trainer.tokenizer.save_pretrained(directory)
    save_value_head(policy, str(directory))
    (directory / "ppo_config.json").write_text(json.dumps(trainer.config.to_dict(), indent=2), encoding="utf-8")
    from easynlp_bp.models.finished_checkpoint import CheckpointCard, finalize_checkpoint
    from easynlp_bp.prompting.params import seed_generation_settings

    base = getattr(policy.base.config, "_name_or_path", "") or "the SFT checkpoint"
    finalize_checkpoint(directory, CheckpointCard(kind="ppo", base_model=base, data="PPO training prompts",
                                                  generation=seed_generation_settings(),
                                                  settings=trainer.config.to_dict()), model_dir=model_dir)


def save_final_policy(trainer, output_dir: str | Path) -> None:
    """The final save: :func:`save_policy` into a staging folder whose files then replace the model files in
    ``output_dir`` (:func:`easynlp_bp.models.folder_checks.staged_model_dir`), so a kill leaves the previous model, the
    new one, or a folder that loading refuses — never a torn one. The rest of ``output_dir`` (``checkpoint-*``,
    ``runs/``, ``metrics.jsonl``) is left as it is. Main process only."""
    from easynlp_bp.models.folder_checks import staged_model_dir

    with staged_model_dir(output_dir) as staging:
        save_policy(trainer, staging, model_dir=output_dir)


def save_checkpoint(trainer, output_dir: str | Path, extra_state: Optional[dict] = None, keep: int = 2) -> Path:
    """Save a resumable checkpoint of ``trainer`` into ``output_dir/checkpoint-<global_step>`` atomically."""
    acc = trainer.accelerator
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{trainer.global_step}"
    tmp = output_dir / f".tmp-checkpoint-{trainer.global_step}"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    torch.save(_rng_state(), tmp / f"rng_state_{acc.process_index}.pth")
    acc.wait_for_everyone()
    if acc.is_main_process:
        save_policy(trainer, tmp, model_dir=final)
        torch.save(trainer.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(trainer.scheduler.state_dict(), tmp / "scheduler.pt")
        state = {
            "global_step": trainer.global_step,
            "iteration": trainer.iteration,
            "kl_controller": trainer.kl_ctl.state_dict(),
            "running_moments": trainer.running.state_dict(),
            "world_size": acc.num_processes,
            "config": trainer.config.to_dict(),
            **(extra_state or {}),
        }
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2, default=str), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)  # the atomic step: the checkpoint appears complete or not at all
        _prune(output_dir, keep)
        logger.info("Saved checkpoint %s", final)
    acc.wait_for_everyone()
    return final


def find_last_checkpoint(output_dir: str | Path) -> Optional[Path]:
    """The complete ``checkpoint-N`` with the largest N in ``output_dir`` (None if there is none); the same
    completeness rule as the SFT and RM apps' (:func:`easynlp_bp.models.training_checkpoints.checkpoint_problem`)."""
    from easynlp_bp.models.training_checkpoints import last_complete_checkpoint

    return last_complete_checkpoint(str(output_dir))


def resolve_resume(resume_from: Optional[str], output_dir: str | Path) -> Optional[Path]:
    """``--resume_from_checkpoint``: a directory, or ``last`` for the newest one in ``output_dir``."""
    if not resume_from:
        return None
    if resume_from == "last":
        last = find_last_checkpoint(output_dir)
        if last is None:
            logger.info("--resume_from_checkpoint=last: no checkpoint in %s yet; starting fresh.", output_dir)
        return last
    path = Path(resume_from)
    if not (path / STATE_FILE).exists():
        raise FileNotFoundError(f"--resume_from_checkpoint={resume_from} is not a PPO checkpoint (no {STATE_FILE}).")
    return path


def load_checkpoint(trainer, directory: str | Path) -> dict:
    """Restore weights, optimizer, scheduler, KL controller, running statistics, counters and RNG.

    Returns the saved trainer state (the caller restores its own extras, e.g. the prompt sampler).
    """
    from transformers import AutoModelForCausalLM

    directory = Path(directory)
    state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    acc = trainer.accelerator
    if state["world_size"] != acc.num_processes:
        logger.warning("Checkpoint was written by %d processes, resuming with %d: prompt order will differ.",
                       state["world_size"], acc.num_processes)
    policy = trainer.unwrapped
    saved = AutoModelForCausalLM.from_pretrained(directory)
    # Copy in place: the reference shares the frozen trunk's tensors with the policy.
    policy.base.load_state_dict(saved.state_dict())
    if not load_value_head(policy, str(directory)):
        raise FileNotFoundError(f"{directory} has no value_head.safetensors; it is not a PPO checkpoint.")
    trainer.optimizer.load_state_dict(torch.load(directory / "optimizer.pt", map_location="cpu", weights_only=True))
    trainer.scheduler.load_state_dict(torch.load(directory / "scheduler.pt", map_location="cpu", weights_only=True))
    trainer.kl_ctl.load_state_dict(state["kl_controller"])
    trainer.running.load_state_dict(state["running_moments"])
    trainer.global_step = int(state["global_step"])
    trainer.iteration = int(state["iteration"])
    rng_path = directory / f"rng_state_{acc.process_index}.pth"
    if rng_path.exists():
        _set_rng_state(torch.load(rng_path, weights_only=True))
    else:
        logger.warning("%s missing: sampling will not continue the interrupted stream exactly.", rng_path.name)
    logger.info("Resumed from %s at optimizer step %d (β=%.5f).", directory, trainer.global_step, trainer.kl_ctl.value)
    return state


def _rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _prune(output_dir: Path, keep: int) -> None:
    found = sorted((int(m.group(1)), p) for p in output_dir.glob("checkpoint-*") if (m := CHECKPOINT_PATTERN.match(p.name)))
    for _, path in found[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)
