"""Which training checkpoint folder (``checkpoint-N``) is complete, and which one to resume from.

The HF Trainer and the PPO trainer both write ``trainer_state.json`` last (after weights, optimizer, scheduler
and RNG state), so a checkpoint killed mid-save lacks it or holds it torn; both stages use these checks.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

logger = logging.getLogger(__name__)

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "adapter_model.safetensors")


def checkpoint_problem(directory: Path) -> Optional[str]:
    """Why the HF Trainer checkpoint ``directory`` cannot be resumed from, or None when it is complete.

    The Trainer writes ``trainer_state.json`` last (after weights, optimizer, scheduler and RNG state), so a
    checkpoint killed mid-save lacks it or holds it torn.
    """
    if not directory.is_dir():
        return "it is not a directory"
    if not any((directory / name).is_file() for name in _WEIGHT_FILES):
        return "it has no model weights"
    state = directory / "trainer_state.json"
    if not state.is_file():
        return "it has no trainer_state.json (the save was interrupted)"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "its trainer_state.json is torn (the save was interrupted)"
    return None


def last_complete_checkpoint(output_dir: str) -> Optional[Path]:
    """The newest complete ``checkpoint-N`` in ``output_dir``; incomplete ones are skipped with a warning."""
    root = Path(output_dir)
    found = sorted(
        (p for p in root.glob("checkpoint-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()),
        key=lambda p: int(p.name.split("-", 1)[1]), reverse=True,
    ) if root.is_dir() else []
    for candidate in found:
        problem = checkpoint_problem(candidate)
        if problem is None:
            return candidate
        logger.warning("Skipping %s: %s.", candidate, problem)
    return None


def resolve_resume_checkpoint(resume: Optional[str], output_dir: str) -> Optional[str]:
    """``--resume_from_checkpoint`` as a checkpoint path for ``Trainer.train`` (None: start fresh).

    ``last`` is the newest *complete* checkpoint in ``output_dir`` (HF's own ``last`` would pick a
    checkpoint that a kill left half-written, and then fail).

    Raises:
        ValueError: ``last`` with no complete checkpoint, or a given checkpoint that is incomplete.
    """
    if resume is None:
        return None
    if resume == "last":
        found = last_complete_checkpoint(output_dir)
        if found is None:
            raise ValueError(
                f"--resume_from_checkpoint=last: no complete checkpoint-N in {output_dir}; "
                "drop the flag to start afresh, or check --checkpoint_dir."
            )
        logger.info("Resuming from %s.", found)
        return str(found)
    problem = checkpoint_problem(Path(resume))
    if problem:
        raise ValueError(f"--resume_from_checkpoint={resume}: {problem}; use --resume_from_checkpoint=last "
                         "for the newest complete one.")
    return resume
