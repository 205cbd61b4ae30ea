"""Train the small byte-level BPE tokenizer that tiny models use (no tokenizer can be downloaded).

Special tokens follow BLOOM's ids: ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2 (EOS), ``<pad>`` 3, so pad != eos.
Prompts are left-padded (generation and PPO scoring use the same padding side).

The tokenizer learns its merges from the *distinct* comma-separated phrases of the training texts
(:func:`distinct_phrases`): a modifier repeated in thousands of targets ("glowing runes") would otherwise
claim merges such as " run" that then hardly ever occur in the raw prompts, and a model copies a user's word
worst when its first token is one it rarely saw in a raw prompt ("running" copied as "elfning"; measured in
docs/consistency.md).
"""
from __future__ import annotations

import re
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]


def distinct_phrases(texts: Iterable[str]) -> list[str]:
    """Each comma-, full-stop- or line-separated phrase of ``texts`` once, in first-seen order.

    Example:
        >>> distinct_phrases(["a cat, 8k", "a dog, 8k", "a cat\\na cat, 8k, bokeh"])
        ['a cat', '8k', 'a dog', 'bokeh']
    """
    seen: dict[str, None] = {}
    for text in texts:
        for phrase in re.split(r"[,\n]|\.(?:\s|$)", text):
            phrase = phrase.strip()
            if phrase:
                seen.setdefault(phrase, None)
    return list(seen)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts``, wrapped for transformers.

    Example:
        >>> tok = train_bpe_tokenizer(["a cat, highly detailed"] * 10, vocab_size=300)
        >>> tok.decode(tok("a cat").input_ids)
        'a cat'
    """
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        padding_side="left",
    )
