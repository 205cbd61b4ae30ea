"""The combined reward that PPO (and GRPO/RLOO) maximise, as a plain callable on text: a list of named,
weighted terms (:mod:`easynlp_bp.reward.terms`), ``Σ wᵢ · termᵢ(x, y)``. The paper's reward is

    r(x, y) = (1-α)·RM_aes(y) + α·RM_ps(x, y) + b·cons(x, y)  [- the same for the reference prompt y_ref]
              + length term

(BeautifulPrompt, Cao et al. 2023, section 3.3; α = 0.7, delta against the data set's reference prompt
on by default, as in the reference code). ``cons(x, y)`` is the consistency model of the blog post that
introduced the method (``a·score_model + b·consistency_model``): the cosine between sentence embeddings
of the raw prompt x and the prompt y (:mod:`easynlp_bp.reward.consistency`); it keeps the user's meaning
when the RMs do not look at x closely enough. ``b = consistency_weight`` (0: off). The reference's "length bonus" is a constant that cancels in
the delta; here the length term depends on the prompt's length, and is added once (not deltaed):

    length_term(y) = length_coef · (min(n, W) - max(0, n - W)),   n = words of y, W = length_window

i.e. a per-word bonus up to the window and an equal per-word penalty past it, so the term peaks at W
words (default 60 words, about the 77-token CLIP window of Stable Diffusion).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from easynlp_bp.reward.terms import (  # noqa: F401 - PromptScorer re-exported
    BatchedScorer, LengthTerm, PromptScorer, RepetitionTerm, ScorerTerm, TermContext, WordRecallTerm, build_terms,
)

logger = logging.getLogger(__name__)


@dataclass
class RewardBreakdown:
    """One batch's reward and every term's values, float32 ``(B,)`` on CPU.

    ``terms[name]`` is the term's unweighted value for the prompts; ``references[name]`` for the reference
    prompts (only the deltaed terms, when the reference is used).
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    references: dict[str, torch.Tensor]

    def means(self, prefix: str = "reward") -> dict[str, float]:
        """Batch means for logging: ``reward/total``, ``reward/term/<name>``, ``reward/reference/<name>``."""
        out = {f"{prefix}/total": _mean(self.total)}
        out.update({f"{prefix}/term/{name}": _mean(value) for name, value in self.terms.items()})
        out.update({f"{prefix}/reference/{name}": _mean(value) for name, value in self.references.items()})
        return out


def _mean(value: torch.Tensor) -> float:
    return float(value.mean()) if value.numel() else 0.0


class CombinedReward:
    """``reward_fn(raw_prompts, prompts, reference_prompts=None) -> (B,)`` float32 tensor on CPU:
    ``Σ wᵢ · termᵢ(x, y)``, minus ``Σ wᵢ · termᵢ(x, y_ref)`` over the deltaed terms under ``delta_reward``.

    Example:
        >>> reward_fn = CombinedReward.heuristic(alpha=0.7)
        >>> reward_fn(["a cat"], ["a cat, 8k, masterpiece"], ["a cat, cinematic lighting"])
        tensor([...])
        >>> reward_fn = CombinedReward([WordRecallTerm(2.0), RepetitionTerm(1.0)])  # verifiable terms only
        >>> reward_fn.compute(["a cat"], ["a cat, 8k"]).means()   # every term's mean, for the logs
    """

    def __init__(self, terms: Sequence, *, delta_reward: bool = True):
        """Args:
            terms: objects with ``name``, ``weight``, ``deltaed`` and ``score(raw_prompts, prompts)``
                (:mod:`easynlp_bp.reward.terms`); names must be distinct.
            delta_reward: subtract the deltaed terms' values for ``reference_prompts`` when they are given.
        """
        terms = list(terms)
        if not terms:
            raise ValueError("The combined reward needs at least one term.")
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"Reward term names must be distinct; got {', '.join(names)}.")
        for term in terms:
            if not callable(getattr(term, "score", None)):
                raise TypeError(f"reward term {term.name!r} has no score(raw_prompts, prompts) method.")
        self.terms = terms
        self.delta_reward = delta_reward

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_scorers(cls, aesthetic_scorer: PromptScorer, pick_scorer: PromptScorer, *, alpha: float = 0.7,
                     delta_reward: bool = True, length_coef: float = 0.0, length_window: int = 60,
                     length_counter: Optional[Callable[[str], int]] = None,
                     consistency_scorer: Optional[PromptScorer] = None, consistency_weight: float = 0.0,
                     extra_terms: Sequence = ()) -> "CombinedReward":
        """The paper's reward from two scorers: ``(1-α)·aes + α·ps`` (+ ``b·consistency``, + length), plus
        ``extra_terms``.

        Args:
            alpha: weight of the PickScore RM (paper 0.7); ``1 - alpha`` weighs the aesthetic RM.
            length_coef, length_window, length_counter: the length term (0: off); the counter defaults to words.
            consistency_scorer, consistency_weight: ``b`` and the similarity of x and y (0: off).
        """
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha={alpha} must lie in [0, 1] (paper: 0.7, the PickScore RM's weight).")
        if consistency_weight < 0:
            raise ValueError(f"consistency_weight={consistency_weight} must not be negative (0 switches it off).")
        terms = [ScorerTerm("aesthetic", aesthetic_scorer, 1.0 - alpha), ScorerTerm("pickscore", pick_scorer, alpha)]
        if consistency_weight > 0:
            if not callable(getattr(consistency_scorer, "score", None)):
                raise TypeError(f"consistency_weight={consistency_weight} needs a consistency_scorer with a "
                                f"score(raw_prompts, prompts) method; got {type(consistency_scorer).__name__}.")
            terms.append(ScorerTerm("consistency", consistency_scorer, consistency_weight))
        if length_coef:
            length = LengthTerm(length_coef, length_window)
            if length_counter is not None:
                length.counter = length_counter
            terms.append(length)
        return cls(terms + list(extra_terms), delta_reward=delta_reward)

    @classmethod
    def from_pretrained(cls, aesthetic_dir: str, pickscore_dir: str, alpha: float = 0.7, delta_reward: bool = True,
                        length_coef: float = 0.0, device: str = "cpu", batch_size: int = 32,
                        consistency_weight: float = 0.0, consistency_model: Optional[str] = None,
                        **kwargs) -> "CombinedReward":
        """Load two trained RMs (each with its own tokenizer), in eval mode on ``device``; with
        ``consistency_weight > 0`` the sentence encoder ``consistency_model`` (default: the bundled
        all-MiniLM-L6-v2) too. ``kwargs`` go to :meth:`from_scorers`.

        Raises:
            ValueError: a directory holds the other kind of RM (e.g. a pickscore RM as ``aesthetic_dir``).
        """
        from easynlp_bp.models.reward_model import RewardModel

        aesthetic = RewardModel.from_pretrained(aesthetic_dir, reward_type="aesthetic").to(device)
        pick = RewardModel.from_pretrained(pickscore_dir, reward_type="pickscore").to(device)
        return cls.from_scorers(
            BatchedScorer(aesthetic, batch_size), BatchedScorer(pick, batch_size), alpha=alpha,
            delta_reward=delta_reward, length_coef=length_coef, consistency_weight=consistency_weight,
            consistency_scorer=_consistency_scorer(consistency_weight, consistency_model, device), **kwargs)

    @classmethod
    def heuristic(cls, alpha: float = 0.7, delta_reward: bool = True, length_coef: float = 0.0,
                  consistency_weight: float = 0.0, consistency_model: Optional[str] = None, device: str = "cpu",
                  **kwargs) -> "CombinedReward":
        """The combined reward over the heuristic stand-in scorers (embedded default and tests; not real RMs)."""
        from easynlp_bp.default.heuristic_scorer import HeuristicAestheticScorer, HeuristicPickScorer

        return cls.from_scorers(
            HeuristicAestheticScorer(), HeuristicPickScorer(), alpha=alpha, delta_reward=delta_reward,
            length_coef=length_coef, consistency_weight=consistency_weight,
            consistency_scorer=_consistency_scorer(consistency_weight, consistency_model, device), **kwargs)

    @classmethod
    def from_spec(cls, spec: Sequence[tuple[str, float]], context: TermContext,
                  delta_reward: bool = True) -> "CombinedReward":
        """The terms named in ``spec`` (``[("pickscore", 0.7), ("word_recall", 2.0)]``, see
        :func:`~easynlp_bp.reward.terms.parse_reward_terms`), built from the registry."""
        return cls(build_terms(spec, context), delta_reward=delta_reward)

    def term(self, name: str):
        """The term called ``name`` (``KeyError`` listing the terms otherwise)."""
        for term in self.terms:
            if term.name == name:
                return term
        raise KeyError(f"No reward term {name!r}; this reward has {', '.join(t.name for t in self.terms)}.")

    # ------------------------------------------------------------------ reward
    def _term_values(self, term, raw_prompts: list[str], prompts: list[str]) -> torch.Tensor:
        values = torch.as_tensor(term.score(raw_prompts, prompts)).detach().float().cpu().reshape(-1)
        if values.shape[0] != len(prompts):
            raise ValueError(f"Reward term {term.name!r} returned {values.shape[0]} scores for {len(prompts)} "
                             "prompts.")
        return values

    def compute(self, raw_prompts: Sequence[str], prompts: Sequence[str],
                reference_prompts: Optional[Sequence[str]] = None) -> RewardBreakdown:
        """The reward and every term's values for a batch.

        Args:
            raw_prompts: the user inputs ``x`` (B strings).
            prompts: the policy's beautified prompts ``y`` (B strings; an empty one is scored, not refused).
            reference_prompts: the data set's prompts ``y_ref`` (B strings), used when ``delta_reward``.
        """
        raw_prompts, prompts = list(raw_prompts), list(prompts)
        n = len(prompts)
        if len(raw_prompts) != n:
            raise ValueError(f"Got {len(raw_prompts)} raw prompts but {n} prompts; pass one each.")
        use_reference = self.delta_reward and reference_prompts is not None
        if use_reference:
            reference_prompts = list(reference_prompts)
            if len(reference_prompts) != n:
                raise ValueError(f"Got {len(reference_prompts)} reference prompts for {n} prompts; pass one each.")
        total = torch.zeros(n, dtype=torch.float32)
        values, references = {}, {}
        for term in self.terms:
            if use_reference and term.deltaed:  # one scoring pass over [y; y_ref] instead of two
                both = self._term_values(term, raw_prompts * 2, prompts + reference_prompts)
                values[term.name], references[term.name] = both[:n], both[n:]
                total += term.weight * (both[:n] - both[n:])
            else:
                values[term.name] = self._term_values(term, raw_prompts, prompts)
                total += term.weight * values[term.name]
        return RewardBreakdown(total, values, references)

    def __call__(self, raw_prompts: Sequence[str], prompts: Sequence[str],
                 reference_prompts: Optional[Sequence[str]] = None) -> torch.Tensor:
        """The reward, float32 ``(B,)`` on CPU."""
        return self.compute(raw_prompts, prompts, reference_prompts).total


def _consistency_scorer(weight: float, model: Optional[str], device: str):
    """The sentence-encoder consistency scorer when the term is on (``weight > 0``), else None (nothing loaded)."""
    if weight <= 0:
        return None
    from easynlp_bp.reward.consistency import ConsistencyScorer

    logger.info("Consistency term: %s · cosine(raw, prompt) with %s.", weight, model or "the bundled all-MiniLM-L6-v2")
    return ConsistencyScorer(model=model, device=device)
