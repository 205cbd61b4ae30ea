"""BLOOM's attention through torch's ``scaled_dot_product_attention`` in full-sequence (no-cache) forwards.

Why this exists: transformers' BLOOM runs attention as ``baddbmm`` (ALiBi + q·kᵀ) on strided head views, adds the
(B, 1, T, T) mask in a separate broadcast, softmaxes, then ``bmm``: five kernels and as many (B, H, T, T)
tensors, forward and backward. ``scaled_dot_product_attention`` computes the same
``softmax(scale·q·kᵀ + alibi + mask)·v`` in one fused kernel each way (outputs agree to float noise): ~5 % of a
PPO update and ~13 % of its scoring forwards on the benchmark's model (docs/benchmarks.md, section 3b).

Only forwards without a KV cache take the fused path (scoring and training); cached decoding steps and
``output_attentions`` run transformers' own code, so sampled tokens stay exactly those of ``generate``.
:func:`last_positions_only` lets the last layer compute only the positions a forward reads (PPO reads the
response positions): its keys and values still cover the whole sequence.
The model itself also takes a 4D attention mask (packed SFT rows, :mod:`easynlp_bp.sft.packing`): transformers'
BLOOM builds ALiBi from a 2D padding mask only, and a 4D mask gets ALiBi from each key's position within the keys
its own query may see (within its pair, as the padding mask gives a pair alone).
Like :mod:`easynlp_bp.models.fused_gelu` it changes the modules' class only, never weights or the saved config.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F


def _sdpa_forward(self, hidden_states, residual, alibi, attention_mask, layer_past=None, use_cache=False,
                  output_attentions=False, **kwargs):
    """BloomAttention.forward with one fused attention kernel (same signature and outputs, probs omitted)."""
    fused = (layer_past is None and not output_attentions and attention_mask is not None
             and attention_mask.is_floating_point() and hidden_states.dtype == torch.float32
             and not (self.pretraining_tp > 1 and self.slow_but_exact)
             and not torch.is_autocast_enabled(hidden_states.device.type))  # bf16 q/k/v with an fp32 bias: slower
    if not fused:
        return super(type(self), self).forward(hidden_states, residual, alibi, attention_mask, layer_past=layer_past,
                                               use_cache=use_cache, output_attentions=output_attentions, **kwargs)
    from transformers.models.bloom.modeling_bloom import dropout_add

    batch_size, q_length, _ = hidden_states.shape
    query, key, value = self._reshape(self.query_key_value(hidden_states))  # 3 x (B, H, T, D)
    keep = getattr(self, "keep_last", 0)
    if 0 < keep < q_length:  # queries (and outputs) of the last positions only; keys and values of all
        query, attention_mask, residual, q_length = query[:, :, -keep:], attention_mask[:, :, -keep:], residual[:, -keep:], keep
    # ALiBi (B·H, 1, T) and the additive causal/padding mask (B, 1, K, T) as one bias (B, H, K, T)
    bias = alibi.view(batch_size, self.num_heads, 1, -1) + attention_mask
    dropout = self.attention_dropout.p if self.training else 0.0
    context = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=dropout,
                                             scale=self.inv_norm_factor)  # (B, H, T, D)
    context = context.transpose(1, 2).reshape(batch_size, q_length, self.num_heads * self.head_dim)
    output = dropout_add(self.dense(context), residual, self.hidden_dropout, self.training)
    return output, None


def _alibi_from_any_mask(self, attention_mask: torch.Tensor, num_heads: int, dtype: torch.dtype) -> torch.Tensor:
    """BloomModel.build_alibi_tensor that also takes a 4D (B, 1, T, T) additive mask: each key's position is the
    number of keys its own query may see, less one, i.e. its position within its pair, as if the pair were alone."""
    if attention_mask.dim() != 4:
        return super(type(self), self).build_alibi_tensor(attention_mask, num_heads, dtype)
    from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

    visible = attention_mask[:, 0] == 0  # (B, query, key)
    positions = (visible.sum(dim=-1) - 1).clamp(min=0).to(torch.float32)  # (B, T): key j's own query row
    slopes = _get_alibi_slopes(num_heads, attention_mask.device)
    alibi = slopes[None, :, None] * positions[:, None, :]
    return alibi.reshape(attention_mask.shape[0] * num_heads, 1, -1).to(dtype)


def use_sdpa_bloom_attention(model: torch.nn.Module) -> int:
    """Give every ``BloomAttention`` of ``model`` (in place) the fused no-cache path, and its ``BloomModel`` ALiBi
    from a 4D mask; returns how many attention modules it switched.

    0 for models that are not BLOOM, or were switched already.

    Example:
        >>> from transformers import BloomConfig, BloomForCausalLM
        >>> use_sdpa_bloom_attention(BloomForCausalLM(BloomConfig(hidden_size=32, n_layer=2, n_head=4, vocab_size=100)))
        2
    """
    switched = 0
    for module in model.modules():
        cls = type(module)
        if cls.__name__ == "BloomModel" and cls not in _FUSED_CLASSES.values():
            module.__class__ = _fused_class(cls, "BloomModel", build_alibi_tensor=_alibi_from_any_mask)
        if cls.__name__ != "BloomAttention":
            continue
        module.__class__ = _fused_class(cls, "SdpaBloomAttention", forward=_sdpa_forward)
        switched += 1
    return switched


def takes_packed_rows(model: torch.nn.Module) -> bool:
    """Whether ``model`` was switched by :func:`use_sdpa_bloom_attention`, so that it builds ALiBi from a 4D mask and
    a pair packed into a row with others (:mod:`easynlp_bp.sft.packing`) gets the outputs it has alone."""
    return any(getattr(type(module), "build_alibi_tensor", None) is _alibi_from_any_mask for module in model.modules())


@contextlib.contextmanager
def last_positions_only(layers, keep: int) -> Iterator[bool]:
    """Within the block, the last of ``layers`` (BLOOM blocks switched by :func:`use_sdpa_bloom_attention`)
    outputs only the last ``keep`` positions in no-cache forwards; yields whether it does.

    Exact for any forward that reads only those positions (``logits_to_keep=keep``): no later layer attends to
    the others. The model's final hidden states then have ``keep`` positions.
    """
    attention = getattr(layers[-1], "self_attention", None) if len(layers) else None
    active = keep > 0 and attention is not None and type(attention) in _FUSED_CLASSES.values()
    if active:
        attention.keep_last = keep
    try:
        yield active
    finally:
        if active:
            del attention.keep_last


_FUSED_CLASSES: dict[type, type] = {}


def _fused_class(cls: type, name: str, **methods) -> type:
    """A subclass of transformers' ``cls`` with ``methods`` replaced (one per class). ``BloomModel`` keeps its name:
    ``save_pretrained`` of a bare ``BloomModel`` writes its class name into the config's ``architectures``."""
    if cls not in _FUSED_CLASSES:
        _FUSED_CLASSES[cls] = type(name, (cls,), {**methods, "__module__": __name__})
    return _FUSED_CLASSES[cls]
