"""BLOOM attention through one fused SDPA kernel in no-cache forwards: same logits and gradients up to float noise,
transformers' own code (hence generate's exact tokens) in cached decoding, kept by deepcopy, a no-op elsewhere."""
from __future__ import annotations

import copy

import torch
from transformers import BloomConfig, BloomForCausalLM, GPT2Config, GPT2LMHeadModel

from easynlp_bp.models.bloom_sdpa import use_sdpa_bloom_attention


def tiny_bloom(seed: int = 0) -> BloomForCausalLM:
    torch.manual_seed(seed)
    return BloomForCausalLM(BloomConfig(hidden_size=32, n_layer=3, n_head=4, vocab_size=120)).eval()


def padded_batch():
    ids = torch.randint(3, 120, (4, 17), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0  # left padding
    mask[1, 14:] = 0  # right padding (after a response's EOS)
    return ids, mask


def test_fused_attention_matches_the_original_logits_and_gradients():
    original = tiny_bloom()
    fused = copy.deepcopy(original)
    assert use_sdpa_bloom_attention(fused) == 3 and use_sdpa_bloom_attention(fused) == 0
    ids, mask = padded_batch()
    logits, grads = [], []
    for model in (original, fused):
        out = model(input_ids=ids, attention_mask=mask, use_cache=False)
        (out.logits.log_softmax(-1)[mask.bool()].mean()).backward()
        logits.append(out.logits.detach())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    real = mask.bool()
    torch.testing.assert_close(logits[1][real], logits[0][real], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)
    assert grads[0].abs().sum() > 0


def test_the_fused_path_runs_where_it_should():
    fused = tiny_bloom()
    use_sdpa_bloom_attention(fused)
    calls = []
    original_sdpa = torch.nn.functional.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return original_sdpa(*args, **kwargs)

    ids, mask = padded_batch()
    torch.nn.functional.scaled_dot_product_attention = counting
    try:
        fused(input_ids=ids, attention_mask=mask, use_cache=False)
        assert len(calls) == 3  # one per layer
        fused(input_ids=ids, attention_mask=mask, use_cache=True)
        assert len(calls) == 3  # a forward that fills a cache runs transformers' own attention
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused(input_ids=ids, attention_mask=mask, use_cache=False)
        assert len(calls) == 3  # under autocast (bf16 SFT on CPU) the bf16 q/k/v and fp32 bias run slower fused
    finally:
        torch.nn.functional.scaled_dot_product_attention = original_sdpa


def test_generate_keeps_its_exact_tokens_and_copies_keep_the_switch():
    original = tiny_bloom(seed=1)
    fused = copy.deepcopy(original)
    use_sdpa_bloom_attention(fused)
    assert type(copy.deepcopy(fused).transformer.h[0].self_attention).__name__ == "SdpaBloomAttention"
    ids, mask = padded_batch()
    outputs = []
    for model in (original, fused):
        torch.manual_seed(0)
        outputs.append(model.generate(input_ids=ids[:, :10], attention_mask=mask[:, :10], do_sample=True, top_k=0,
                                      max_new_tokens=8, pad_token_id=0, eos_token_id=2))
    assert torch.equal(outputs[0], outputs[1])


def test_other_models_are_untouched():
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=50))
    assert use_sdpa_bloom_attention(gpt2) == 0


def test_last_positions_only_gives_the_full_forwards_last_logits_and_values():
    """With ``logits_to_keep=K`` the last layer computes only the last K positions (queries; keys and values of
    all): the logits and values read there are the full forward's, for the policy and the reference."""
    from easynlp_bp.models.bloom_sdpa import last_positions_only
    from easynlp_bp.ppo.value_head import PolicyWithValueHead, ReferenceModel

    ids, mask = padded_batch()
    fused = tiny_bloom(seed=2)
    use_sdpa_bloom_attention(fused)
    policy = PolicyWithValueHead(fused)
    torch.nn.init.normal_(policy.value_head.weight, std=0.5)
    full_logits, full_values = policy(ids, mask)
    with last_positions_only(policy.decoder_layers, 6) as active:
        assert active
        hidden = fused(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=6,
                       output_hidden_states=True).hidden_states
    assert hidden[-1].shape[1] == 6 and hidden[-2].shape[1] == 17  # only the last layer was cut
    assert not hasattr(policy.decoder_layers[-1].self_attention, "keep_last")  # and restored
    logits, values = policy(ids, mask, logits_to_keep=6)
    torch.testing.assert_close(logits, full_logits[:, -6:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(values, full_values[:, -6:], rtol=1e-5, atol=1e-5)
    reference = ReferenceModel(copy.deepcopy(fused))
    torch.testing.assert_close(reference(ids, mask, logits_to_keep=6), full_logits[:, -6:], rtol=1e-5, atol=1e-5)
    with last_positions_only(PolicyWithValueHead(tiny_bloom()).decoder_layers, 6) as active:
        assert not active  # transformers' own attention: nothing to cut
