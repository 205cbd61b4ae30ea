"""Issue 27: each decoding speed-up computes exactly what it replaced.

The static BLOOM decode step gives bitwise the logits of ``model(...)`` on the same cache; the sampler with it
draws the same tokens as without it (and as ``generate``); the top-k tie check decides as the full-vocabulary
count did; the cache repeat copies the values ``repeat_interleave`` did.
"""
from __future__ import annotations

import pytest
import torch
from transformers import BloomConfig, BloomForCausalLM

from easynlp_bp.prompting import sampling
from easynlp_bp.prompting.bloom_decoding import BloomStaticDecoder, supports_static_bloom_decoding
from easynlp_bp.prompting.sampling import SamplingSettings, preallocated_cache, sample_sequences, top_k_top_p_candidates


def _bloom(post_layernorm: bool = False, seed: int = 0) -> BloomForCausalLM:
    config = BloomConfig(vocab_size=97, hidden_size=32, n_layer=3, n_head=4, hidden_dropout=0.0,
                         attention_dropout=0.0, apply_residual_connection_post_layernorm=post_layernorm)
    torch.manual_seed(seed)
    return BloomForCausalLM(config).eval()


def _padded_prompts(rows: int = 3, width: int = 7):
    ids = torch.randint(3, 97, (rows, width), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding of different lengths
    mask[2, :5] = 0
    return ids, mask


@pytest.mark.parametrize("post_layernorm", [False, True])
def test_static_bloom_step_gives_bitwise_the_logits_of_the_model_forward(post_layernorm):
    model = _bloom(post_layernorm)
    ids, mask = _padded_prompts()
    steps, capacity = 6, ids.shape[1] + 6
    caches = [preallocated_cache(capacity), preallocated_cache(capacity)]
    with torch.no_grad():
        for cache in caches:
            model(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True)
        decoder = BloomStaticDecoder(model, caches[1], mask, capacity)
        tokens, grown = ids[:, -1], mask
        for _ in range(steps):
            tokens = (tokens * 7 + 5) % 97
            grown = torch.cat([grown, torch.ones_like(grown[:, :1])], dim=1)
            reference = model(input_ids=tokens[:, None], attention_mask=grown, past_key_values=caches[0],
                              use_cache=True).logits[:, -1]
            assert torch.equal(decoder.step(tokens), reference)
    with pytest.raises(ValueError, match=f"holds {capacity} positions"):
        decoder.step(tokens)


def test_sampling_with_the_static_step_draws_the_tokens_of_the_model_forward(monkeypatch):
    model = _bloom(seed=3)
    ids, mask = _padded_prompts()
    settings = SamplingSettings(max_new_tokens=12, top_k=0, temperature=0.8, num_return_sequences=2, pad_token_id=0)
    assert supports_static_bloom_decoding(model)
    runs = []
    for static in (True, False):
        monkeypatch.setattr(sampling, "supports_static_bloom_decoding", lambda m, s=static: s)
        torch.manual_seed(5)
        runs.append(sample_sequences(model, ids, mask, settings))
    assert torch.equal(runs[0], runs[1])
    assert len(set(runs[0].flatten().tolist())) > 5


def test_static_step_is_used_only_where_it_is_the_same_forward():
    model = _bloom()
    assert supports_static_bloom_decoding(model)
    assert not supports_static_bloom_decoding(_bloom().train())
    handle = model.transformer.register_forward_hook(lambda *args: None)  # a hook the step would skip
    assert not supports_static_bloom_decoding(model)
    handle.remove()

    class Custom(BloomForCausalLM):
        pass

    assert not supports_static_bloom_decoding(Custom(model.config).eval())


def _tie_count_exact(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The check the sampler made before: every token tied with the k-th is counted."""
    values = torch.topk(scores, k).values
    return (scores >= values[:, -1:]).sum(-1) == k


def test_top_k_tie_check_decides_as_the_full_vocabulary_count():
    torch.manual_seed(0)
    scores = torch.randn(64, 500)
    k = 10
    kth = torch.topk(scores, k).values[:, -1]
    scores[::3, 0] = kth[::3]  # a token tied with the k-th: HF would keep k+1
    scores[1::6, 1] = kth[1::6] - 1e-6  # close below the cut, not tied
    top = torch.topk(scores, 3).values
    scores[2::5, 2] = top[2::5, 1]  # a tie inside the top k: the order of the two is topk(k)'s
    scores[2::5, 3] = top[2::5, 1]
    logits, ids, exact = top_k_top_p_candidates(scores, k, 1.0, 1.0)
    assert torch.equal(exact, _tie_count_exact(scores, k))
    assert int((~exact).sum()) >= 15
    reference = torch.topk(scores, k)
    assert torch.equal(logits, reference.values)
    assert torch.equal(ids[exact], reference.indices[exact])  # rows with a tie at the cut go to HF's warpers
    assert bool(top_k_top_p_candidates(torch.randn(8, 500), 0, 0.9, 1.0)[2].all())  # no cut, no tie: exact


@pytest.mark.parametrize("rows", [3, 1], ids=["batch", "one_prompt"])
def test_cache_repeat_is_repeat_interleave(rows):
    model = _bloom()
    ids, mask = (t[:rows] for t in _padded_prompts())
    cache = preallocated_cache(ids.shape[1] + 2)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True)
    expected = [(layer.key_buffer.repeat_interleave(3, 0), layer.value_buffer.repeat_interleave(3, 0))
                for layer in cache.layers]
    cache.batch_repeat_interleave(3)
    def same_bits(a, b):  # the unfilled tail is uninitialised memory, NaN now and then: compare bits, not values
        return torch.equal(a.view(torch.int32), b.view(torch.int32))

    for layer, (keys, values) in zip(cache.layers, expected):
        assert same_bits(layer.key_buffer, keys) and same_bits(layer.value_buffer, values)
        assert torch.equal(layer.keys, keys[:, :, : ids.shape[1]])
    with torch.no_grad():  # the repeated rows are separate memory: the next step writes each of them
        model(input_ids=torch.ones(rows * 3, 1, dtype=torch.long), attention_mask=torch.ones(rows * 3, ids.shape[1] + 1,
              dtype=torch.long), past_key_values=cache, use_cache=True)
