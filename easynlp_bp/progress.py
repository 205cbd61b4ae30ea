"""Progress bars (tqdm, with rate and ETA) for long loops: PPO, batch predict, evaluation.

Bars go to stderr and are off when stderr is not a terminal (logs stay clean); ``EASYNLP_BP_PROGRESS=1``
forces them on, ``=0`` off.
"""
from __future__ import annotations

import os
import sys
from typing import Optional


def progress_bar(total: Optional[int], desc: str, unit: str, initial: int = 0, enabled: Optional[bool] = None):
    """A ``tqdm`` bar on stderr; ``enabled=None`` follows ``EASYNLP_BP_PROGRESS``, else whether stderr is a TTY.

    Example:
        >>> with progress_bar(100, "PPO", "step") as bar:
        ...     bar.update(4)
    """
    from tqdm.auto import tqdm

    from easynlp_bp.options import parse_boolean

    if enabled is None:
        forced = os.environ.get("EASYNLP_BP_PROGRESS")
        enabled = None if forced is None else parse_boolean(forced) is not False  # any other text: on
    disable = None if enabled is None else not enabled  # tqdm: None = off when not a TTY
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=sys.stderr, disable=disable,
                dynamic_ncols=True, mininterval=0.5)


def progress_bar_over(items, desc: str, unit: str):
    """Iterate ``items`` with a :func:`progress_bar` (the bar closes when the loop ends)."""
    items = list(items)
    with progress_bar(len(items), desc, unit) as bar:
        for item in items:
            yield item
            bar.update(1)
