"""Running mean/std of sequence scores (parallel Welford merge), for the reference's reward scaling.

trlx divides each score by the running std of all scores seen so far ("scale_reward=running") and then
clips at ±``cliprange_reward``; the statistics are part of the checkpoint (checklist K5).
"""
from __future__ import annotations

import torch


class RunningMoments:
    """Mean and standard deviation of every value passed to :meth:`update`.

    Example:
        >>> rm = RunningMoments(); rm.update(torch.tensor([1.0, 3.0])); rm.update(torch.tensor([5.0]))
        >>> rm.mean, round(rm.std, 4)
        (3.0, 2.0)
    """

    def __init__(self) -> None:
        self.mean = 0.0
        self.var = 1.0
        self.std = 1.0
        self.count = 1e-24

    def update(self, xs: torch.Tensor) -> tuple[float, float]:
        """Merge a batch; returns the batch's (mean, std). Pass the batch gathered from all processes."""
        xs = xs.detach().double().flatten()
        n = xs.numel()
        if n == 0:
            raise ValueError("RunningMoments.update got an empty batch.")
        batch_mean = xs.mean().item()
        batch_var = xs.var(unbiased=False).item()
        delta = batch_mean - self.mean
        total = self.count + n
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.var = m2 / total
        self.std = (self.var * total / max(total - 1, 1)) ** 0.5  # Bessel-corrected, as trlx
        self.count = total
        return batch_mean, (batch_var * n / max(n - 1, 1)) ** 0.5

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "std": self.std, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.std, self.count = (float(state[k]) for k in ("mean", "var", "std", "count"))
