"""Device choice: ``auto`` picks CUDA when available, else CPU; anything else is a torch device name."""
from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; other names are passed to ``torch.device``.

    Raises:
        ValueError: the name is not a device, or names a GPU this machine or torch build does not have.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device={name} is not a device name; use auto, cpu, cuda or cuda:N.") from err
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device={name} but this machine has no usable CUDA GPU (torch {torch.__version__}); "
                             "use device=cpu or device=auto.")
        if device.index is not None and device.index >= count:
            raise ValueError(f"device={name} but this machine has {count} GPU(s) (cuda:0..cuda:{count - 1}).")
    return device


def hide_gpus(reason: str) -> None:
    """Make this process (and the processes it starts) run on CPU: EasyNLP's ``--worker_gpu=0``.

    Sets ``CUDA_VISIBLE_DEVICES=""`` before CUDA is first used, so ``torch.cuda.is_available()`` is False
    for ``auto`` devices and for the HF Trainer alike.
    """
    if torch.cuda.is_initialized():
        raise ValueError(f"{reason}: CUDA was already initialised in this process; start a fresh process.")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    logger.info("%s: running on CPU (CUDA_VISIBLE_DEVICES is now empty).", reason)
