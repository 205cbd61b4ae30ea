"""The fast sampler keeps HF's distribution: same candidates and probabilities as HF's warper chain, same
repetition penalty, HF's own warpers on tied rows, and the same tokens as ``generate`` when sampling is
deterministic (top_k=1) on a left-padded batch with several return sequences."""
from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from easynlp_bp.prompting.sampling import (
    SamplingSettings,
    apply_repetition_penalty_,
    sample_next_tokens,
    sample_sequences,
    top_k_top_p_candidates,
)


def hf_chain(scores, temperature, top_k, top_p):
    warped = TemperatureLogitsWarper(temperature)(None, scores)
    warped = TopKLogitsWarper(top_k)(None, warped)
    return TopPLogitsWarper(top_p)(None, warped)


def test_candidates_and_probabilities_equal_hf_top_k_then_top_p():
    torch.manual_seed(0)
    scores = torch.randn(256, 5000) * 3
    for temperature, top_k, top_p in [(1.0, 50, 0.95), (0.7, 50, 0.9), (1.3, 20, 0.5), (1.0, 50, 1.0)]:
        hf = hf_chain(scores, temperature, top_k, top_p)
        logits, ids, exact = top_k_top_p_candidates(scores, top_k, top_p, temperature)
        assert bool(exact.all())
        hf_probs = hf.softmax(-1)
        kept = torch.zeros_like(hf, dtype=torch.bool).scatter_(1, ids, torch.isfinite(logits))
        assert torch.equal(kept, torch.isfinite(hf))  # the same tokens survive in every row
        ours = torch.zeros_like(hf_probs).scatter_(1, ids, logits.softmax(-1))
        torch.testing.assert_close(ours, hf_probs, rtol=1e-5, atol=1e-7)
        if top_p < 1:
            assert int(kept.sum(-1).min()) < top_k  # top-p really cut something


def test_repetition_penalty_equals_hf():
    torch.manual_seed(1)
    scores = torch.randn(8, 300)
    seen = torch.randint(0, 300, (8, 40))  # duplicates included
    expected = RepetitionPenaltyLogitsProcessor(1.2)(seen, scores.clone())
    assert torch.equal(apply_repetition_penalty_(scores.clone(), seen, 1.2), expected)


def test_ties_at_the_cut_use_hf_warpers():
    scores = torch.full((2, 100), -5.0)
    scores[0, :60] = 1.0  # 60 tokens tied at the top-k cut: HF keeps all of them
    scores[1] = torch.arange(100.0) * 0.1  # distinct values: the fast path
    _, _, exact = top_k_top_p_candidates(scores, 50, 0.95, 1.0)
    assert exact.tolist() == [False, True]
    torch.manual_seed(0)
    settings = SamplingSettings(max_new_tokens=1, top_k=50, top_p=0.95)
    draws = torch.stack([sample_next_tokens(scores, settings) for _ in range(300)])
    assert int(draws[:, 0].max()) >= 50  # tokens beyond the first k tied ones are drawn, as in HF
    assert int(draws[:, 1].min()) >= 50  # only the top 50 of row 1 can be drawn


def test_top_k_1_sampling_equals_generate_on_a_padded_batch(tiny_tokenizer, tiny_bloom):
    tiny_tokenizer.padding_side = "left"
    batch = tiny_tokenizer(["a cat on a sofa, highly detailed", "1 girl"], return_tensors="pt", padding=True)
    settings = SamplingSettings(max_new_tokens=12, top_k=1, top_p=0.9, repetition_penalty=1.2, num_return_sequences=2,
                                pad_token_id=tiny_tokenizer.pad_token_id, eos_token_id=tiny_tokenizer.eos_token_id)
    ours = sample_sequences(tiny_bloom, batch["input_ids"], batch["attention_mask"], settings)
    reference = tiny_bloom.generate(**batch, do_sample=True, top_k=1, top_p=0.9, repetition_penalty=1.2,
                                    num_return_sequences=2, max_new_tokens=12, pad_token_id=settings.pad_token_id,
                                    eos_token_id=settings.eos_token_id)
    reference = reference[:, batch["input_ids"].shape[1]:]
    assert ours.shape[0] == 4
    assert torch.equal(ours, reference[:, : ours.shape[1]])
    assert bool((reference[:, ours.shape[1]:] == settings.pad_token_id).all())


def test_penalize_prompt_false_penalises_only_sampled_tokens_as_hf_prompt_ignore_length(tiny_tokenizer, tiny_bloom):
    """With ``penalize_prompt=False`` the repetition penalty skips the prompt (copying the user's
    words is not penalised), exactly as HF's processor with ``prompt_ignore_length`` does."""
    from transformers import LogitsProcessorList

    tiny_tokenizer.padding_side = "left"
    batch = tiny_tokenizer(["a cat on a sofa, highly detailed", "1 girl"], return_tensors="pt", padding=True)
    width = batch["input_ids"].shape[1]
    common = dict(max_new_tokens=10, top_k=1, top_p=1.0, repetition_penalty=1e9, num_return_sequences=1,
                  pad_token_id=tiny_tokenizer.pad_token_id, eos_token_id=tiny_tokenizer.eos_token_id)
    free = sample_sequences(tiny_bloom, batch["input_ids"], batch["attention_mask"],
                            SamplingSettings(**common, penalize_prompt=False))
    penalised = sample_sequences(tiny_bloom, batch["input_ids"], batch["attention_mask"], SamplingSettings(**common))
    with torch.no_grad():
        first_choice = tiny_bloom(**batch).logits[:, -1].argmax(-1)
    assert torch.equal(free[:, 0], first_choice)  # nothing is penalised before the model has written anything
    for row in range(2):  # with the prompt counted, no prompt token can come first under a huge penalty
        assert int(penalised[row, 0]) not in batch["input_ids"][row].tolist()
    processor = RepetitionPenaltyLogitsProcessor(1e9, prompt_ignore_length=width)
    reference = tiny_bloom.generate(**batch, do_sample=True, top_k=1, max_new_tokens=10,
                                    logits_processor=LogitsProcessorList([processor]),
                                    pad_token_id=common["pad_token_id"], eos_token_id=common["eos_token_id"])
    reference = reference[:, width:]
    assert torch.equal(free, reference[:, : free.shape[1]])


def test_predictor_penalises_the_prompt_only_when_asked_on_the_generate_path(tiny_tokenizer, tiny_bloom):
    """Greedy decoding goes through HF ``generate``: by default the penalty must skip the prompt there too."""
    from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams
    from easynlp_bp.text.template import build_prompt

    params = PredictorParams(decoding="greedy", num_return_sequences=1, repetition_penalty=1e9, max_new_tokens=1,
                             guard=False)
    predictor = BeautifulPromptPredictor("unused", params, model=tiny_bloom, tokenizer=tiny_tokenizer)
    raw = "a cat on a sofa"
    prompt_ids = tiny_tokenizer(build_prompt(raw), return_tensors="pt")
    with torch.no_grad():
        unpenalised = int(tiny_bloom(**prompt_ids).logits[0, -1].argmax())
    captured = []
    original = predictor._sample_or_generate

    def spy(batch, p, kwargs, seeds):
        out = original(batch, p, kwargs, seeds)
        captured.append(out[:, 0].tolist())
        return out

    predictor._sample_or_generate = spy
    predictor.predict([raw])
    predictor.predict([raw], {"penalize_prompt": True})
    assert captured[0] == [unpenalised]
    assert captured[1][0] not in prompt_ids["input_ids"][0].tolist()

def test_top_k_0_candidates_are_hf_top_p_over_the_whole_vocabulary():
    torch.manual_seed(2)
    scores = torch.randn(64, 300) * 3
    hf = TopPLogitsWarper(0.9)(None, TemperatureLogitsWarper(0.8)(None, scores))
    logits, ids, exact = top_k_top_p_candidates(scores, 0, 0.9, 0.8)
    assert ids.shape == (64, 300) and bool(exact.all())
    ours = torch.zeros_like(hf).scatter_(1, ids, logits.softmax(-1))
    torch.testing.assert_close(ours, hf.softmax(-1), rtol=1e-5, atol=1e-7)


def test_top_k_0_top_p_1_draws_the_same_tokens_as_generate(tiny_tokenizer, tiny_bloom):
    """Pure sampling over the whole vocabulary is HF's own draw: same global seed, same tokens as generate
    (left padding, a temperature, a preallocated cache instead of HF's concatenating one)."""
    tiny_tokenizer.padding_side = "left"
    batch = tiny_tokenizer(["a cat on a sofa, highly detailed", "1 girl", "a castle at night"], return_tensors="pt",
                           padding=True)
    settings = SamplingSettings(max_new_tokens=20, top_k=0, top_p=1.0, temperature=0.7,
                                pad_token_id=tiny_tokenizer.pad_token_id, eos_token_id=tiny_tokenizer.eos_token_id)
    for seed in range(3):
        torch.manual_seed(seed)
        ours = sample_sequences(tiny_bloom, batch["input_ids"], batch["attention_mask"], settings)
        torch.manual_seed(seed)
        reference = tiny_bloom.generate(**batch, do_sample=True, top_k=0, top_p=1.0, temperature=0.7,
                                        max_new_tokens=20, pad_token_id=settings.pad_token_id,
                                        eos_token_id=settings.eos_token_id)
        assert torch.equal(ours, reference[:, batch["input_ids"].shape[1]:])
    assert len(set(ours.flatten().tolist())) > 3  # really sampled, not one repeated token


def test_preallocated_cache_gives_the_logits_of_the_dynamic_cache(tiny_tokenizer, tiny_bloom):
    from transformers import DynamicCache

    from easynlp_bp.prompting.sampling import preallocated_cache

    ids = torch.randint(3, len(tiny_tokenizer), (2, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    logits = []
    for cache in (DynamicCache(), preallocated_cache(9)):
        out = tiny_bloom(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True)
        step_mask = torch.cat([mask, torch.ones(2, 1, dtype=mask.dtype)], dim=1)
        step = tiny_bloom(input_ids=ids[:, -1:], attention_mask=step_mask, past_key_values=out.past_key_values,
                          use_cache=True)
        logits.append(step.logits)
    assert torch.equal(logits[0], logits[1])
    with pytest.raises(ValueError, match="holds 9 positions; 11 were written"):
        tiny_bloom(input_ids=ids[:, :3], attention_mask=mask[:, :3], past_key_values=step.past_key_values, use_cache=True)
