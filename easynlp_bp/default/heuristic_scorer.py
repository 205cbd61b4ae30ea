"""Heuristic prompt-quality scorers: honest stand-ins for image-based labels in the embedded default.

Real reward labels come from images (Stable Diffusion + the LAION aesthetic predictor and PickScore; the
scoring app). No image model runs offline here, so the embedded default and the tests label prompts with
these hand-written formulas instead. They are **not** PickScore or an aesthetic predictor: they only count
the project's modifier phrases (``vocabulary.MODIFIER_GROUPS``), length and repetition, and (for the
pick stand-in) how many of the raw prompt's content words the prompt keeps. Scales roughly match the real
scores (aesthetic ~4-7, PickScore ~17-22) so that thresholds such as the SFT filter's 18.5 behave sensibly.

Like real PickScore, which scores the image *against the raw prompt*, the pick stand-in depends on the raw
prompt: a prompt that drops or swaps the user's subject scores lower, however polished it is. The RM rows
(:func:`make_reward_rows`) include such drifted prompts, so that an RM trained on them must read the raw
prompt to predict the label.
"""
from __future__ import annotations

import math
import random
import re
from typing import Optional, Sequence

import torch

from easynlp_bp.default import vocabulary as vocab
from easynlp_bp.text.faithfulness import FUNCTION_WORDS, subject_kept_share

STOPWORDS = FUNCTION_WORDS
VARIANTS_PER_PAIR = 6
# The CLIP text encoder sees 77 tokens, about 60 words of a comma-separated prompt; longer prompts are cut.
LONG_PROMPT_WORDS = 60


def _group_patterns() -> dict[str, re.Pattern]:
    patterns = {}
    for group, phrases in vocab.MODIFIER_GROUPS.items():
        alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
        patterns[group] = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
    return patterns


_PATTERNS = _group_patterns()


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def modifier_counts(prompt: str) -> dict[str, int]:
    """Distinct modifier phrases of each group (detail, lighting, style, quality, artist) in ``prompt``."""
    lowered = prompt.lower()
    return {group: len(set(pattern.findall(lowered))) for group, pattern in _PATTERNS.items()}


def prompt_features(raw_prompt: str, prompt: str) -> dict[str, float]:
    """The quantities both stand-ins are built from.

    ``modifiers``: distinct modifier phrases; ``groups``: groups with at least one; ``words``: word count;
    ``repetition``: share of repeated content words (1 - unique/total, function words excluded);
    ``relevance``: share of the raw prompt's content words that the prompt keeps (1 when the raw prompt has
    none; :func:`~easynlp_bp.text.faithfulness.subject_kept_share`, the subject preservation metric).
    """
    counts = modifier_counts(prompt)
    words = _words(prompt)
    content_words = [w for w in words if w not in STOPWORDS]
    return {
        "modifiers": float(sum(counts.values())),
        "groups": float(sum(1 for c in counts.values() if c)),
        "words": float(len(words)),
        "repetition": 1.0 - len(set(content_words)) / len(content_words) if content_words else 0.0,
        "relevance": subject_kept_share(raw_prompt, prompt) if raw_prompt else 1.0,
    }


def heuristic_aesthetic_score(prompt: str) -> float:
    """Stand-in "aesthetic" score (~4-7) of one prompt: saturating in modifiers, penalising repetition
    and words beyond the CLIP window."""
    f = prompt_features("", prompt)
    return (
        4.0
        + 1.6 * (1.0 - math.exp(-f["modifiers"] / 4.0))
        + 0.12 * f["groups"]
        + 0.4 * min(f["words"], 40.0) / 40.0
        - 1.5 * f["repetition"]
        - 0.02 * max(0.0, f["words"] - LONG_PROMPT_WORDS)
    )


def heuristic_pick_score(raw_prompt: str, prompt: str) -> float:
    """Stand-in "pick" score (~17-22) of a prompt for a raw prompt; depends on the raw prompt like PickScore.

    Real PickScore scores the image against the raw prompt, so an image that lost the subject scores low.
    Here relevance weighs most (2.5 points for keeping every content word of the raw prompt), so a prompt
    that drops or swaps the subject scores below the raw prompt itself however many modifiers it piles up
    (at most 1.7).
    """
    f = prompt_features(raw_prompt, prompt)
    return (
        17.5
        + 2.5 * f["relevance"]
        + 1.2 * (1.0 - math.exp(-f["modifiers"] / 5.0))
        + 0.1 * f["groups"]
        - 1.0 * f["repetition"]
        - 0.02 * max(0.0, f["words"] - LONG_PROMPT_WORDS)
    )


class HeuristicAestheticScorer:
    """Stand-in for the aesthetic RM (not an aesthetic predictor): ``score(raw, prompts)`` -> ``(B,)``.

    Example:
        >>> HeuristicAestheticScorer().score(["1 girl"], ["1 girl, masterpiece, 8k, cinematic lighting"])
        tensor([5.1...])
    """

    label_name = "aesthetic_score"

    def score(self, raw_prompts: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
        _check_lengths(raw_prompts, prompts)
        return torch.tensor([heuristic_aesthetic_score(p) for p in prompts], dtype=torch.float32)


class HeuristicPickScorer:
    """Stand-in for the PickScore RM (not PickScore): modifiers plus relevance to the raw prompt.

    Example:
        >>> s = HeuristicPickScorer()
        >>> s.score(["a cat"], ["a cat, 8k"]) > s.score(["a cat"], ["8k, masterpiece, hdr"])
        tensor([True])
    """

    label_name = "pick_score"

    def score(self, raw_prompts: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
        _check_lengths(raw_prompts, prompts)
        return torch.tensor([heuristic_pick_score(r, p) for r, p in zip(raw_prompts, prompts)], dtype=torch.float32)


def _check_lengths(raw_prompts: Sequence[str], prompts: Sequence[str]) -> None:
    if len(raw_prompts) != len(prompts):
        raise ValueError(f"Got {len(raw_prompts)} raw prompts but {len(prompts)} prompts; pass one each.")


def label_rows(
    rows: Sequence[dict],
    raw_field: str = "raw_prompt",
    prompt_field: str = "prompt",
    noise_std: float = 0.0,
    seed: int = 0,
) -> list[dict]:
    """Copies of ``rows`` with stand-in ``aesthetic_score`` and ``pick_score`` columns (heuristic labels).

    ``noise_std`` adds Gaussian noise (in score units) to both, like the spread of real image scores.
    """
    rng = random.Random(seed)
    labelled = []
    for row in rows:
        raw, prompt = row[raw_field], row[prompt_field]
        aes = heuristic_aesthetic_score(prompt) + (rng.gauss(0.0, noise_std) if noise_std else 0.0)
        pick = heuristic_pick_score(raw, prompt) + (rng.gauss(0.0, noise_std) if noise_std else 0.0)
        labelled.append({**row, "aesthetic_score": round(aes, 4), "pick_score": round(pick, 4)})
    return labelled


def prompt_variants(raw_prompt: str, prompt: str, rng: random.Random, other_raw: Optional[str] = None) -> list[str]:
    """``VARIANTS_PER_PAIR`` prompts of graded quality for one pair, so that an RM sees both ends of the scale.

    The raw prompt itself, the full prompt, a prefix of its comma parts, the modifiers without the subject
    (what a reward hacker would write), a repetitive one, and the full prompt with another pair's subject
    ``other_raw`` (drift: polished, but only the raw prompt tells that it is wrong).
    """
    parts = [p.strip() for p in prompt.split(",") if p.strip()]
    cut = rng.randint(1, max(1, len(parts) - 1))
    modifiers = parts[1:] or parts
    subject = raw_prompt.strip().rstrip(".")
    tail = prompt[len(subject):] if prompt.startswith(subject) else ", " + ", ".join(modifiers)
    drifted = (other_raw or "").strip().rstrip(".") + tail
    return [
        raw_prompt,
        prompt,
        ", ".join(parts[:cut]),
        ", ".join(rng.sample(modifiers, len(modifiers))),
        ", ".join(parts[:2] + [parts[-1]] * rng.randint(2, 4)),
        drifted.strip(" ,") or ", ".join(modifiers),
    ]


def make_reward_rows(n_pairs: int, seed: int = 0, noise_std: float = 0.1, pairs: Optional[list] = None) -> list[dict]:
    """Heuristically labelled RM rows from the embedded default's synthetic pairs (``VARIANTS_PER_PAIR`` per pair).

    Each row has ``raw_prompt``, ``prompt``, ``aesthetic_score`` and ``pick_score`` (stand-in labels).
    """
    from easynlp_bp.default.pairs import make_pairs

    pairs = pairs if pairs is not None else make_pairs(n_pairs, seed=seed)
    rng = random.Random(seed + 1)
    rows = [
        {"raw_prompt": pair["raw_prompt"], "prompt": variant}
        for index, pair in enumerate(pairs)
        for variant in prompt_variants(pair["raw_prompt"], pair["prompt"], rng,
                                       other_raw=pairs[(index + 1) % len(pairs)]["raw_prompt"])
    ]
    return label_rows(rows, noise_std=noise_std, seed=seed)
