"""The benchmarks' model: a random BLOOM of a given shape with the project's BPE tokenizer, no download.

Speed does not depend on the weights, so every benchmark builds its model here from a config under one
seed, with a tokenizer trained on the embedded default's synthetic pairs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional


def random_bloom(hidden_size: int, n_layer: int, n_head: int = 8, vocab_size: Optional[int] = None,
                 tokenizer_vocab: int = 2048, n_pairs: int = 800, seed: int = 0):
    """(model, tokenizer, pairs): a random ``BloomForCausalLM`` and the BPE tokenizer trained on ``pairs``.

    ``vocab_size`` None: the tokenizer's size. A larger one (BLOOM's 250,880) keeps the real LM head's cost;
    ids beyond the tokenizer then decode as nothing.
    """
    import torch
    from transformers import BloomConfig, BloomForCausalLM

    from easynlp_bp.text.template import INSTRUCTION_TEMPLATE
    from easynlp_bp.default.pairs import make_pairs
    from easynlp_bp.default.tokenizer import train_bpe_tokenizer

    pairs = make_pairs(n_pairs, seed=seed)
    tokenizer = train_bpe_tokenizer([INSTRUCTION_TEMPLATE] + [f"{p['raw_prompt']}\n{p['prompt']}" for p in pairs],
                                    vocab_size=tokenizer_vocab)
    config = BloomConfig(vocab_size=vocab_size or len(tokenizer), hidden_size=hidden_size, n_layer=n_layer,
                         n_head=n_head, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id)
    torch.manual_seed(seed)
    return BloomForCausalLM(config), tokenizer, pairs


def save_random_bloom(directory: Path, hidden_size: int, n_layer: int, **kwargs):
    """Build :func:`random_bloom` and save model + tokenizer to ``directory``; returns (tokenizer, pairs)."""
    model, tokenizer, pairs = random_bloom(hidden_size, n_layer, **kwargs)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return tokenizer, pairs
