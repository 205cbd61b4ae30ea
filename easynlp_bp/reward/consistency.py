"""The consistency model of the reward: cosine between sentence embeddings of the raw and the beautified prompt.

The blog post that introduced BeautifulPrompt writes the reward as ``a·score_model(y) + b·consistency_model(x, y)``;
this is ``consistency_model``: any sentence encoder :func:`~easynlp_bp.text.sentence_encoder.load_sentence_encoder`
loads (by default the bundled all-MiniLM-L6-v2).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from easynlp_bp.text.sentence_encoder import load_sentence_encoder, sentence_cosines


class ConsistencyScorer:
    """``score(raw_prompts, prompts) -> (B,)`` float32: cosine of the two sentence embeddings, in [-1, 1].

    Example:
        >>> scorer = ConsistencyScorer()          # the bundled all-MiniLM-L6-v2
        >>> scorer.score(["a cat"], ["a cat, 8k"]) > scorer.score(["a cat"], ["a bridge, 8k"])
        tensor([True])
    """

    label_name = "consistency"

    def __init__(self, encoder=None, *, model: Optional[str] = None, device: str = "cpu", batch_size: int = 64):
        """Args:
            encoder: an object with sentence-transformers' ``encode`` (loaded from ``model`` when None).
            model: sentence-transformers directory or hub id (default: the bundled all-MiniLM-L6-v2).
            device: where the encoder runs.
            batch_size: sentences per encoder forward.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1.")
        self.encoder = encoder if encoder is not None else load_sentence_encoder(model, device)
        self.batch_size = batch_size

    def score(self, raw_prompts: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
        if len(raw_prompts) != len(prompts):
            raise ValueError(f"Got {len(raw_prompts)} raw prompts but {len(prompts)} prompts; pass one each.")
        return sentence_cosines(self.encoder, raw_prompts, prompts, batch_size=self.batch_size)
