"""Word lists for the synthetic pair corpus.

The *subjects* are an open vocabulary: real English words from ``wordfreq`` (a maintained word-frequency
package; :func:`english_words`), so the default learns to copy whatever the user writes instead of
memorising a closed list. The *modifiers* below are written for this project, after the phrases real
Stable Diffusion prompts carry; the artist-like names are invented.
"""
from __future__ import annotations

import functools
import re

# Function words that raw prompts are glued with (and that subject preservation does not count).
ARTICLES = ["a", "an", "the", "two", "three", "one", "some", "many", "my", "its", "his", "her", "their"]
PREPOSITIONS = ["in", "on", "at", "of", "with", "under", "over", "near", "behind", "next to", "inside",
                "on top of", "in front of", "made of", "by", "from", "above", "below", "and", "without"]
# Caption-style glue ("a man is riding a horse while ..."): real prompts are sentences too.
CONNECTORS = ["is", "are", "was", "is in", "that is", "who is", "while", "as", "to", "and a", "with his", "with her"]

ADJECTIVES = [
    "beautiful", "majestic", "mysterious", "cute", "ancient", "futuristic", "elegant", "epic",
    "serene", "whimsical", "dramatic", "lonely", "colorful", "ethereal", "fierce", "gentle",
]
DETAILS = [
    "intricate details", "flowing hair", "glowing eyes", "ornate armor", "detailed face",
    "soft fur", "delicate lace", "shimmering scales", "weathered stone", "glowing runes",
    "falling petals", "floating particles", "swirling mist", "reflections in water", "long shadows",
    "sparkling stars", "golden ornaments", "ivy covered walls", "crystal clear water", "billowing clouds",
]
LIGHTING = [
    "cinematic lighting", "volumetric lighting", "golden hour", "soft light", "rim light",
    "dramatic lighting", "god rays", "studio lighting", "moonlight", "neon glow", "warm light",
    "backlit", "diffused light", "candlelight", "sunbeams",
]
STYLES = [
    "digital painting", "oil painting", "concept art", "watercolor", "illustration", "matte painting",
    "anime style", "photorealistic", "3d render", "octane render", "unreal engine", "fantasy art",
    "studio photograph", "ink drawing", "pastel colors", "art nouveau", "cyberpunk", "steampunk",
    "impressionism", "low poly",
]
QUALITY = [
    "highly detailed", "masterpiece", "best quality", "sharp focus", "8k", "4k", "hdr", "ultra detailed",
    "trending on artstation", "award winning", "high resolution", "smooth", "elegant composition",
    "depth of field", "bokeh",
]
ARTISTS = [
    "by mira okafor", "by len vasquez", "by tomas hale", "by aiko brandt", "by ruben solace",
    "by ines marlow", "by kaito verne", "by delia frost", "by oskar wren", "by selma duret",
    "by juno castell", "by priya lumen", "by arlo finch", "by nadia reyes", "by felix moreau",
]
MODIFIER_GROUPS = {
    "detail": DETAILS,
    "lighting": LIGHTING,
    "style": STYLES,
    "quality": QUALITY,
    "artist": ARTISTS,
}
DEMO_RAW_PROMPTS = ["1 girl", "a cat on the beach", "a castle at night", "an astronaut in a forest"]


@functools.lru_cache(maxsize=4)
def english_words(n: int = 30000) -> tuple[str, ...]:
    """The ``n`` most frequent alphabetic English words of ``wordfreq`` (2+ letters, most frequent first).

    Raises:
        ImportError: ``wordfreq`` is missing (it is a core dependency: ``pip install -e .``).
    """
    try:
        from wordfreq import top_n_list
    except ImportError as err:
        raise ImportError("The embedded default's vocabulary needs wordfreq: pip install -e .") from err
    words = [w for w in top_n_list("en", int(n * 1.4)) if re.fullmatch(r"[a-z]{2,}", w)]
    return tuple(words[:n])
