"""What "faithful to the user's prompt" means, as rules on text: the user's content words kept as whole words,
no degenerate loops, and the user's prompt syntax (A1111/ComfyUI weights, LoRA tags, ``BREAK``) kept verbatim.

Used by the Predictor's faithfulness guard, the verifiable reward terms and the evaluation metrics, so all three
agree on what counts as a kept word or a loop. Plain ``re`` rules (no model): a reader can check each by hand.
"""
from __future__ import annotations

import re

# Function words that carry no subject. Written here rather than taken from e.g. scikit-learn's
# ENGLISH_STOP_WORDS, which also lists words that are subjects in image prompts ("fire", "top", "back",
# "front", "side", "bottom", "five", "full", "empty").
FUNCTION_WORDS = frozenset(
    "a an the of in on at by to with and or but under over for from into onto upon as is are was were be been "
    "being it its it's this that these those there their his her my your our some any each very so than then "
    "while which who whom whose what where when has have had do does did not no nor up down out off about "
    "near behind above below next inside outside through across against between among along around".split()
)
# letters and digits of any script ("café", "东京" whole), and each emoji (a subject too: "🐱 in space")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?|[\U0001F300-\U0001FAFF\u2600-\u27BF]")


def content_words(text: str) -> list[str]:
    """Lower-cased content words of ``text`` in order, duplicates removed (function words excluded)."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in FUNCTION_WORDS:
            seen.setdefault(word, None)
    return list(seen)


def subject_kept_share(raw_prompt: str, prompt: str) -> float:
    """Share of the raw prompt's content words that ``prompt`` contains as whole words (1.0 when it has none)."""
    wanted = content_words(raw_prompt)
    if not wanted:
        return 1.0
    present = set(_WORD.findall(prompt.lower()))
    return sum(word in present for word in wanted) / len(wanted)


_CHAR_LOOP = re.compile(r"(\S{1,4}?)\1{2,}")  # a unit of 1-4 characters said 3+ times in a row
_WORDS = re.compile(r"\w+")


def loop_share(text: str) -> float:
    """Share of ``text`` inside a loop: a unit of 1-4 characters said three or more times in a row
    ("ilyilyily", "rararara"; digits aside: "1111"), or of 1-4 words ("on a sofa on a sofa on a sofa"); the
    larger of the character share and the word share."""
    if not text.strip():
        return 0.0
    looped_chars = sum(len(m.group(0)) for m in _CHAR_LOOP.finditer(text) if not m.group(0).isdigit())
    words = _WORDS.findall(text.lower())
    looped = [False] * len(words)
    for size in range(1, 5):
        for start in range(len(words) - 3 * size + 1):
            unit, end = words[start : start + size], start + size
            while words[end : end + size] == unit:
                end += size
            if end - start >= 3 * size:
                looped[start:end] = [True] * (end - start)
    return min(1.0, max(looped_chars / len(text), sum(looped) / max(len(words), 1)))


# Prompt syntax of SD front-ends: (word:1.2) / ((word)) emphasis, [word] de-emphasis, {a|b} alternatives,
# <lora:name:0.8> / <hypernet:...> tags, BREAK, ComfyUI embedding:name. Innermost groups; nesting is kept
# because the outer text around an inner group must be copied too ("((word))" contains "(word)").
PROMPT_SYNTAX = re.compile(r"<[A-Za-z]+:[^<>]*>|\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}|\bBREAK\b|embedding:[\w.-]+")


def protected_spans(text: str) -> list[str]:
    """The prompt-syntax spans of ``text`` that an output must contain verbatim, in order."""
    return [m.group(0) for m in PROMPT_SYNTAX.finditer(text)]


def syntax_kept(raw_prompt: str, prompt: str) -> bool:
    """Whether every prompt-syntax span of ``raw_prompt`` appears verbatim in ``prompt``."""
    return all(span in prompt for span in protected_spans(raw_prompt))
