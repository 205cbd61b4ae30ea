"""pytest-benchmark micro-benchmarks: one sampling step over a BLOOM-sized vocabulary (250,880), HF's warper
chain (repetition penalty -> temperature -> top-k -> top-p -> softmax -> multinomial) against the fast sampler.

    .venv/bin/python -m pytest benchmarks/test_micro_sampling.py --benchmark-columns=median,iqr,rounds
"""
from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from easynlp_bp.prompting.sampling import SamplingSettings, apply_repetition_penalty_, sample_next_tokens

VOCAB = 250_880
SETTINGS = SamplingSettings(max_new_tokens=1, top_k=50, top_p=0.95, repetition_penalty=1.2)


@pytest.fixture(scope="module", params=[5, 80], ids=lambda rows: f"rows{rows}")
def step_inputs(request):
    torch.manual_seed(0)
    return torch.randn(request.param, VOCAB), torch.randint(0, VOCAB, (request.param, 40))


def hf_step(scores, seen):
    scores = RepetitionPenaltyLogitsProcessor(1.2)(seen, scores)
    scores = TemperatureLogitsWarper(1.0)(seen, scores)
    scores = TopPLogitsWarper(0.95)(seen, TopKLogitsWarper(50)(seen, scores))
    return torch.multinomial(scores.softmax(-1), 1).squeeze(1)


def fast_step(scores, seen):
    return sample_next_tokens(apply_repetition_penalty_(scores, seen, 1.2), SETTINGS)


def test_hf_warper_chain(benchmark, step_inputs):
    scores, seen = step_inputs
    tokens = benchmark(lambda: hf_step(scores.clone(), seen))
    assert tokens.shape == (scores.shape[0],)


def test_fast_sampler(benchmark, step_inputs):
    scores, seen = step_inputs
    tokens = benchmark(lambda: fast_step(scores.clone(), seen))
    assert tokens.shape == (scores.shape[0],)
