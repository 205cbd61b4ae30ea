"""Banned words: token sequences for ``generate`` and a whole-word text filter (users of every expander ask for it)."""
from __future__ import annotations

import re
from typing import Sequence


class BannedWords:
    """Whole-word, case-insensitive banned words: ``bad_words_ids`` for ``generate`` and a final text filter."""

    def __init__(self, words: Sequence[str]):
        self.words = sorted({w.strip().lower() for w in words})
        self._pattern = (
            re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in self.words) + r")(?!\w)", re.IGNORECASE)
            if self.words else None
        )

    def token_ids(self, tokenizer) -> list[list[int]]:
        """Token sequences of each word as it may start a text or follow a space, in common casings."""
        sequences = set()
        for word in self.words:
            for form in {word, word.capitalize(), word.upper()}:
                for text in (form, " " + form):
                    ids = tuple(tokenizer(text, add_special_tokens=False).input_ids)
                    if ids:
                        sequences.add(ids)
        return [list(ids) for ids in sorted(sequences)]

    def found(self, text: str) -> list[str]:
        return [m.group(0) for m in self._pattern.finditer(text)] if self._pattern else []

    def remove(self, text: str) -> str:
        """Drop every comma-separated phrase that contains a banned word (keeps the rest of the prompt)."""
        if not self.found(text):
            return text
        phrases = [p.strip() for p in text.split(",")]
        kept = [p for p in phrases if p and not self.found(p)]
        return ", ".join(kept)
