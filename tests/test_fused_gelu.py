"""BLOOM's GeLU swapped for torch's fused kernel: same outputs and gradients, same saved model, applied everywhere."""
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


def test_project_loaders_and_trainers_fuse(tmp_path):
    from easynlp_bp.models.causal_lm import BeautifulPromptModel
    from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams
    from easynlp_bp.ppo.config import PPOConfig
    from easynlp_bp.ppo.trainer import PPOTrainer
    from easynlp_bp.models.reward_model import RewardModel

    texts = ["a cat, highly detailed, 8k"] * 40

    def gelu_types(model):
        return {type(m).__name__ for m in model.modules() if "Gelu" in type(m).__name__ or "GELU" in type(m).__name__}

    bp = BeautifulPromptModel.from_pretrained("tiny-bloom-bp", train_texts=texts)
    assert gelu_types(bp.model) == {"GELU"}
    bp.save_pretrained(tmp_path / "sft")
    assert gelu_types(RewardModel.from_pretrained("tiny-bloom-bp", reward_type="aesthetic", train_texts=texts).model) == {"GELU"}
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "sft")
    assert gelu_types(plain) == {"BloomGelu"}
    BeautifulPromptPredictor(None, PredictorParams(device="cpu"), model=plain, tokenizer=bp.tokenizer)
    assert gelu_types(plain) == {"GELU"}
    policy = AutoModelForCausalLM.from_pretrained(tmp_path / "sft")
    trainer = PPOTrainer(policy, None, lambda raw, prompts, refs: torch.zeros(len(prompts)), bp.tokenizer,
                         PPOConfig(num_rollouts=2, chunk_size=2, mini_batch_size=2, max_new_tokens=2,
                                   num_layers_unfrozen=2))
    assert gelu_types(trainer.unwrapped) == {"GELU"} and gelu_types(trainer.reference) == {"GELU"}
