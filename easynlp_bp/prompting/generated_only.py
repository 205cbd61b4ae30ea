"""Decoding options that must not reach the user's own words.

HF ``generate`` applies ``repetition_penalty`` and ``no_repeat_ngram_size`` to the whole sequence, prompt
included. A BeautifulPrompt model copies the user's text after the template, so a prompt-wide n-gram ban turns
"a cat on a sofa" into "cc on the sogea" (the copy repeats the template's n-grams). Here both apply to the
generated part only, with transformers' own processors run on the generated slice (no re-implementation).
"""
from __future__ import annotations

from typing import Optional

import torch
from transformers import LogitsProcessor, LogitsProcessorList, NoRepeatNGramLogitsProcessor
from transformers import RepetitionPenaltyLogitsProcessor


class GeneratedPartOnly(LogitsProcessor):
    """Run ``processor`` on the tokens after the first ``prompt_length`` (the prompt is not its history)."""

    def __init__(self, processor: LogitsProcessor, prompt_length: int):
        self.processor = processor
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return self.processor(input_ids[:, self.prompt_length:], scores)


def prompt_safe_generate_kwargs(kwargs: dict, prompt_length: int, penalize_prompt: bool,
                                generation_config: Optional[object] = None) -> dict:
    """``generate`` kwargs whose repetition penalty and n-gram ban skip the first ``prompt_length`` tokens.

    ``penalize_prompt``: keep HF's prompt-wide repetition penalty (the reference code's behaviour); the n-gram
    ban is always on the generated part. ``generation_config``: the model's, whose own ``no_repeat_ngram_size``
    is moved to the generated part too.
    """
    processors = LogitsProcessorList()
    out = dict(kwargs)
    penalty = out.get("repetition_penalty", 1.0)
    if not penalize_prompt and penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(float(penalty), prompt_ignore_length=prompt_length))
        out["repetition_penalty"] = 1.0  # not None: None falls back to the model's generation_config
    ngram = out.get("no_repeat_ngram_size") or getattr(generation_config, "no_repeat_ngram_size", None)
    if ngram:
        processors.append(GeneratedPartOnly(NoRepeatNGramLogitsProcessor(int(ngram)), prompt_length))
        out["no_repeat_ngram_size"] = 0  # 0, not None, for the same reason
    if processors:
        out["logits_processor"] = processors
    return out
