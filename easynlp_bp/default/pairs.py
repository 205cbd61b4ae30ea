"""Generate the embedded default's (raw_prompt -> prompt) pairs from the project's own word lists.

A raw prompt is a subject, optionally with a setting ("a cat in the rain"); its beautified prompt keeps
those words and adds an adjective, details, lighting, style, quality words and an invented artist, as
real Stable Diffusion prompts do. Deterministic for a given seed.
"""
from __future__ import annotations

import random

from easynlp_bp.default import vocabulary as vocab


def make_pair(rng: random.Random) -> dict:
    """One synthetic pair ``{"raw_prompt", "prompt"}``."""
    subject = rng.choice(vocab.SUBJECTS)
    setting = rng.choice(vocab.SETTINGS) if rng.random() < 0.6 else ""
    raw = f"{subject} {setting}".strip()
    adjective = rng.choice(vocab.ADJECTIVES)
    article_free = subject.split(" ", 1)[1] if subject.split(" ", 1)[0] in ("a", "an") else subject
    head = f"{'an' if adjective[0] in 'aeiou' else 'a'} {adjective} {article_free}"
    if subject[0].isdigit():
        head = f"{subject}, {adjective}"
    parts = [f"{head} {setting}".strip()]
    parts += rng.sample(vocab.DETAILS, rng.randint(1, 3))
    parts += rng.sample(vocab.LIGHTING, rng.randint(1, 2))
    parts += rng.sample(vocab.STYLES, rng.randint(1, 2))
    parts += rng.sample(vocab.QUALITY, rng.randint(2, 4))
    if rng.random() < 0.7:
        parts += rng.sample(vocab.ARTISTS, rng.randint(1, 2))
    return {"raw_prompt": raw, "prompt": ", ".join(parts)}


def make_pairs(n: int, seed: int = 0) -> list[dict]:
    """``n`` synthetic pairs, the same for the same ``seed``."""
    rng = random.Random(seed)
    return [make_pair(rng) for _ in range(n)]
