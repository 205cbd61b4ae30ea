"""Write PNG plots of training curves (a list of ``{"step": ..., metric: value}`` records: a HF Trainer
``log_history``, the PPO loop's history): SFT, reward-model and PPO training all plot through :func:`plot_curves`."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence


def plot_curves(history: Sequence[dict], path: str, panels: Sequence[tuple[str, Sequence[str]]]) -> bool:
    """Plot each panel's metric keys against ``step``, one subplot per ``(title, keys)`` panel that has data.

    Panels are separate so that quantities of different scales (a reward delta near 0, an absolute reward near
    17, a KL) each show their trend. Returns False (and writes nothing) when no panel has data.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [(title, {key: [(h["step"], h[key]) for h in history if key in h and "step" in h] for key in keys})
              for title, keys in panels]
    series = [(title, {key: points for key, points in lines.items() if points}) for title, lines in series]
    series = [(title, lines) for title, lines in series if lines]
    if not series:
        return False
    columns = min(5, len(series))
    rows = -(-len(series) // columns)
    size = (6, 4) if len(series) == 1 else (3.6 * columns, 3.6 * rows)
    fig, axes = plt.subplots(rows, columns, figsize=size, squeeze=False)
    for ax in axes.flat[len(series):]:
        ax.set_visible(False)
    for ax, (title, lines) in zip(axes.flat, series):
        for key, points in lines.items():
            steps, values = zip(*points)
            ax.plot(steps, values, marker="o" if len(points) < 30 else None, label=key)
        if title:
            ax.set_title(title, fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_log_history(log_history: Sequence[dict], path: str, keys: Sequence[str] = ("loss", "eval_loss")) -> bool:
    """One panel of ``keys`` from a HF Trainer ``log_history``; returns False if nothing to plot."""
    return plot_curves(log_history, path, [("", list(keys))])
