"""The BLOOM kernel patches (:mod:`~easynlp_bp.models.fused_gelu`, :mod:`~easynlp_bp.models.bloom_sdpa`), applied
to a model once: every place a model enters the library calls :func:`use_fused_kernels`, which marks the model so
that a second call (the loader, then the Predictor or the PPO trainer it is handed to) does nothing.

Both patches change the modules' classes only, never weights or the saved config, and are no-ops on other
architectures.
"""
from __future__ import annotations

import logging

import torch

from easynlp_bp.models.bloom_sdpa import use_sdpa_bloom_attention
from easynlp_bp.models.fused_gelu import fuse_bloom_gelu

logger = logging.getLogger(__name__)

#: Attribute set on a model once its kernels are patched (kept by ``copy.deepcopy``, never saved).
PATCHED_MARKER = "_easynlp_bp_fused_kernels"


def use_fused_kernels(model: torch.nn.Module) -> bool:
    """Patch ``model`` in place (fused GeLU, SDPA attention) unless it was patched already; returns whether it did.

    Example:
        >>> from transformers import BloomConfig, BloomForCausalLM
        >>> model = BloomForCausalLM(BloomConfig(hidden_size=32, n_layer=2, n_head=4, vocab_size=100))
        >>> use_fused_kernels(model), use_fused_kernels(model)
        (True, False)
    """
    if getattr(model, PATCHED_MARKER, False):
        return False
    gelus, attentions = fuse_bloom_gelu(model), use_sdpa_bloom_attention(model)
    if gelus or attentions:
        logger.debug("Fused kernels: %d GeLU and %d attention modules of %s.", gelus, attentions, type(model).__name__)
    setattr(model, PATCHED_MARKER, True)
    return True
