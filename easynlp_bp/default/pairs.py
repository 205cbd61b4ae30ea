"""Generate the embedded default's (raw_prompt -> prompt) pairs: copy an open vocabulary, add modifiers.

A raw prompt is a short description glued together from real English words (``wordfreq``, the 30,000
most frequent; :func:`vocabulary.english_words`) with articles and prepositions, in the shapes real
prompts take ("a X", "two X Y on the Z", "A man is X with a Y.", several clauses), and about a third of them end
in modifier phrases of their own, up to fourteen, as real Stable Diffusion prompts do ("a vehicle, concept art,
cyberpunk"). Long raw prompts (up to 40 content words, and long lists of the user's own modifiers) are what
teach the model to copy long real prompts to the end (docs/consistency.md, fourth round).
Its beautified prompt is the raw prompt **verbatim** (a trailing full stop dropped, the user's own
modifiers kept) followed by three or four new modifier phrases: a detail or lighting, a style, quality words
and sometimes an invented artist. Three or four, not more: each added phrase pulls the sentence's meaning
away from a one-word prompt (MiniLM cosine with "bond" falls from 0.66 with one phrase to 0.44 with six),
and the consistency of raw and beautified prompt should stay at a mean of at least 0.5. Because the subjects are drawn from tens of thousands of
words, the model cannot memorise them and learns to copy whatever the user wrote.
Deterministic for a given seed.
"""
from __future__ import annotations

import random

from easynlp_bp.default import vocabulary as vocab

# Content words per raw prompt: mostly 1-6, one in six over 18, up to 40 (real prompt sets: median ~4, but the
# ImageReward prompts average 22 words).
_WORD_COUNTS = list(range(1, 41))
_WORD_COUNT_WEIGHTS = [10, 14, 14, 12, 10, 8, 6, 5, 4, 3, 3, 2, 2, 1.5, 1.5, 1, 1, 1] + [0.8] * 22


def _number(rng: random.Random) -> str:
    """A count, a year or a model number ("3", "300", "1984"), as real prompts write them."""
    return str(int(10 ** (rng.random() * 3.3)) - rng.randint(0, 1))


def _odd_spelling(rng: random.Random, words: tuple[str, ...], word: str) -> str:
    """The forms real prompts are full of and word lists are not: "F1", "TV", "t-shirt", "iPhone", "san
    francisco's" (the model must copy the user's spelling, not the nearest common word)."""
    kind = rng.randrange(5)
    if kind == 0:
        return f"{rng.choice('ABCDEFGHJKLMNPRSTVXZ')}{rng.randint(1, 99)}"
    if kind == 1:
        return "".join(rng.choice("ABCDEFGHIJKLMNOPRSTUVWXYZ") for _ in range(rng.randint(2, 4)))
    if kind == 2:
        return f"{word}-{words[int(len(words) * rng.random() ** 2)]}"
    if kind == 3:
        return f"{rng.choice('eix')}{word.capitalize()}"
    return f"{word}'s"


def _word(rng: random.Random, words: tuple[str, ...]) -> str:
    """A word, frequent ones favoured (index ~ n·u²), sometimes a number, capitalised like a name, or
    spelled the odd ways of :func:`_odd_spelling`."""
    roll = rng.random()
    if roll < 0.05:
        return _number(rng)
    word = words[int(len(words) * rng.random() ** 2)]
    if roll < 0.09:
        return _odd_spelling(rng, words, word)
    return word.capitalize() if roll > 0.93 else word


def _clause(rng: random.Random, words: tuple[str, ...], n_words: int) -> str:
    """``n_words`` content words as noun phrases ("a red fox") joined by prepositions ("on the")."""
    parts, left = [], n_words
    while left > 0:
        size = min(left, rng.choice([1, 1, 2, 2, 3]))
        left -= size
        phrase = " ".join(_word(rng, words) for _ in range(size))
        if rng.random() < 0.5:  # real prompts often name the subject bare ("bond", "red apples")
            phrase = f"{rng.choice(vocab.ARTICLES)} {phrase}"
        if parts:
            roll = rng.random()
            glue = (rng.choice(vocab.PREPOSITIONS) if roll < 0.7
                    else rng.choice(vocab.CONNECTORS) if roll < 0.85 else ",")
            phrase = f"{glue} {phrase}" if glue != "," else f", {phrase}"
        parts.append(phrase)
    return " ".join(parts).replace(" , ", ", ")


def _users_modifiers(rng: random.Random, words: tuple[str, ...]) -> list[str]:
    """1-14 modifier phrases a user already wrote: the project's own ("concept art") or free words ("epic",
    "art by gold and iron"), which the model must copy rather than swap for its own."""
    phrases = []
    for _ in range(rng.randint(1, 14)):
        roll = rng.random()
        if roll < 0.5:
            group = rng.choice(list(vocab.MODIFIER_GROUPS.values()))
            phrases.append(rng.choice(group))
        elif roll < 0.85:
            phrases.append(" ".join(_word(rng, words) for _ in range(rng.randint(1, 2))))
        else:
            names = [f"{_word(rng, words)} {_word(rng, words)}" for _ in range(rng.randint(1, 3))]
            phrases.append(f"{rng.choice(['by', 'art by', 'painting by'])} {' and '.join(names)}")
    return phrases


def make_raw_prompt(rng: random.Random, words: tuple[str, ...]) -> str:
    """One raw prompt of 1-40 content words; sentence case, full stops and two sentences now and then, a
    third with modifier phrases of the user's own after the description, and a few in capitals or title
    case ("A MAN WALKING IN THE AIRPORT", as some captions and users write)."""
    raw = _raw_prompt(rng, words)
    roll = rng.random()
    if roll < 0.03:
        return raw.upper()
    return " ".join(w[:1].upper() + w[1:] for w in raw.split(" ")) if roll < 0.05 else raw


def _raw_prompt(rng: random.Random, words: tuple[str, ...]) -> str:
    n_words = rng.choices(_WORD_COUNTS, _WORD_COUNT_WEIGHTS)[0]
    if n_words > 7 and rng.random() < 0.3:
        first = rng.randint(2, n_words - 2)
        sentences = [_clause(rng, words, first), _clause(rng, words, n_words - first)]
        return ". ".join(s[0].upper() + s[1:] for s in sentences) + "."
    raw = _clause(rng, words, n_words)
    if rng.random() < 0.3:
        raw = raw[0].upper() + raw[1:]
    if rng.random() < 0.4:
        return ", ".join([raw, *_users_modifiers(rng, words)])
    if rng.random() < 0.15:
        raw += "."
    return raw


def make_target(raw: str, rng: random.Random) -> str:
    """The beautified prompt: ``raw`` verbatim (without a trailing full stop) then three or four modifier
    phrases it does not already have (a detail or lighting, a style, one or two quality words), and an
    invented artist one time in five."""
    kept = raw.rstrip(".").rstrip()
    lowered = kept.lower()

    def new(phrases: list[str], k: int) -> list[str]:
        return rng.sample([p for p in phrases if p not in lowered], k)

    parts = [kept, *new(vocab.DETAILS + vocab.LIGHTING, 1), *new(vocab.STYLES, 1),
             *new(vocab.QUALITY, rng.randint(1, 2))]
    if rng.random() < 0.2:
        parts += new(vocab.ARTISTS, 1)
    return ", ".join(parts)


def make_pair(rng: random.Random, words: tuple[str, ...] | None = None) -> dict:
    """One synthetic pair ``{"raw_prompt", "prompt"}``."""
    raw = make_raw_prompt(rng, words or vocab.english_words())
    return {"raw_prompt": raw, "prompt": make_target(raw, rng)}


def make_pairs(n: int, seed: int = 0) -> list[dict]:
    """``n`` synthetic pairs, the same for the same ``seed``."""
    rng = random.Random(seed)
    words = vocab.english_words()
    return [make_pair(rng, words) for _ in range(n)]
