"""The CLIP-77 cap: Stable Diffusion's text encoder reads at most 77 tokens, so longer prompts are cut."""
from __future__ import annotations


class ClipLengthCap:
    """Cuts text to fit ``max_tokens`` CLIP tokens (BOS and EOS included), at a comma or word boundary."""

    def __init__(self, tokenizer, max_tokens: int = 77):
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, truncation=False).input_ids)

    def __call__(self, text: str) -> str:
        if self.count(text) <= self.max_tokens:
            return text
        for separator in (",", " "):
            pieces = text.split(separator)
            for end in range(len(pieces) - 1, 0, -1):
                candidate = separator.join(pieces[:end]).rstrip(" ,")
                if self.count(candidate) <= self.max_tokens:
                    return candidate
        return ""
