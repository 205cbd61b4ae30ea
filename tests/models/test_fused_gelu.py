"""BLOOM's GeLU swapped for torch's fused kernel: same outputs and gradients, same saved model (where it is applied:
tests/models/test_kernels.py)."""
from __future__ import annotations

import copy
import json

import torch
from transformers import AutoModelForCausalLM, BloomConfig, BloomForCausalLM, GPT2Config, GPT2LMHeadModel

from easynlp_bp.models.fused_gelu import fuse_bloom_gelu


def tiny_bloom(seed: int = 0) -> BloomForCausalLM:
    torch.manual_seed(seed)
    return BloomForCausalLM(BloomConfig(hidden_size=32, n_layer=3, n_head=4, vocab_size=120))


def test_fused_model_matches_the_original_outputs_and_gradients():
    original = tiny_bloom()
    fused = copy.deepcopy(original)
    assert fuse_bloom_gelu(fused) == 3
    assert all(isinstance(layer.mlp.gelu_impl, torch.nn.GELU) for layer in fused.transformer.h)
    ids = torch.randint(0, 120, (4, 17))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0  # left padding too
    losses = []
    for model in (original, fused):
        out = model(input_ids=ids, attention_mask=mask, labels=ids)
        out.loss.backward()
        losses.append(out.loss)
    torch.testing.assert_close(fused(input_ids=ids, attention_mask=mask).logits,
                               original(input_ids=ids, attention_mask=mask).logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-6, atol=1e-6)
    for (name, p), (_, q) in zip(original.named_parameters(), fused.named_parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_fusing_is_idempotent_and_leaves_other_architectures_alone():
    model = tiny_bloom()
    assert fuse_bloom_gelu(model) == 3 and fuse_bloom_gelu(model) == 0
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=100))
    assert fuse_bloom_gelu(gpt2) == 0


def test_a_saved_fused_model_is_an_ordinary_bloom_directory(tmp_path):
    model = tiny_bloom()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fuse_bloom_gelu(model)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "bloom"
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(reloaded.transformer.h[0].mlp.gelu_impl).__name__ == "BloomGelu"  # transformers' own, as saved
    for key, value in reloaded.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
