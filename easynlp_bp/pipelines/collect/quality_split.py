"""Heuristics that mark a Stable Diffusion prompt as low or high quality (the paper's data split).

A prompt is *high* quality when it is long and carries style/quality modifiers or an artist; *low* when
it is short and plain; everything between is *mid* and is used by no step. Every threshold is a field
of :class:`QualitySplitConfig`, and :func:`split_by_quality` reports the distribution it found.
"""
from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from easynlp_bp.default.vocabulary import LIGHTING, QUALITY, STYLES

# Common modifiers of real Stable Diffusion prompts, written for this project; the embedded default's
# lighting, style and quality lists are added to it. Users add their own lists with modifier files.
BUILTIN_MODIFIERS = (
    "artstation", "trending on artstation", "deviantart", "pixiv", "behance", "cgsociety",
    "highly detailed", "hyper detailed", "ultra detailed", "extremely detailed", "intricate", "detailed",
    "sharp focus", "smooth", "elegant", "8 k", "8k", "4 k", "4k", "uhd", "hd", "hdr", "high resolution",
    "masterpiece", "best quality", "award winning", "photorealistic", "hyperrealistic", "hyperrealism",
    "realistic", "cinematic", "cinematic lighting", "volumetric lighting", "dramatic lighting",
    "studio lighting", "rim lighting", "global illumination", "ray tracing", "octane render",
    "unreal engine", "unreal engine 5", "redshift", "vray", "blender", "3d render", "digital art",
    "digital painting", "concept art", "matte painting", "illustration", "oil painting", "watercolor",
    "character design", "portrait", "wide angle", "depth of field", "bokeh", "golden hour", "vibrant",
    "vivid colors", "colorful", "symmetrical", "symmetry", "beautiful", "stunning", "epic", "fantasy",
    "sci-fi", "cyberpunk", "steampunk", "anime", "manga", "35mm", "dslr", "photography", "film grain",
    "trending", "featured", "masterwork", "professional", "dynamic lighting", "soft lighting",
)
# "by <name>" is an artist unless the next word is a determiner or pronoun ("a house by the river").
_ARTIST_PATTERN = re.compile(
    r"\b(?:art\s+by|painted\s+by|drawn\s+by|by|in\s+the\s+style\s+of|style\s+of)\s+"
    r"(?!(?:the|a|an|his|her|their|its|my|our|your|this|that|night|day|moonlight|candlelight)\b)[a-z][a-z.'-]+",
    re.I,
)
# Prompt-weight syntax and flags of common front ends: (word:1.2), [word], {word}, --ar 16:9, word::2.
_WEIGHT_PATTERN = re.compile(r"\([^()]*:\s*\d+(?:\.\d+)?\)|\[[^\]]+\]|\{[^}]+\}|--\w+|::\s*-?\d")
_WORD_PATTERN = re.compile(r"\w+(?:['-]\w+)*", re.UNICODE)


def load_phrase_files(paths: Iterable[str]) -> list[str]:
    """Phrases from text files, one per line (a CSV's first column; a ``keyword,...`` header is skipped)."""
    phrases: list[str] = []
    for path in paths:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"Word list {path!r} does not exist; pass existing files (one phrase a line).")
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            phrase = line.split(",")[0].strip().lower() if file.suffix == ".csv" else line.strip().lower()
            if not phrase or (file.suffix == ".csv" and number == 1 and phrase == "keyword"):
                continue
            phrases.append(phrase)
    return phrases


@dataclass
class QualitySplitConfig:
    """Thresholds of the low/high split (words are ``\\w+`` tokens; modifiers are known phrases)."""

    low_max_words: int = 10
    low_max_modifiers: int = 1
    high_min_words: int = 12
    high_min_modifiers: int = 3
    artist_counts_as_modifiers: int = 2
    modifier_files: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.low_max_words < 1 or self.high_min_words < 1:
            raise ValueError(
                f"low_max_words={self.low_max_words} and high_min_words={self.high_min_words} must be at least 1."
            )
        if self.low_max_words >= self.high_min_words:
            raise ValueError(
                f"low_max_words={self.low_max_words} must be smaller than high_min_words={self.high_min_words}, "
                "otherwise one prompt could be both low and high quality."
            )
        if min(self.low_max_modifiers, self.high_min_modifiers, self.artist_counts_as_modifiers) < 0:
            raise ValueError("low_max_modifiers, high_min_modifiers and artist_counts_as_modifiers must be >= 0.")


@dataclass
class PromptFeatures:
    """What the split looks at in one prompt."""

    words: int
    segments: int
    modifiers: int
    has_artist: bool
    weight_marks: int


class QualityClassifier:
    """Labels prompts ``low`` / ``mid`` / ``high`` with :class:`QualitySplitConfig`'s thresholds.

    Example:
        >>> classifier = QualityClassifier(QualitySplitConfig())
        >>> classifier.label("1 girl")
        'low'
    """

    def __init__(self, config: QualitySplitConfig, extra_modifiers: Sequence[str] = ()):
        self.config = config
        phrases = set(BUILTIN_MODIFIERS) | {p.lower() for p in (*LIGHTING, *QUALITY, *STYLES)}
        phrases |= set(load_phrase_files(config.modifier_files)) | {p.lower() for p in extra_modifiers}
        # Longest phrases first so that "trending on artstation" is one modifier, not two.
        ordered = sorted((p for p in phrases if p), key=len, reverse=True)
        self._modifier_pattern = re.compile(
            r"(?<!\w)(?:" + "|".join(re.escape(p) for p in ordered) + r")(?!\w)", re.I
        )

    def features(self, text: str) -> PromptFeatures:
        segments = [s for s in re.split(r"[,|;]", text) if s.strip()]
        return PromptFeatures(
            words=len(_WORD_PATTERN.findall(text)),
            segments=len(segments),
            modifiers=len({m.lower() for m in self._modifier_pattern.findall(text)}),
            has_artist=bool(_ARTIST_PATTERN.search(text)),
            weight_marks=len(_WEIGHT_PATTERN.findall(text)),
        )

    def label(self, text: str) -> str:
        c = self.config
        f = self.features(text)
        styled = f.modifiers + (c.artist_counts_as_modifiers if f.has_artist else 0) + min(f.weight_marks, 2)
        if f.words >= c.high_min_words and styled >= c.high_min_modifiers:
            return "high"
        if f.words <= c.low_max_words and f.modifiers <= c.low_max_modifiers and not f.has_artist \
                and f.weight_marks == 0:
            return "low"
        return "mid"


@dataclass
class QualitySplit:
    """Rows by label, in input order, and the distribution report."""

    low: list[dict] = field(default_factory=list)
    mid: list[dict] = field(default_factory=list)
    high: list[dict] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def _summary(values: list[int]) -> dict:
    if not values:
        return {"mean": None, "median": None, "p10": None, "p90": None}
    ordered = sorted(values)
    return {
        "mean": round(statistics.fmean(ordered), 2), "median": statistics.median(ordered),
        "p10": ordered[int(0.1 * (len(ordered) - 1))], "p90": ordered[int(0.9 * (len(ordered) - 1))],
    }


def split_by_quality(
    rows: Sequence[dict], classifier: QualityClassifier, text_field: str = "prompt", progress: bool = True
) -> QualitySplit:
    """Label every row (``row["quality"]``) and group them; ``stats`` holds counts, shares and length summaries."""
    from tqdm.auto import tqdm

    split = QualitySplit()
    words: dict[str, list[int]] = {"low": [], "mid": [], "high": []}
    artists: Counter = Counter()
    tagged: Counter = Counter()
    for row in tqdm(rows, desc="quality split", unit="prompt", disable=not progress):
        text = row[text_field]
        features = classifier.features(text)
        label = classifier.label(text)
        row["quality"] = label
        getattr(split, label).append(row)
        words[label].append(features.words)
        artists[label] += features.has_artist
        tagged[label] += features.segments >= 3 or features.weight_marks > 0
    total = len(rows)
    split.stats = {
        "rows": total,
        "counts": {label: len(getattr(split, label)) for label in ("low", "mid", "high")},
        "shares": {label: round(len(getattr(split, label)) / total, 4) if total else 0.0
                   for label in ("low", "mid", "high")},
        "words": {label: _summary(values) for label, values in words.items()},
        "with_artist": dict(artists),
        "with_tags": dict(tagged),
    }
    return split
