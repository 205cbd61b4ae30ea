"""Which language a raw prompt is in, robustly enough for prompts of two words.

``py3langid`` alone calls many short English prompts something else ("1 girl": Turkish, "cyberpunk samurai,
neon": Hausa), so Latin-script text it does not call English is weighed once more with ``wordfreq``'s word
frequencies: it stays English unless its words are clearly (10x) more common in the detected language than in English.
Text that is mostly in another script (Han, kana, Cyrillic, Arabic, Devanagari, ...) takes py3langid's answer.
"""
from __future__ import annotations

import unicodedata
from functools import lru_cache

ENGLISH = "en"
ZIPF_MARGIN = 1.0  # Zipf units (log10 per billion words): 10x more common in the other language


def _is_latin(char: str) -> bool:
    return "LATIN" in unicodedata.name(char, "")


@lru_cache(maxsize=1)
def _identifier():
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError as err:  # a core dependency; a broken install gets a clear message
        raise ImportError("language detection needs py3langid: pip install py3langid") from err
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _mean_zipf(words: list[str], language: str) -> float:
    """Mean Zipf frequency of ``words`` in ``language`` (0 for a language wordfreq has no list of)."""
    from wordfreq import available_languages, zipf_frequency

    if language not in available_languages():
        return 0.0
    return sum(zipf_frequency(w, language) for w in words) / len(words)


def detect_language(text: str) -> str:
    """ISO 639-1 code of ``text``'s language (``"en"`` for text without letters)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return ENGLISH
    language, _ = _identifier().classify(text)
    if sum(map(_is_latin, letters)) < len(letters) / 2:
        return language
    if language == ENGLISH:
        return ENGLISH
    words = ["".join(c for c in w if c.isalpha()).lower() for w in text.split()]
    words = [w for w in words if w]
    # a clear margin: cognates ("a piano", "a robot", "a tornado") are about as common in both
    return language if _mean_zipf(words, language) > _mean_zipf(words, ENGLISH) + ZIPF_MARGIN else ENGLISH


def training_languages(raw_prompts: list[str], min_share: float = 0.05, sample: int = 500) -> list[str]:
    """The languages of at least ``min_share`` of ``raw_prompts`` (``sample`` of them, evenly spaced: a table
    sorted by language is still sampled across; 500 estimate a 5 % share to about 1 point), most common first:
    what SFT records as the model's training languages (``config.json`` ``beautiful_prompt_languages``)."""
    counts: dict[str, int] = {}
    chosen = raw_prompts[:: max(1, len(raw_prompts) // sample)][:sample]
    for text in chosen:
        language = detect_language(text)
        counts[language] = counts.get(language, 0) + 1
    ranked = sorted(counts, key=lambda lang: (-counts[lang], lang))
    return [lang for lang in ranked if counts[lang] >= min_share * len(chosen)] or [ENGLISH]
