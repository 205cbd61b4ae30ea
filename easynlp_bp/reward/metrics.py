"""Regression metrics of a reward model: MSE, Pearson and Spearman correlation.

Written with numpy (a few lines) so that the app does not need scipy at run time; ties get average
ranks, as ``scipy.stats.spearmanr`` gives them.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``; tied values share the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant (correlation undefined)."""
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / denominator) if denominator > 0 else float("nan")


def regression_metrics(predictions: Sequence[float], labels: Sequence[float]) -> dict[str, float]:
    """``{"count", "mse", "pearson", "spearman", "label_mean", "prediction_mean"}`` in label units.

    Raises:
        ValueError: the two sequences differ in length or are empty.
    """
    p = np.asarray(predictions, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if p.shape != y.shape or p.ndim != 1 or len(p) == 0:
        raise ValueError(f"Need two equally long, non-empty 1-D sequences; got {p.shape} and {y.shape}.")
    return {
        "count": int(len(p)),
        "mse": float(((p - y) ** 2).mean()),
        "pearson": pearson(p, y),
        "spearman": pearson(average_ranks(p), average_ranks(y)),
        "label_mean": float(y.mean()),
        "prediction_mean": float(p.mean()),
    }
