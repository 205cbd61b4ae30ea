"""The RL stage's reward from its settings: the term list (``reward_terms``, else the paper's α, b and length
weights) and the :class:`~easynlp_bp.reward.combined.CombinedReward` built from it, RM folders checked at start-up."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from easynlp_bp.reward.terms import TermContext

logger = logging.getLogger(__name__)


# The reward when the policy is the embedded default and the user chose none of REWARD_KEYS. Its stand-in PickScore
# RM gives PPO almost nothing to climb (alone: held-out +0.03, PartiPrompts t = 0.4) while its aesthetic RM does
# (alone: t = 20), so the aesthetic term leads; word_recall pays for the exact copy of the user's words, which that
# model gets wrong most ("concentric circles" -> "concentricdescles") and a sentence encoder barely sees.
# Measured in docs/ppo.md. Real reward models keep the paper's weights.
EMBEDDED_DEFAULT_REWARD_TERMS = "aesthetic:1,pickscore:0.3,consistency:1,word_recall:1"
REWARD_KEYS = ("reward_terms", "alpha", "consistency_weight", "length_coef")


def reward_spec(reward_terms: Optional[str], alpha: float, consistency_weight: float,
                length_coef: float, embedded_default: bool = False) -> list[tuple[str, float]]:
    """``(name, weight)`` of every term: ``reward_terms`` (``name:weight,...``) if given, else
    :data:`EMBEDDED_DEFAULT_REWARD_TERMS` when ``embedded_default``, else the paper's
    ``(1-α)·aesthetic + α·pickscore`` (+ ``b·consistency`` when b > 0, + ``length_coef·length`` when set)."""
    from easynlp_bp.reward.terms import parse_reward_terms  # imports torch: only when terms are given

    if reward_terms or embedded_default:
        return parse_reward_terms(reward_terms or EMBEDDED_DEFAULT_REWARD_TERMS)
    spec = [("aesthetic", 1.0 - alpha), ("pickscore", alpha)]
    spec += [("consistency", consistency_weight)] if consistency_weight > 0 else []
    return spec + ([("length", length_coef)] if length_coef else [])


def check_reward_model_dirs(spec: list[tuple[str, float]], context: TermContext) -> None:
    """Raise before any training when a trained-RM term lacks its folder (not needed with the heuristic scorers).

    Raises:
        ValueError: ``reward_model_<kind>`` unset for a term that uses it.
        FileNotFoundError: the folder does not exist.
    """
    names = [name for name, _ in spec]
    for kind in ("aesthetic", "pickscore"):
        path = getattr(context, f"reward_model_{kind}")
        if kind not in names or context.heuristic:
            continue
        if path is None:
            raise ValueError(f"user_defined_parameters reward_model_{kind}=<dir> is required with reward=model "
                             "(or use reward=heuristic for the embedded default's stand-in).")
        if not Path(path).is_dir():
            raise FileNotFoundError(f"reward_model_{kind}={path} does not exist; train it with "
                                    "--app_name=beautiful_prompt_reward.")


def build_reward(spec: list[tuple[str, float]], context: TermContext, *, delta_reward: bool):
    """The combined reward of ``spec`` (terms built from ``context``), its RM folders checked first."""
    from easynlp_bp.reward.combined import CombinedReward

    if context.heuristic:
        logger.info("Reward: the heuristic stand-in scorers (not real reward models).")
    check_reward_model_dirs(spec, context)
    logger.info("Reward terms (name: weight): %s.", ", ".join(f"{n}: {w:g}" for n, w in spec))
    return CombinedReward.from_spec(spec, context, delta_reward=delta_reward)
