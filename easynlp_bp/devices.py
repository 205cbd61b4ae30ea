"""Device choice: ``auto`` picks CUDA when available, else CPU; anything else is a torch device name."""
from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; other names are passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def hide_gpus(reason: str) -> None:
    """Make this process (and the processes it starts) run on CPU: EasyNLP's ``--worker_gpu=0``.

    Sets ``CUDA_VISIBLE_DEVICES=""`` before CUDA is first used, so ``torch.cuda.is_available()`` is False
    for ``auto`` devices and for the HF Trainer alike.
    """
    if torch.cuda.is_initialized():
        raise ValueError(f"{reason}: CUDA was already initialised in this process; start a fresh process.")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    logger.info("%s: running on CPU (CUDA_VISIBLE_DEVICES is now empty).", reason)
