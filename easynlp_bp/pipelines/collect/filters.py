"""Cleaning filters over prompt pairs; each keeps pairs in order and reports what it dropped and why.

NSFW word lists, language, exact and near duplicates, length bounds, low/high consistency (sentence
embeddings) and image-score thresholds. Near duplicates use a small MinHash-LSH written here (about 40
lines) rather than a new dependency; candidates are confirmed with the exact Jaccard similarity.
"""
from __future__ import annotations

import logging
import math
import re
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from easynlp_bp.finite_numbers import finite_or_nan
from easynlp_bp.pipelines.collect.quality_split import load_phrase_files
from easynlp_bp.prompting.language import ENGLISH, detect_language

logger = logging.getLogger(__name__)

# A short default list of sexual and explicit terms, written for this project. It is deliberately
# small; pass full lists (e.g. ../shared/data/nsfw_wordlists/*.txt) with nsfw_wordlists=.
DEFAULT_NSFW_TERMS = (
    "nsfw", "nude", "nudes", "nudity", "naked", "topless", "bottomless", "porn", "porno", "pornographic",
    "pornography", "hentai", "explicit sex", "sex scene", "sexual intercourse", "intercourse", "erotic",
    "erotica", "fetish", "bondage", "bdsm", "genitals", "genitalia", "nipples", "nipple", "areola",
    "breasts exposed", "exposed breasts", "penis", "vagina", "vulva", "orgasm", "masturbation",
    "masturbating", "lingerie model", "stripper", "striptease", "onlyfans", "xxx", "gore", "gory",
    "dismembered", "decapitated", "mutilated", "rule 34",
)


@dataclass
class FilterResult:
    """Pairs kept, and (pair, reason) for each pair dropped."""

    kept: list[dict] = field(default_factory=list)
    dropped: list[tuple[dict, str]] = field(default_factory=list)

    def report(self, name: str) -> dict:
        reasons = Counter(_reason_kind(reason) for _, reason in self.dropped)
        return {"filter": name, "in": len(self.kept) + len(self.dropped), "kept": len(self.kept),
                "dropped": len(self.dropped), "reasons": dict(reasons.most_common())}


def _reason_kind(reason: str) -> str:
    """A reason without its row-specific detail (what comes after ':'), for counting."""
    return reason.split(":", 1)[0]


def _texts(pair: dict, fields: Sequence[str]) -> list[str]:
    return [str(pair.get(name) or "") for name in fields]


_TOKEN = re.compile(r"\w+")


class NSFWFilter:
    """Drops pairs whose text contains a listed word or phrase (whole words, case-insensitive).

    Matching looks up each word n-gram of the text in a set (n up to the longest phrase), which is far
    faster than one regular expression with a thousand alternatives.
    """

    name = "nsfw"

    def __init__(self, wordlist_files: Sequence[str] = (), use_default: bool = True,
                 fields: Sequence[str] = ("raw_prompt", "prompt")):
        terms = set(DEFAULT_NSFW_TERMS) if use_default else set()
        terms |= set(load_phrase_files(wordlist_files))
        self._terms = {tuple(_TOKEN.findall(term.lower())) for term in terms} - {()}
        if not self._terms:
            raise ValueError("The NSFW filter has no words: pass nsfw_wordlists or keep the built-in list.")
        self._longest = max(len(term) for term in self._terms)
        self.fields = fields
        self.size = len(self._terms)

    def find(self, text: str) -> Optional[str]:
        """The first listed term in ``text``, or None."""
        words = _TOKEN.findall(text.lower())
        for start in range(len(words)):
            for n in range(1, min(self._longest, len(words) - start) + 1):
                if tuple(words[start:start + n]) in self._terms:
                    return " ".join(words[start:start + n])
        return None

    def __call__(self, pairs: Sequence[dict]) -> FilterResult:
        result = FilterResult()
        for pair in pairs:
            term = next((t for t in map(self.find, _texts(pair, self.fields)) if t), None)
            if term:
                result.dropped.append((pair, f"nsfw: matched {term!r}"))
            else:
                result.kept.append(pair)
        return result


class LanguageFilter:
    """Drops pairs written in another language than ``language``.

    A text is in another language when py3langid is at least ``min_confidence`` sure of it (texts of
    ``min_words`` words or more), or when the Predictor's language policy
    (:func:`easynlp_bp.prompting.language.detect_language`: py3langid weighed by word frequencies, robust on
    prompts of two words) says a text is not English when ``language="en"``: "la tour eiffel la nuit" is French
    although py3langid alone is unsure.
    """

    name = "language"

    def __init__(self, language: str = "en", min_confidence: float = 0.9, min_words: int = 4,
                 fields: Sequence[str] = ("raw_prompt", "prompt")):
        try:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier
        except ImportError as err:
            raise ImportError(
                "The language filter needs py3langid: pip install 'easynlp_bp[consistency]'."
            ) from err
        self._identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        if language not in self._identifier.labels:
            raise ValueError(f"language={language!r} is not an ISO 639-1 code py3langid knows, e.g. en, zh, de.")
        self.language, self.min_confidence, self.min_words, self.fields = language, min_confidence, min_words, fields

    def detect(self, text: str) -> tuple[Optional[str], float]:
        """(language, probability), or (None, 0) when the text is too short to judge."""
        if len(re.findall(r"\w+", text)) < self.min_words:
            return None, 0.0
        language, probability = self._identifier.classify(text)
        return language, float(probability)

    def __call__(self, pairs: Sequence[dict]) -> FilterResult:
        result = FilterResult()
        for pair in pairs:
            reason = None
            for name, text in zip(self.fields, _texts(pair, self.fields)):
                language, probability = self.detect(text)
                if language and language != self.language and probability >= self.min_confidence:
                    reason = f"language: {name} looks {language} (p={probability:.2f}), not {self.language}"
                    break
                # the word-frequency check answers "is this English?" (it leans to English when unsure)
                language = detect_language(text) if self.language == ENGLISH and text.strip() else self.language
                if language != self.language:
                    reason = f"language: {name} looks {language} (by its words' frequencies), not {self.language}"
                    break
            if reason:
                result.dropped.append((pair, reason))
            else:
                result.kept.append(pair)
        return result


def normalize_text(text: str) -> str:
    """Lowercase, NFKC, punctuation to spaces, whitespace collapsed: what 'the same prompt' means."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


class DuplicateFilter:
    """Drops exact duplicates (after :func:`normalize_text`) and near duplicates (word-shingle Jaccard
    >= ``near_threshold``) of an earlier pair, comparing the joined ``fields``."""

    name = "duplicates"

    def __init__(self, near_threshold: Optional[float] = 0.8, fields: Sequence[str] = ("raw_prompt", "prompt"),
                 shingle: int = 2, num_perm: int = 64, bands: int = 16, seed: int = 0):
        if near_threshold is not None and not 0 < near_threshold <= 1:
            raise ValueError(f"near_duplicate_threshold={near_threshold} must lie in (0, 1] (or none to turn it off).")
        if num_perm % bands:
            raise ValueError(f"num_perm={num_perm} must be a multiple of bands={bands}.")
        import numpy as np

        self.near_threshold, self.fields, self.shingle, self.bands = near_threshold, fields, shingle, bands
        rng = np.random.default_rng(seed)
        self._prime = (1 << 61) - 1
        self._a = rng.integers(1, self._prime, size=num_perm, dtype=np.uint64)
        self._b = rng.integers(0, self._prime, size=num_perm, dtype=np.uint64)

    def _shingles(self, text: str) -> set[str]:
        words = text.split()
        if len(words) < self.shingle:
            return {" ".join(words)}
        return {" ".join(words[i:i + self.shingle]) for i in range(len(words) - self.shingle + 1)}

    def _signature(self, shingles: set[str]):
        import numpy as np

        # crc32 is stable across processes (unlike hash()), so reruns drop the same rows.
        values = np.array([zlib.crc32(s.encode("utf-8")) for s in shingles], dtype=np.uint64)
        hashed = (values[:, None] * self._a[None, :] + self._b[None, :]) % np.uint64(self._prime)  # (S, P)
        return hashed.min(axis=0)  # (P,)

    def __call__(self, pairs: Sequence[dict]) -> FilterResult:
        result = FilterResult()
        seen: dict[str, int] = {}
        buckets: dict[tuple, list[int]] = {}
        kept_shingles: list[set[str]] = []
        for pair in pairs:
            text = normalize_text(" || ".join(_texts(pair, self.fields)))
            if text in seen:
                result.dropped.append((pair, f"exact duplicate: of output pair {seen[text]}"))
                continue
            shingles = self._shingles(text)
            keys: list[tuple] = []
            if self.near_threshold is not None:
                signature = self._signature(shingles)
                rows = len(signature) // self.bands
                keys = [(band, signature[band * rows:(band + 1) * rows].tobytes()) for band in range(self.bands)]
                candidates = {index for key in keys for index in buckets.get(key, ())}
                match = next((i for i in sorted(candidates)
                              if _jaccard(shingles, kept_shingles[i]) >= self.near_threshold), None)
                if match is not None:
                    similarity = _jaccard(shingles, kept_shingles[match])
                    result.dropped.append((pair, f"near duplicate: Jaccard {similarity:.2f} with output pair {match}"))
                    continue
            index = len(result.kept)
            seen[text] = index
            kept_shingles.append(shingles)
            for key in keys:
                buckets.setdefault(key, []).append(index)
            result.kept.append(pair)
        return result


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class LengthFilter:
    """Word-count bounds on both sides, and a minimum gain of the high prompt over the low one."""

    name = "length"

    def __init__(self, min_raw_words: int = 1, max_raw_words: int = 30, min_prompt_words: int = 5,
                 max_prompt_words: int = 150, min_word_gain: int = 3):
        if min_raw_words > max_raw_words or min_prompt_words > max_prompt_words:
            raise ValueError(
                f"Length bounds are empty: raw [{min_raw_words}, {max_raw_words}], prompt "
                f"[{min_prompt_words}, {max_prompt_words}]; each minimum must not exceed its maximum."
            )
        self.bounds = {"raw_prompt": (min_raw_words, max_raw_words), "prompt": (min_prompt_words, max_prompt_words)}
        self.min_word_gain = min_word_gain

    def __call__(self, pairs: Sequence[dict]) -> FilterResult:
        result = FilterResult()
        for pair in pairs:
            counts = {name: len(str(pair.get(name) or "").split()) for name in self.bounds}
            reason = next((f"{name} too {'short' if counts[name] < low else 'long'}: {counts[name]} words, "
                           f"bounds [{low}, {high}]"
                           for name, (low, high) in self.bounds.items() if not low <= counts[name] <= high), None)
            gain = counts["prompt"] - counts["raw_prompt"]
            if reason is None and gain < self.min_word_gain:
                reason = f"too little expansion: prompt adds {gain} words, min_word_gain={self.min_word_gain}"
            if reason:
                result.dropped.append((pair, reason))
            else:
                result.kept.append(pair)
        return result


class ScoreFilter:
    """Drops pairs whose known ``aesthetic_score`` / ``pick_score`` lies below its threshold.

    Pairs without the score are kept (nothing to judge); a score that is not a number is dropped.
    """

    name = "scores"

    def __init__(self, thresholds: dict[str, Optional[float]]):
        self.thresholds = {name: value for name, value in thresholds.items() if value is not None}

    def __call__(self, pairs: Sequence[dict]) -> FilterResult:
        result = FilterResult()
        for pair in pairs:
            reason = None
            for name, minimum in self.thresholds.items():
                value = pair.get(name)
                if value is None or value == "":
                    continue
                number = finite_or_nan(value)  # also 'inf', 1e999, '1_000'
                if not math.isfinite(number):
                    reason = f"{name} invalid: {value!r} is not a number"
                elif number < minimum:
                    reason = f"{name} below threshold: {number:g} < {minimum:g}"
                if reason:
                    break
            if reason:
                result.dropped.append((pair, reason))
            else:
                result.kept.append(pair)
        return result


class ConsistencyFilter:
    """Drops pairs whose low and high prompts are unrelated: cosine similarity of their sentence
    embeddings below ``min_similarity``. Writes the similarity into each kept pair (``consistency``)."""

    name = "consistency"

    def __init__(self, encoder: Any, min_similarity: float = 0.45, batch_size: int = 64, progress: bool = True):
        if not -1 <= min_similarity <= 1:
            raise ValueError(f"min_consistency={min_similarity} must lie in [-1, 1] (a cosine similarity).")
        self.encoder, self.min_similarity, self.batch_size, self.progress = encoder, min_similarity, batch_size, progress

    def similarities(self, pairs: Sequence[dict]) -> list[float]:
        """Cosine similarity of ``raw_prompt`` and ``prompt`` per pair."""
        from easynlp_bp.text.sentence_encoder import sentence_cosines

        return sentence_cosines(self.encoder, [str(p["raw_prompt"]) for p in pairs], [str(p["prompt"]) for p in pairs],
                                batch_size=self.batch_size, progress=self.progress).tolist()

    def __call__(self, pairs: Sequence[dict]) -> FilterResult:
        result = FilterResult()
        for pair, similarity in zip(pairs, self.similarities(pairs)):
            if similarity < self.min_similarity:
                result.dropped.append((pair, f"inconsistent: similarity {similarity:.2f} < {self.min_similarity}"))
            else:
                result.kept.append({**pair, "consistency": round(similarity, 4)})
        return result


def build_nsfw_filter(wordlist_files: Sequence[str], use_default: bool) -> NSFWFilter:
    for path in wordlist_files:
        if not Path(path).is_file():
            raise FileNotFoundError(f"nsfw_wordlists: {path!r} does not exist.")
    return NSFWFilter(wordlist_files, use_default)
