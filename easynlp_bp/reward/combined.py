"""The combined reward that PPO (and GRPO/RLOO) maximise, as a plain callable on text.

    r(x, y) = (1-α)·RM_aes(y) + α·RM_ps(x, y) + b·cons(x, y)  [- the same for the reference prompt y_ref]
              + length term

(BeautifulPrompt, Cao et al. 2023, section 3.3; α = 0.7, delta against the data set's reference prompt
on by default, as in the reference code). ``cons(x, y)`` is the consistency model of the blog post that
introduced the method (``a·score_model + b·consistency_model``): the cosine between sentence embeddings
of the raw prompt x and the prompt y (:mod:`easynlp_bp.reward.consistency`); it keeps the user's meaning
when the RMs do not look at x closely enough (issue 13). ``b = consistency_weight`` (0: off). The reference's "length bonus" is a constant that cancels in
the delta; here the length term depends on the prompt's length, and is added once (not deltaed):

    length_term(y) = length_coef · (min(n, W) - max(0, n - W)),   n = words of y, W = length_window

i.e. a per-word bonus up to the window and an equal per-word penalty past it, so the term peaks at W
words (default 60 words, about the 77-token CLIP window of Stable Diffusion).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence

import torch

logger = logging.getLogger(__name__)


class PromptScorer(Protocol):
    """Anything that scores prompts: a trained :class:`RewardModel` or a heuristic stand-in."""

    def score(self, raw_prompts: Sequence[str], prompts: Sequence[str]) -> torch.Tensor: ...


def count_words(text: str) -> int:
    return len(text.split())


@dataclass
class RewardBreakdown:
    """The parts of one batch's reward, each float32 ``(B,)`` on CPU (reference parts zero when unused)."""

    total: torch.Tensor
    aesthetic: torch.Tensor
    pickscore: torch.Tensor
    reference_aesthetic: torch.Tensor
    reference_pickscore: torch.Tensor
    length: torch.Tensor
    consistency: torch.Tensor
    reference_consistency: torch.Tensor

    def means(self) -> dict[str, float]:
        """Batch means of every part, for logging (``reward/total`` etc.)."""
        return {f"reward/{name}": float(value.mean()) if value.numel() else 0.0 for name, value in vars(self).items()}


class CombinedReward:
    """``reward_fn(raw_prompts, prompts, reference_prompts=None) -> (B,)`` float32 tensor on CPU.

    Example:
        >>> reward_fn = CombinedReward.heuristic(alpha=0.7)
        >>> reward_fn(["a cat"], ["a cat, 8k, masterpiece"], ["a cat, cinematic lighting"])
        tensor([...])
        >>> reward_fn = CombinedReward.from_pretrained("outputs/rm_aes", "outputs/rm_ps", device="cuda",
        ...                                            consistency_weight=1.0)  # + b·MiniLM cosine(x, y)
    """

    def __init__(
        self,
        aesthetic_scorer: PromptScorer,
        pick_scorer: PromptScorer,
        *,
        alpha: float = 0.7,
        delta_reward: bool = True,
        length_coef: float = 0.0,
        length_window: int = 60,
        length_counter: Optional[Callable[[str], int]] = None,
        consistency_scorer: Optional[PromptScorer] = None,
        consistency_weight: float = 0.0,
    ):
        """Args:
            aesthetic_scorer, pick_scorer: objects with ``score(raw_prompts, prompts) -> (B,)`` tensor.
            alpha: weight of the PickScore RM (paper 0.7); ``1 - alpha`` weighs the aesthetic RM.
            delta_reward: subtract the same RM reward of ``reference_prompts`` when they are given.
            length_coef: weight of the length term (0 switches it off).
            length_window: length ``W`` (in ``length_counter`` units) where the length term peaks.
            length_counter: text -> length; default counts whitespace-separated words. Pass e.g. a CLIP
                tokenizer's token count with ``length_window=77`` to target the CLIP window exactly.
            consistency_scorer: ``score(raw_prompts, prompts) -> (B,)`` similarity of x and y, e.g.
                :class:`~easynlp_bp.reward.consistency.ConsistencyScorer`; needed when ``consistency_weight > 0``.
            consistency_weight: ``b``, the weight of the consistency term (0 switches it off).
        """
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha={alpha} must lie in [0, 1] (paper: 0.7, the PickScore RM's weight).")
        if length_window < 1:
            raise ValueError(f"length_window={length_window} must be at least 1.")
        for name, scorer in (("aesthetic_scorer", aesthetic_scorer), ("pick_scorer", pick_scorer)):
            if not callable(getattr(scorer, "score", None)):
                raise TypeError(f"{name} must have a score(raw_prompts, prompts) method; got {type(scorer).__name__}.")
        if consistency_weight < 0:
            raise ValueError(f"consistency_weight={consistency_weight} must not be negative (0 switches it off).")
        if consistency_weight > 0 and not callable(getattr(consistency_scorer, "score", None)):
            raise TypeError(f"consistency_weight={consistency_weight} needs a consistency_scorer with a "
                            "score(raw_prompts, prompts) method; got "
                            f"{type(consistency_scorer).__name__}.")
        self.consistency_scorer = consistency_scorer if consistency_weight > 0 else None
        self.consistency_weight = consistency_weight
        self.aesthetic_scorer = aesthetic_scorer
        self.pick_scorer = pick_scorer
        self.alpha = alpha
        self.delta_reward = delta_reward
        self.length_coef = length_coef
        self.length_window = length_window
        self.length_counter = length_counter or count_words

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_pretrained(
        cls,
        aesthetic_dir: str,
        pickscore_dir: str,
        alpha: float = 0.7,
        delta_reward: bool = True,
        length_coef: float = 0.0,
        device: str = "cpu",
        batch_size: int = 32,
        consistency_weight: float = 0.0,
        consistency_model: Optional[str] = None,
        **kwargs,
    ) -> "CombinedReward":
        """Load two trained RMs (each with its own tokenizer), in eval mode on ``device``.

        With ``consistency_weight > 0`` the sentence encoder ``consistency_model`` (default: the bundled
        all-MiniLM-L6-v2) is loaded too.

        Raises:
            ValueError: a directory holds the other kind of RM (e.g. a pickscore RM as ``aesthetic_dir``).
        """
        from easynlp_bp.reward.model import RewardModel

        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1.")
        aesthetic = RewardModel.from_pretrained(aesthetic_dir, reward_type="aesthetic").to(device)
        pick = RewardModel.from_pretrained(pickscore_dir, reward_type="pickscore").to(device)
        return cls(
            _BatchedScorer(aesthetic, batch_size), _BatchedScorer(pick, batch_size),
            alpha=alpha, delta_reward=delta_reward, length_coef=length_coef,
            consistency_scorer=_consistency_scorer(consistency_weight, consistency_model, device),
            consistency_weight=consistency_weight, **kwargs,
        )

    @classmethod
    def heuristic(cls, alpha: float = 0.7, delta_reward: bool = True, length_coef: float = 0.0,
                  consistency_weight: float = 0.0, consistency_model: Optional[str] = None, device: str = "cpu",
                  **kwargs) -> "CombinedReward":
        """The combined reward over the heuristic stand-in scorers (embedded default and tests; not real RMs)."""
        from easynlp_bp.default.heuristic_scorer import HeuristicAestheticScorer, HeuristicPickScorer

        return cls(HeuristicAestheticScorer(), HeuristicPickScorer(), alpha=alpha, delta_reward=delta_reward,
                   length_coef=length_coef, consistency_weight=consistency_weight,
                   consistency_scorer=_consistency_scorer(consistency_weight, consistency_model, device), **kwargs)

    # ------------------------------------------------------------------ reward
    def length_term(self, prompts: Sequence[str]) -> torch.Tensor:
        """``length_coef · (min(n, W) - max(0, n - W))`` per prompt, float32 ``(B,)``."""
        n = torch.tensor([self.length_counter(p) for p in prompts], dtype=torch.float32)
        window = float(self.length_window)
        return self.length_coef * (n.clamp(max=window) - (n - window).clamp(min=0.0))

    def _rm_scores(self, raw_prompts: Sequence[str], prompts: Sequence[str]) -> tuple[torch.Tensor, ...]:
        aesthetic = self.aesthetic_scorer.score(raw_prompts, prompts).detach().float().cpu().reshape(-1)
        pick = self.pick_scorer.score(raw_prompts, prompts).detach().float().cpu().reshape(-1)
        if self.consistency_scorer is not None:
            consistency = self.consistency_scorer.score(raw_prompts, prompts).detach().float().cpu().reshape(-1)
        else:
            consistency = torch.zeros(len(prompts), dtype=torch.float32)
        for name, scores in (("aesthetic", aesthetic), ("pickscore", pick), ("consistency", consistency)):
            if scores.shape[0] != len(prompts):
                raise ValueError(f"The {name} scorer returned {scores.shape[0]} scores for {len(prompts)} prompts.")
        return aesthetic, pick, consistency

    def compute(
        self,
        raw_prompts: Sequence[str],
        prompts: Sequence[str],
        reference_prompts: Optional[Sequence[str]] = None,
    ) -> RewardBreakdown:
        """The reward and its parts for a batch (see the module docstring for the formula).

        Args:
            raw_prompts: the user inputs ``x`` (B strings).
            prompts: the policy's beautified prompts ``y`` (B strings; an empty one is scored, not refused).
            reference_prompts: the data set's prompts ``y_ref`` (B strings), used when ``delta_reward``.
        """
        raw_prompts, prompts = list(raw_prompts), list(prompts)
        if len(raw_prompts) != len(prompts):
            raise ValueError(f"Got {len(raw_prompts)} raw prompts but {len(prompts)} prompts; pass one each.")
        use_reference = self.delta_reward and reference_prompts is not None
        n = len(prompts)
        if use_reference:
            reference_prompts = list(reference_prompts)
            if len(reference_prompts) != n:
                raise ValueError(f"Got {len(reference_prompts)} reference prompts for {n} prompts; pass one each.")
            # One scoring pass over [y; y_ref] instead of two.
            aesthetic_all, pick_all, consistency_all = self._rm_scores(raw_prompts * 2, prompts + reference_prompts)
            aesthetic, reference_aesthetic = aesthetic_all[:n], aesthetic_all[n:]
            pick, reference_pick = pick_all[:n], pick_all[n:]
            consistency, reference_consistency = consistency_all[:n], consistency_all[n:]
        else:
            aesthetic, pick, consistency = self._rm_scores(raw_prompts, prompts)
            reference_aesthetic = reference_pick = reference_consistency = torch.zeros(n, dtype=torch.float32)
        b = self.consistency_weight
        rm_reward = (1.0 - self.alpha) * aesthetic + self.alpha * pick + b * consistency
        reference_reward = (1.0 - self.alpha) * reference_aesthetic + self.alpha * reference_pick + b * reference_consistency
        length = self.length_term(prompts) if self.length_coef else torch.zeros(n, dtype=torch.float32)
        total = rm_reward - reference_reward + length
        return RewardBreakdown(total, aesthetic, pick, reference_aesthetic, reference_pick, length,
                               consistency, reference_consistency)

    def __call__(
        self,
        raw_prompts: Sequence[str],
        prompts: Sequence[str],
        reference_prompts: Optional[Sequence[str]] = None,
    ) -> torch.Tensor:
        """The reward, float32 ``(B,)`` on CPU."""
        return self.compute(raw_prompts, prompts, reference_prompts).total


def _consistency_scorer(weight: float, model: Optional[str], device: str):
    """The sentence-encoder consistency scorer when the term is on (``weight > 0``), else None (nothing loaded)."""
    if weight <= 0:
        return None
    from easynlp_bp.reward.consistency import ConsistencyScorer

    logger.info("Consistency term: %s · cosine(raw, prompt) with %s.", weight, model or "the bundled all-MiniLM-L6-v2")
    return ConsistencyScorer(model=model, device=device)


class _BatchedScorer:
    """Binds a :class:`RewardModel` to a batch size so it fits the two-argument scorer protocol."""

    def __init__(self, reward_model, batch_size: int):
        self.reward_model = reward_model
        self.batch_size = batch_size

    def score(self, raw_prompts: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
        return self.reward_model.score(raw_prompts, prompts, batch_size=self.batch_size)
