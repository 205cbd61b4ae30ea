"""The CLIP-77 cap: Stable Diffusion's text encoder reads at most 77 tokens, so longer prompts are cut.

Cuts fall at a comma, else at a space, never inside a ``(word:1.2)`` / ``[word]`` / ``{word}`` / ``<lora:x>``
group (A1111 / ComfyUI attention syntax), and a prompt is never cut to nothing: when no boundary fits,
the cap says so (:class:`ClipCapError`) and the caller rejects that output.

Offline by default: without a tokenizer, counts come from OpenAI's CLIP BPE vocabulary packaged in
``instant-clip-tokenizer`` (the same ids as ``openai/clip-vit-large-patch14``'s tokenizer, which no
machine here can download), as the evaluation's CLIP lengths do.
"""
from __future__ import annotations

from typing import Callable, Optional

OPENERS, CLOSERS = "([{<", ")]}>"


class ClipCapError(ValueError):
    """No comma or word boundary outside weight groups leaves a non-empty prompt within the window."""


def clip_token_counter(tokenizer=None) -> Callable[[str], int]:
    """A function giving a text's CLIP token count with BOS/EOS (a HF tokenizer if given, else OpenAI's BPE).

    Raises:
        ImportError: no tokenizer given and ``instant-clip-tokenizer`` is not installed.
    """
    if tokenizer is not None:
        return lambda text: len(tokenizer(text, truncation=False).input_ids)
    try:
        import instant_clip_tokenizer
    except ImportError as err:
        raise ImportError(
            "CLIP token counts offline need instant-clip-tokenizer: pip install instant-clip-tokenizer "
            "(or pass clip_tokenizer=<local CLIP tokenizer dir>)."
        ) from err
    clip = instant_clip_tokenizer.Tokenizer()
    return lambda text: len(clip.encode(text)) + 2  # + BOS and EOS, as CLIPTokenizer counts


def boundaries(text: str, separator: str) -> list[int]:
    """Indices of ``separator`` that lie outside every bracket group (depth 0), in order."""
    depth, found = 0, []
    for index, char in enumerate(text):
        if char in OPENERS:
            depth += 1
        elif char in CLOSERS:
            depth = max(0, depth - 1)
        elif char == separator and depth == 0:
            found.append(index)
    return found


class ClipLengthCap:
    """Cuts text to fit ``max_tokens`` CLIP tokens (BOS and EOS included), at a comma or word boundary.

    Example:
        >>> cap = ClipLengthCap(max_tokens=77)  # OpenAI's CLIP vocabulary, offline
        >>> cap("a cat, (soft fur:1.2), golden hour")  # short enough: unchanged
        'a cat, (soft fur:1.2), golden hour'
    """

    def __init__(self, tokenizer=None, max_tokens: int = 77):
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self._count = clip_token_counter(tokenizer)

    def count(self, text: str) -> int:
        return self._count(text)

    def __call__(self, text: str) -> str:
        """``text`` itself if it fits, else its longest fitting prefix ending at a boundary.

        Raises:
            ClipCapError: no non-empty prefix ending at a boundary fits.
        """
        if self.count(text) <= self.max_tokens:
            return text
        for separator in (",", " "):
            for end in reversed(boundaries(text, separator)):
                candidate = text[:end].rstrip(" ,")
                if candidate and self.count(candidate) <= self.max_tokens:
                    return candidate
        raise ClipCapError(
            f"no comma or word boundary outside weight groups fits {self.max_tokens} CLIP tokens "
            f"(the text has {self.count(text)}): {text[:80]!r}"
        )

    def cap_all(self, texts: list[str]) -> tuple[list[str], Optional[str]]:
        """Cap each text; outputs that cannot be capped are dropped. Returns (kept, reason if any dropped)."""
        kept, reason = [], None
        for text in texts:
            try:
                kept.append(self(text))
            except ClipCapError as err:
                reason = str(err)
        return kept, reason
