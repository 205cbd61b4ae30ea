"""No decoding option reaches the user's words: the n-gram ban and the repetition penalty see only the
generated part (without that, EasyNLP's ``no_repeat_ngram_size=2 num_beams=3`` turned "a cat on a sofa" into
"cc on the sogea", the ban covering the user's text inside the template)."""
from __future__ import annotations

import torch
from transformers import GenerationConfig

from easynlp_bp.prompting.generated_only import GeneratedPartOnly, prompt_safe_generate_kwargs
from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams


def _ngram_banned(kwargs: dict, sequence: list[int], vocab: int = 10) -> set[int]:
    scores = torch.zeros(1, vocab)
    for processor in kwargs.get("logits_processor", []):
        scores = processor(torch.tensor([sequence]), scores)
    return {i for i in range(vocab) if scores[0, i] == float("-inf")}


def test_the_ngram_ban_ignores_the_prompt():
    kwargs = prompt_safe_generate_kwargs({"no_repeat_ngram_size": 2}, prompt_length=3, penalize_prompt=False)
    assert kwargs["no_repeat_ngram_size"] == 0  # generate's own prompt-wide ban is off
    # prompt [5, 6, 5], generated [7, 5]: a prompt-wide ban would forbid 6 after the last 5
    assert _ngram_banned(kwargs, [5, 6, 5, 7, 5]) == set()
    # within the generated part the ban holds: generated [5, 6, 5] forbids 6
    assert _ngram_banned(kwargs, [1, 2, 3, 5, 6, 5]) == {6}


def test_the_models_own_ngram_ban_moves_to_the_generated_part():
    config = GenerationConfig(no_repeat_ngram_size=2)
    kwargs = prompt_safe_generate_kwargs({}, prompt_length=3, penalize_prompt=False, generation_config=config)
    assert kwargs["no_repeat_ngram_size"] == 0
    assert any(isinstance(p, GeneratedPartOnly) for p in kwargs["logits_processor"])
    assert _ngram_banned(kwargs, [5, 6, 5]) == set()


def test_repetition_penalty_skips_the_prompt_unless_asked():
    safe = prompt_safe_generate_kwargs({"repetition_penalty": 2.0}, prompt_length=2, penalize_prompt=False)
    assert safe["repetition_penalty"] == 1.0
    scores = safe["logits_processor"][0](torch.tensor([[4, 5, 6]]), torch.ones(1, 8))
    assert scores[0, 4] == 1.0 and scores[0, 5] == 1.0 and scores[0, 6] == 0.5
    assert prompt_safe_generate_kwargs({"repetition_penalty": 2.0}, 2, penalize_prompt=True) == {
        "repetition_penalty": 2.0}


def test_predictor_generates_with_the_generated_part_ban(tiny_bloom, tiny_tokenizer):
    """The EasyNLP predict line's options reach generate as a generated-part ban, and generation runs."""
    predictor = BeautifulPromptPredictor(
        "unused", PredictorParams(decoding="beam", num_beams=3, num_return_sequences=1, no_repeat_ngram_size=2,
                                   max_length=80, guard=False),
        model=tiny_bloom, tokenizer=tiny_tokenizer)
    seen = []
    real_generate = predictor.model.generate

    def spy(**kwargs):
        seen.append(kwargs)
        return real_generate(**kwargs)

    predictor.model.generate = spy
    outputs = predictor.predict(["a cat on a sofa"])
    assert len(outputs[0]) == 1 and seen
    assert all(call["no_repeat_ngram_size"] == 0 for call in seen)
    assert all(any(isinstance(p, GeneratedPartOnly) for p in call["logits_processor"]) for call in seen)
    prompt_length = seen[0]["input_ids"].shape[1]
    assert [p.prompt_length for p in seen[0]["logits_processor"] if isinstance(p, GeneratedPartOnly)] == [
        prompt_length]
