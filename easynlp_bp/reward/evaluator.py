"""RewardEvaluator: MSE, Pearson and Spearman of a reward model's scores against held-out labels."""
from __future__ import annotations

from typing import Sequence

from easynlp_bp.components import COMPONENTS
from easynlp_bp.reward.metrics import regression_metrics


@COMPONENTS.register("RewardEvaluator")
class RewardEvaluator:
    """Score held-out rows with a :class:`RewardModel` and compare with their labels (in label units).

    Example:
        >>> RewardEvaluator(rows, label_name="aesthetic_score").evaluate(rm)["spearman"]
    """

    def __init__(self, rows: Sequence[dict], label_name: str, raw_field: str = "raw_prompt",
                 prompt_field: str = "prompt", batch_size: int = 32):
        self.rows, self.label_name = list(rows), label_name
        self.raw_field, self.prompt_field, self.batch_size = raw_field, prompt_field, batch_size

    def evaluate(self, reward_model) -> dict[str, float]:
        scores = reward_model.score([r.get(self.raw_field, "") for r in self.rows],
                                    [r[self.prompt_field] for r in self.rows], batch_size=self.batch_size)
        return regression_metrics(scores.tolist(), [float(r[self.label_name]) for r in self.rows])
