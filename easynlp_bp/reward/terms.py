"""Reward terms: the named, weighted parts of the combined reward ``Σ wᵢ · termᵢ(x, y)``.

Learned terms score with a model (the paper's two text-only RMs; the MiniLM consistency of x and y); the
verifiable terms are rules a reader can check by hand, as the 2025 prompt rewriters pair with learned rewards
(RePrompt, Hunyuan PromptEnhancer):

- ``word_recall``: share of the user's content words that y contains exactly, as whole words, so a misspelt
  ("concentricdescles") or dropped word costs, where a sentence encoder barely notices it;
- ``repetition``: minus the share of y taken by loops (a word bigram or a 1-4 character unit said three times
  in a row, "ilyilyily"), so degenerate text costs;
- ``clip_length``: 0 inside a window of CLIP tokens, minus the relative distance outside it;
- ``length``: the reference code's per-word length bonus up to a window (kept for compatibility).

A term is any object with ``name``, ``weight``, ``deltaed`` (subtract the reference prompt's value under
``delta_reward``) and ``score(raw_prompts, prompts) -> (B,) float tensor``. A new term is one class registered
in :data:`REWARD_TERMS` with a ``build(weight, context)`` classmethod (or named by its import path);
``reward_terms=name:weight,...`` selects it (``user_defined_parameters`` of the RL app, PPO, GRPO and RLOO alike).
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

import torch

from easynlp_bp.text.faithfulness import loop_share, subject_kept_share
from easynlp_bp.registry import Registry

REWARD_TERMS: Registry[type] = Registry("reward term")


class PromptScorer(Protocol):
    """Anything that scores prompts: a trained :class:`RewardModel`, a heuristic stand-in, a sentence encoder."""

    def score(self, raw_prompts: Sequence[str], prompts: Sequence[str]) -> torch.Tensor: ...


@dataclass
class TermContext:
    """What building a term may need: the RM directories, the encoder, the device (from the RL app's options)."""

    reward_model_aesthetic: Optional[str] = None
    reward_model_pickscore: Optional[str] = None
    heuristic: bool = False  # the embedded default's stand-in scorers instead of trained RMs
    consistency_model: Optional[str] = None
    device: str = "cpu"
    batch_size: int = 32
    options: dict[str, Any] = field(default_factory=dict)  # extra term options, e.g. clip_length window


@dataclass
class ScorerTerm:
    """A term backed by a scorer object (an RM, a heuristic stand-in, a sentence encoder)."""

    name: str
    scorer: PromptScorer
    weight: float = 1.0
    deltaed: bool = True

    def __post_init__(self) -> None:
        if not callable(getattr(self.scorer, "score", None)):
            raise TypeError(f"reward term {self.name!r} needs a scorer with score(raw_prompts, prompts); got "
                            f"{type(self.scorer).__name__}.")

    def score(self, raw_prompts: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
        return torch.as_tensor(self.scorer.score(raw_prompts, prompts)).detach().float().cpu().reshape(-1)


def _rm_term(name: str, reward_type: str, weight: float, context: TermContext) -> ScorerTerm:
    if context.heuristic:
        from easynlp_bp.default.heuristic_scorer import HeuristicAestheticScorer, HeuristicPickScorer

        scorer = HeuristicAestheticScorer() if reward_type == "aesthetic" else HeuristicPickScorer()
        return ScorerTerm(name, scorer, weight)
    from easynlp_bp.models.reward_model import RewardModel

    directory = getattr(context, f"reward_model_{reward_type}")
    if directory is None:
        raise ValueError(f"reward term {name!r} needs user_defined_parameters reward_model_{reward_type}=<dir> "
                         "(or reward=heuristic for the embedded default's stand-in).")
    model = RewardModel.from_pretrained(directory, reward_type=reward_type).to(context.device)
    return ScorerTerm(name, BatchedScorer(model, context.batch_size), weight)


@REWARD_TERMS.register("aesthetic")
class AestheticTerm:
    """The aesthetic RM (paper: weight 1 - α = 0.3)."""

    @classmethod
    def build(cls, weight: float, context: TermContext) -> ScorerTerm:
        return _rm_term("aesthetic", "aesthetic", weight, context)


@REWARD_TERMS.register("pickscore")
class PickScoreTerm:
    """The PickScore RM (paper: weight α = 0.7)."""

    @classmethod
    def build(cls, weight: float, context: TermContext) -> ScorerTerm:
        return _rm_term("pickscore", "pickscore", weight, context)


@REWARD_TERMS.register("consistency")
class ConsistencyTerm:
    """MiniLM cosine of the raw prompt and the prompt (the blog post's consistency model, weight b)."""

    @classmethod
    def build(cls, weight: float, context: TermContext) -> ScorerTerm:
        from easynlp_bp.reward.consistency import ConsistencyScorer

        return ScorerTerm("consistency", ConsistencyScorer(model=context.consistency_model, device=context.device),
                          weight)


@dataclass
class TextRuleTerm:
    """A verifiable term: a rule on the texts alone (no model), so building it needs only its weight.
    Subclasses set ``name`` and implement :meth:`value` for one (raw prompt, prompt) pair."""

    weight: float = 1.0
    name: str = ""
    deltaed: bool = True

    @classmethod
    def build(cls, weight: float, context: TermContext) -> "TextRuleTerm":
        return cls(weight)

    def value(self, raw_prompt: str, prompt: str) -> float:
        raise NotImplementedError

    def score(self, raw_prompts: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
        return torch.tensor([self.value(x, y) for x, y in zip(raw_prompts, prompts)], dtype=torch.float32)


@REWARD_TERMS.register("word_recall")
@dataclass
class WordRecallTerm(TextRuleTerm):
    """Share of the raw prompt's content words that the prompt contains as whole words (exact, any case)."""

    name: str = "word_recall"

    def value(self, raw_prompt: str, prompt: str) -> float:
        return subject_kept_share(raw_prompt, prompt)


@REWARD_TERMS.register("repetition")
@dataclass
class RepetitionTerm(TextRuleTerm):
    """Minus the share of the prompt inside a loop (0 for text without loops, -1 for text that is all loop)."""

    name: str = "repetition"

    def value(self, raw_prompt: str, prompt: str) -> float:
        return -loop_share(prompt)


@REWARD_TERMS.register("clip_length")
@dataclass
class ClipLengthTerm:
    """0 when the prompt has ``min_tokens``..``max_tokens`` CLIP tokens (BOS/EOS included), else minus the
    distance to the window relative to ``max_tokens`` (SD reads 77 tokens; text past them is lost)."""

    weight: float = 1.0
    min_tokens: int = 20
    max_tokens: int = 77
    counter: Optional[Callable[[str], int]] = None
    name: str = "clip_length"
    deltaed: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.min_tokens <= self.max_tokens:
            raise ValueError(f"clip_length window {self.min_tokens}..{self.max_tokens} must satisfy "
                             "1 <= min <= max.")
        if self.counter is None:
            from easynlp_bp.text.clip_cap import clip_token_counter

            self.counter = clip_token_counter()

    @classmethod
    def build(cls, weight: float, context: TermContext) -> "ClipLengthTerm":
        return cls(weight, int(context.options.get("clip_min_tokens", 20)),
                   int(context.options.get("clip_max_tokens", 77)))

    def score(self, raw_prompts: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
        n = torch.tensor([self.counter(y) for y in prompts], dtype=torch.float32)
        outside = (self.min_tokens - n).clamp(min=0) + (n - self.max_tokens).clamp(min=0)
        return -outside / self.max_tokens


@REWARD_TERMS.register("length")
@dataclass
class LengthTerm:
    """The reference code's length bonus: ``min(n, W) - max(0, n - W)`` for ``n`` words (peaks at ``W``)."""

    weight: float = 1.0
    window: int = 60
    counter: Callable[[str], int] = lambda text: len(text.split())
    name: str = "length"
    deltaed: bool = False

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"length_window={self.window} must be at least 1.")

    @classmethod
    def build(cls, weight: float, context: TermContext) -> "LengthTerm":
        return cls(weight, int(context.options.get("length_window", 60)))

    def score(self, raw_prompts: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
        n = torch.tensor([self.counter(p) for p in prompts], dtype=torch.float32)
        window = float(self.window)
        return n.clamp(max=window) - (n - window).clamp(min=0.0)


def parse_reward_terms(text: str) -> list[tuple[str, float]]:
    """``"aesthetic:0.3,pickscore:0.7,word_recall:2"`` -> ``[("aesthetic", 0.3), ...]`` (a name alone: weight 1).

    Raises:
        ValueError: a weight that is not a finite number, a name given twice, or an empty list.
    """
    from easynlp_bp.finite_numbers import parse_float

    pairs: list[tuple[str, float]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, weight = item.partition(":")
        try:
            value = parse_float(weight) if weight else 1.0
        except ValueError as err:
            raise ValueError(f"reward_terms: the weight of {name!r} ({weight!r}) is not a number: {err}.") from err
        if name in (n for n, _ in pairs):
            raise ValueError(f"reward_terms gives {name!r} twice.")
        pairs.append((name.strip(), value))
    if not pairs:
        raise ValueError("reward_terms is empty; give e.g. aesthetic:0.3,pickscore:0.7,word_recall:1.")
    return pairs


def term_class(name: str) -> type:
    """The term class called ``name``: a name registered in :data:`REWARD_TERMS`, or an import path
    ``package.module.ClassName`` of a class with a ``build(weight, context)`` classmethod (imported on request).

    Raises:
        ValueError: an unknown name (listing the registered ones) or a path that does not import.
    """
    if name in REWARD_TERMS or "." not in name:
        try:
            return REWARD_TERMS.get(name)
        except KeyError as err:
            raise ValueError(f"reward_terms: {err.args[0]} Or give package.module.ClassName.") from None
    module_name, _, class_name = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"reward_terms: {name!r} cannot be imported ({err}).") from err
    if not callable(getattr(cls, "build", None)):
        raise ValueError(f"reward_terms: {name} has no build(weight, context) classmethod.")
    return cls


def build_terms(spec: Sequence[tuple[str, float]], context: TermContext) -> list:
    """The terms ``spec`` names (see :func:`term_class`), with their weights."""
    return [term_class(name).build(weight, context) for name, weight in spec]


class BatchedScorer:
    """Binds a :class:`RewardModel` to a batch size so it fits the two-argument scorer protocol."""

    def __init__(self, reward_model, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1.")
        self.reward_model = reward_model
        self.batch_size = batch_size

    def score(self, raw_prompts: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
        return self.reward_model.score(raw_prompts, prompts, batch_size=self.batch_size)
