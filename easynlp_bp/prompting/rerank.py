"""Several candidates, best first: order each input's outputs by a score and report it (``rerank``).

``consistency`` scores each output by the bundled MiniLM cosine to the user's input (how much of the meaning
survives); ``reward`` by the RL stage's own reward (``0.3·aesthetic + 0.7·PickScore`` RMs + consistency, no
reference delta, :mod:`easynlp_bp.reward.combined`), so a user gets the ordering PPO optimises without
training. The scorer is built once per predictor and mode.
"""
from __future__ import annotations

from typing import Sequence

from easynlp_bp.prompting.guard import PromptResult

#: The terms (name, weight) each mode scores with; "reward" is the paper's reward plus the consistency term.
RERANK_TERMS = {"consistency": [("consistency", 1.0)],
                "reward": [("aesthetic", 0.3), ("pickscore", 0.7), ("consistency", 1.0)]}


def build_reranker(mode: str, reward_models: Sequence[str], device: str = "cpu"):
    """The ``CombinedReward`` that scores outputs for ``mode`` (``consistency`` or ``reward``)."""
    from easynlp_bp.reward.combined import CombinedReward
    from easynlp_bp.reward.terms import TermContext

    aesthetic, pickscore = (list(reward_models) + [None, None])[:2]
    context = TermContext(aesthetic, pickscore, device=device)
    return CombinedReward.from_spec(RERANK_TERMS[mode], context, delta_reward=False)


def rerank(results: Sequence[PromptResult], raw_prompts: Sequence[str], reward) -> None:
    """Score every output of ``results`` (for ``raw_prompts``) with ``reward`` in one batch, then order each
    result's outputs and statuses by score, best first; ``result.scores`` holds the scores in that order."""
    pairs = [(i, text) for i, result in enumerate(results) for text in result.outputs]
    if not pairs:
        return
    totals = reward([raw_prompts[i] for i, _ in pairs], [text for _, text in pairs]).tolist()
    position = 0
    for result in results:
        scored = sorted(zip(totals[position:position + len(result.outputs)], result.outputs, result.statuses),
                        key=lambda item: -item[0])
        position += len(result.outputs)
        result.scores = [round(score, 4) for score, _, _ in scored]
        result.outputs = [text for _, text, _ in scored]
        result.statuses = [status for _, _, status in scored]
