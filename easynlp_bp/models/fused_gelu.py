"""Run BLOOM's GeLU as torch's fused ``gelu(approximate="tanh")`` kernel.

Why this exists: in transformers 5 every ``BloomGelu`` calls a custom autograd function (Megatron's) that
spells the tanh approximation out in about eight element-wise tensor ops forward, and recomputes them in its
hand-written backward. ``torch.nn.GELU(approximate="tanh")`` is the same function,
``0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))``, with the same analytic derivative, in one kernel each way
(outputs agree to ~2e-7). On the benchmark's PPO model the GeLU was a third of the update's CPU time; the fused
kernel is about 10× faster forward + backward (``docs/benchmarks.md``). The swap changes modules only, never
weights or the saved config: a saved model is still an ordinary BLOOM directory.
"""
from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


def fuse_bloom_gelu(model: torch.nn.Module) -> int:
    """Replace every ``BloomGelu`` module of ``model`` (in place) by ``nn.GELU(approximate="tanh")``.

    Returns how many were replaced: 0 for models that are not BLOOM, or were fused already.

    Example:
        >>> from transformers import BloomConfig, BloomForCausalLM
        >>> fuse_bloom_gelu(BloomForCausalLM(BloomConfig(hidden_size=32, n_layer=2, n_head=4, vocab_size=100)))
        2
    """
    replaced = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child).__name__ == "BloomGelu":
                setattr(module, name, torch.nn.GELU(approximate="tanh"))
                replaced += 1
    if replaced:
        logger.debug("Fused %d BLOOM GeLU modules into torch's gelu(approximate='tanh').", replaced)
    return replaced
