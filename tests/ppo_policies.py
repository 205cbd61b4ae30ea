"""Tiny test policies for the PPO trainer tests: a random BLOOM whose LM head gives EOS a fixed logit bias.

A plain random tiny BLOOM almost never samples EOS (1 of ~600 tokens), so every response is truncated and
every response mask is all ones: masking paths would go untested. Here the final norm's first channel is
made a constant 1 (weight 0, bias 1) and the (tied) output row of EOS gets ``eos_bias`` in that channel, the
other rows 0: the EOS logit is ``eos_bias`` above an almost uniform rest, so responses end at varied lengths
(P(EOS) per token ≈ e^b / (e^b + V - 1), about 0.1-0.15 for b = 4.3 and V = 600).
"""
from __future__ import annotations

import torch

from conftest import build_tiny_bloom

ROWS = [{"raw_prompt": r, "prompt": f"{r}, highly detailed, 8k"} for r in
        ["a cat", "1 girl", "a dragon in the snow", "a castle at night", "a fox", "a robot on the moon", "an owl",
         "a ship"]]


def build_eos_policy(tokenizer, eos_bias: float = 4.3, n_layer: int = 3, seed: int = 0):
    """A random tiny BLOOM (eval mode) whose sampled responses end with EOS at varied lengths."""
    model = build_tiny_bloom(tokenizer, n_layer=n_layer, seed=seed)
    with torch.no_grad():
        embeddings = model.get_input_embeddings().weight  # (V, H), tied with the LM head
        embeddings[:, 0] = 0.0
        embeddings[tokenizer.eos_token_id, 0] = eos_bias
        model.transformer.ln_f.weight[0] = 0.0
        model.transformer.ln_f.bias[0] = 1.0
    return model


class TextReward:
    """A deterministic reward of the text with scores of both signs (-2 … 2); records every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, raw_prompts, prompts, reference_prompts=None):
        self.calls.append((list(raw_prompts), list(prompts), reference_prompts))
        return torch.tensor([float(len(p) % 5) - 2.0 for p in prompts])
