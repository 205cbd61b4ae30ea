"""Text-only metrics of generated prompts: length in tokens and distinct-n diversity."""
from __future__ import annotations

from typing import Sequence


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Share of unique word n-grams among all word n-grams of ``texts`` (0 when there are none)."""
    grams = [tuple(words[i : i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def text_statistics(texts: Sequence[str], tokenizer) -> dict[str, float]:
    """Mean length in tokens and words, and distinct-1/2 of ``texts``."""
    if not texts:
        return {"count": 0}
    token_lengths = [len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
    return {
        "count": len(texts),
        "mean_length_tokens": sum(token_lengths) / len(texts),
        "mean_length_words": sum(len(t.split()) for t in texts) / len(texts),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "empty_rate": sum(1 for t in texts if not t.strip()) / len(texts),
    }
