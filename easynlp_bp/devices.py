"""Device choice: ``auto`` picks CUDA when available, else CPU; anything else is a torch device name."""
from __future__ import annotations

import torch


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
