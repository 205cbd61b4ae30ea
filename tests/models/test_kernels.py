"""The BLOOM kernel patches are applied once per model: by the loaders, and by the Predictor and the PPO trainer only
for a model handed in that no loader patched."""
from __future__ import annotations

import collections

import pytest
import torch
from transformers import AutoModelForCausalLM

from easynlp_bp.models import kernels
from easynlp_bp.models.kernels import PATCHED_MARKER, use_fused_kernels


def kernel_types(model) -> set[str]:
    """Class names of the GeLU and attention modules of ``model``."""
    return {type(m).__name__ for m in model.modules() if type(m).__name__ in
            {"BloomGelu", "GELU", "BloomAttention", "SdpaBloomAttention"}}


@pytest.fixture
def patch_calls(monkeypatch):
    """How often each model (by id) had its GeLU fused: 1 for every model means no double patching."""
    calls = collections.Counter()
    original = kernels.fuse_bloom_gelu

    def counting(model):
        calls[id(model)] += 1
        return original(model)

    monkeypatch.setattr(kernels, "fuse_bloom_gelu", counting)
    return calls


def test_both_patches_once_then_a_no_op(tiny_bloom, patch_calls):
    assert kernel_types(tiny_bloom) == {"BloomGelu", "BloomAttention"}
    assert use_fused_kernels(tiny_bloom) is True
    assert kernel_types(tiny_bloom) == {"GELU", "SdpaBloomAttention"} and getattr(tiny_bloom, PATCHED_MARKER)
    assert use_fused_kernels(tiny_bloom) is False
    assert patch_calls[id(tiny_bloom)] == 1


def test_loading_twice_patches_each_model_once(tiny_model_dir, patch_calls):
    from easynlp_bp.models.causal_lm import BeautifulPromptModel

    first = BeautifulPromptModel.from_pretrained(str(tiny_model_dir)).model
    second = BeautifulPromptModel.from_pretrained(str(tiny_model_dir)).model
    assert kernel_types(first) == kernel_types(second) == {"GELU", "SdpaBloomAttention"}
    assert patch_calls[id(first)] == patch_calls[id(second)] == 1


def test_predictor_and_ppo_trainer_do_not_patch_a_loaded_model_again(tiny_model_dir, patch_calls):
    from easynlp_bp.models.causal_lm import BeautifulPromptModel
    from easynlp_bp.ppo.config import PPOConfig
    from easynlp_bp.ppo.trainer import PPOTrainer
    from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

    bp = BeautifulPromptModel.from_pretrained(str(tiny_model_dir))
    BeautifulPromptPredictor(None, PredictorParams(device="cpu"), model=bp.model, tokenizer=bp.tokenizer)
    PPOTrainer(bp.model, None, lambda raw, prompts, refs: torch.zeros(len(prompts)), bp.tokenizer,
               PPOConfig(num_rollouts=2, chunk_size=2, mini_batch_size=2, max_new_tokens=2, num_layers_unfrozen=1))
    assert patch_calls[id(bp.model)] == 1
    assert kernel_types(bp.model) == {"GELU", "SdpaBloomAttention"}


def test_a_model_handed_in_unpatched_is_patched_where_it_enters(tiny_model_dir, patch_calls):
    from easynlp_bp.models.causal_lm import BeautifulPromptModel
    from easynlp_bp.models.reward_model import RewardModel
    from easynlp_bp.ppo.config import PPOConfig
    from easynlp_bp.ppo.trainer import PPOTrainer
    from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

    tokenizer = BeautifulPromptModel.from_pretrained(str(tiny_model_dir)).tokenizer
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert kernel_types(plain) == {"BloomGelu", "BloomAttention"}  # transformers' own, as saved
    BeautifulPromptPredictor(None, PredictorParams(device="cpu"), model=plain, tokenizer=tokenizer)
    assert kernel_types(plain) == {"GELU", "SdpaBloomAttention"}
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trainer = PPOTrainer(policy, None, lambda raw, prompts, refs: torch.zeros(len(prompts)), tokenizer,
                         PPOConfig(num_rollouts=2, chunk_size=2, mini_batch_size=2, max_new_tokens=2,
                                   num_layers_unfrozen=1))
    assert kernel_types(trainer.unwrapped) == {"GELU", "SdpaBloomAttention"}
    assert patch_calls[id(plain)] == patch_calls[id(policy)] == 1
    rm = RewardModel.from_pretrained(str(tiny_model_dir), reward_type="aesthetic")
    assert kernel_types(rm.model) == {"GELU", "SdpaBloomAttention"} and patch_calls[id(rm.model)] == 1
