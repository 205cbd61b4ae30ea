"""Write PNG plots of training curves from a HF Trainer ``log_history``."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence


def plot_log_history(log_history: Sequence[dict], path: str, keys: Sequence[str] = ("loss", "eval_loss")) -> bool:
    """Plot each key of ``keys`` found in ``log_history`` against ``step``; returns False if nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {key: [(e["step"], e[key]) for e in log_history if key in e and "step" in e] for key in keys}
    series = {key: points for key, points in series.items() if points}
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, points in series.items():
        steps, values = zip(*points)
        ax.plot(steps, values, marker="o" if len(points) < 20 else None, label=key)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("value")
    ax.legend()
    ax.grid(alpha=0.3)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
