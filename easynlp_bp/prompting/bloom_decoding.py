"""BLOOM's cached decode step without ``BloomModel.forward``'s per-step bookkeeping: bitwise the same logits.

Why: a decode step of the rollouts' model (hidden 256, 6 layers, 16 rows) is ~1 ms of arithmetic per layer, and
``BloomModel.forward`` rebuilds per step what does not change between steps: the ALiBi tensor from the whole
attention mask (a cumsum over every position), the causal mask through ``create_causal_mask``, the cache's
length bookkeeping and the output containers. Here they are built once for the whole capacity (ALiBi of position
``j`` depends on the mask up to ``j`` only, and generated positions are always real), and each step slices them
and calls the model's own blocks, norms and head, so every arithmetic op is transformers' own on the same
inputs: the logits are bitwise equal (``tests/prompting/test_decoding_exactness.py``). Only the prefill goes through
``model(...)`` as before. ``torch.compile`` is not used: on CPU its fused kernels reorder float sums, so sampled
tokens would drift from ``generate``'s, and its compile time exceeds a rollout batch's decode time.
"""
from __future__ import annotations

from typing import Optional

import torch


class _LayerCacheView:
    """What ``BloomAttention`` calls on ``layer_past`` in a decode step: ``update`` of its layer's buffers."""

    def __init__(self, layers):
        self.layers = layers

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        return self.layers[layer_idx].update(key_states, value_states)


def supports_static_bloom_decoding(model) -> bool:
    """Whether :class:`BloomStaticDecoder` runs ``model``'s decode steps exactly as ``model(...)`` would."""
    from transformers import BloomForCausalLM

    if type(model) is not BloomForCausalLM or model.training:  # a subclass may change forward
        return False
    config = model.config
    return not (config.pretraining_tp > 1 and config.slow_but_exact) and not any(
        module._forward_hooks or module._forward_pre_hooks for module in (model, model.transformer))


class BloomStaticDecoder:
    """Decode steps of a ``BloomForCausalLM`` over a cache whose prefill already ran.

    Args:
        model: the BLOOM causal LM (eval mode; :func:`supports_static_bloom_decoding` says whether it fits).
        cache: the prefilled cache (:func:`easynlp_bp.prompting.sampling.preallocated_cache`), already repeated
            to the N decoded rows.
        attention_mask: (N, L) the prefill's mask (left padding), repeated like the cache.
        capacity: positions the cache holds (L + new tokens).

    Example:
        >>> decoder = BloomStaticDecoder(model, cache, mask, capacity)  # doctest: +SKIP
        >>> logits = decoder.step(tokens)  # (N, V) for the next position, float as the model computes it
    """

    def __init__(self, model, cache, attention_mask: torch.Tensor, capacity: int):
        from transformers.models.bloom.modeling_bloom import build_alibi_tensor

        self.model = model
        self.transformer = model.transformer
        self.length = attention_mask.shape[1]
        rows, dtype = attention_mask.shape[0], self.transformer.word_embeddings.weight.dtype  # the hidden states' dtype
        full = torch.cat([attention_mask, attention_mask.new_ones(rows, capacity - self.length)], dim=1)  # (N, C)
        self.alibi = build_alibi_tensor(full, self.transformer.num_heads, dtype)  # (N*H, 1, C): HF's per-step values
        # HF's eager mask for a one-token step: 0 where a key is real, the dtype's min where it is padding
        self.mask = torch.zeros(rows, 1, 1, capacity, dtype=dtype, device=full.device).masked_fill(
            ~full.bool()[:, None, None, :], torch.finfo(dtype).min)  # (N, 1, 1, C)
        self.layer_past = _LayerCacheView(cache.layers)
        self.capacity = capacity

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, hidden_out: Optional[list] = None) -> torch.Tensor:
        """Logits (N, V) after feeding ``tokens`` (N,) at the next position."""
        end = self.length + 1
        if end > self.capacity:
            raise ValueError(f"The static cache holds {self.capacity} positions; {end} were written.")
        t = self.transformer
        hidden = t.word_embeddings_layernorm(t.word_embeddings(tokens[:, None]))  # (N, 1, hidden)
        # one contiguous copy per step, shared by the layers (baddbmm reads a strided ALiBi ~7 % slower)
        alibi, mask = self.alibi[:, :, :end].contiguous(), self.mask[..., :end]
        for block in t.h:
            hidden = block(hidden, layer_past=self.layer_past, attention_mask=mask, use_cache=True,
                           output_attentions=False, alibi=alibi)[0]
        self.length = end
        return self.model.lm_head(t.ln_f(hidden))[:, -1, :]
