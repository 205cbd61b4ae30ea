"""Offline text metrics of beautified prompts: subject preservation and consistency with the raw prompt,
CLIP length, diversity, NSFW rate.

Subject preservation counts which *content words* of the raw prompt (words that are not function words)
reappear as whole words in the beautified prompt: a prompt expander must not drift the subject.

Consistency is the cosine between sentence embeddings of the raw and the beautified prompt
(:mod:`easynlp_bp.text.sentence_encoder`: the bundled all-MiniLM-L6-v2 by default). CLIP
lengths come from the pipeline's own CLIP tokenizer when given, else from ``instant-clip-tokenizer``,
which embeds OpenAI's CLIP BPE vocabulary (no CLIP vocabulary can be downloaded offline).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Optional, Sequence

from easynlp_bp.text.statistics import distinct_n
from easynlp_bp.text.clip_cap import clip_token_counter  # re-exported: one definition
from easynlp_bp.text.faithfulness import FUNCTION_WORDS, content_words, subject_kept_share  # noqa: F401
from easynlp_bp.text.sentence_encoder import sentence_cosines

CLIP_WINDOW = 77

def subject_preservation(raw_prompts: Sequence[str], prompts: Sequence[str]) -> dict:
    """Subject preservation of aligned (raw, beautified) pairs.

    Returns ``subject_all`` (share of outputs keeping every content word), ``subject_half`` (share keeping
    at least half of them) and ``subject_mean`` (mean share kept), each in [0, 1].

    Example:
        >>> subject_preservation(["a cat on the beach", "1 girl"], ["a cat, 8k", "1 girl, masterpiece"])
        {'subject_all': 0.5, 'subject_half': 1.0, 'subject_mean': 0.75}
    """
    if len(raw_prompts) != len(prompts):
        raise ValueError(f"{len(raw_prompts)} raw prompts but {len(prompts)} prompts; they must pair up.")
    if not prompts:
        return {"subject_all": None, "subject_half": None, "subject_mean": None}
    shares = [subject_kept_share(r, p) for r, p in zip(raw_prompts, prompts)]
    n = len(shares)
    return {
        "subject_all": sum(s >= 1.0 for s in shares) / n,
        "subject_half": sum(s >= 0.5 for s in shares) / n,
        "subject_mean": sum(shares) / n,
    }


def load_nsfw_words(paths: Sequence[str | Path]) -> set[str]:
    """Lower-cased words and phrases, one a line, from word-list files (e.g. LDNOOBW's ``en``)."""
    words: set[str] = set()
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"NSFW word list {str(path)!r} not found; check nsfw_wordlists.")
        words.update(line.strip().lower() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return words


def is_nsfw(text: str, words: set[str]) -> bool:
    """Whether ``text`` contains a listed word or phrase as whole words (case-insensitive)."""
    tokens = re.findall(r"[a-z0-9']+", text.lower())
    joined = f" {' '.join(tokens)} "
    return any(word in tokens if " " not in word else f" {word} " in joined for word in words)


def text_metrics(raw_prompts: Sequence[str], prompts: Sequence[str], *, encoder=None, count_tokens=None,
                 nsfw_words: Optional[set[str]] = None) -> dict:
    """Text-only metrics of one method's prompts against the raw prompts (pairs aligned by position).

    Returns ``count``, ``subject_all/half/mean`` (:func:`subject_preservation`), ``consistency`` (mean
    cosine; None without an encoder), ``clip_tokens_mean``,
    ``over_77_rate`` (share longer than CLIP's window), ``words_mean``, ``distinct_1/2``, ``nsfw_rate``
    (None without word lists) and ``empty_rate``.
    """
    if len(raw_prompts) != len(prompts):
        raise ValueError(f"{len(raw_prompts)} raw prompts but {len(prompts)} prompts; they must pair up.")
    n = len(prompts)
    if n == 0:
        return {"count": 0}
    count_tokens = count_tokens or clip_token_counter()
    lengths = [count_tokens(p) for p in prompts]
    consistency = sentence_cosines(encoder, raw_prompts, prompts).tolist() if encoder is not None else None
    return {
        "count": n,
        **subject_preservation(raw_prompts, prompts),
        "consistency": sum(consistency) / n if consistency is not None else None,
        "clip_tokens_mean": sum(lengths) / n,
        "over_77_rate": sum(length > CLIP_WINDOW for length in lengths) / n,
        "words_mean": sum(len(p.split()) for p in prompts) / n,
        "distinct_1": distinct_n(prompts, 1),
        "distinct_2": distinct_n(prompts, 2),
        "nsfw_rate": sum(is_nsfw(p, nsfw_words) for p in prompts) / n if nsfw_words is not None else None,
        "empty_rate": sum(not p.strip() for p in prompts) / n,
    }
