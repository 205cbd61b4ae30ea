"""What PPO trains on is the policy it scores: no generation_config leak into rollouts, float32 master weights
for a half-precision checkpoint, and a recorded trunk whose unfilled positions cannot poison a batch."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import build_tiny_bloom
from easynlp_bp.ppo import rollout as rollout_module
from easynlp_bp.ppo.rollout import chunk_sampler
from easynlp_bp.ppo.trainer import PPOTrainer
from test_ppo_trainer import ROWS, WordFractionReward, small_config


def _rows_repeating_a_token(tokens: torch.Tensor, pad: int) -> int:
    return sum(len(set(r[r != pad].tolist())) < int((r != pad).sum()) for r in tokens)


@pytest.mark.parametrize("top_k", [0, 5], ids=["fast_path", "generate_path"])
def test_rollouts_ignore_the_sft_models_generation_config(tiny_tokenizer, top_k):
    """With no_repeat_ngram_size=1 in the model's config, rollouts still repeat tokens as the policy does."""
    model = build_tiny_bloom(tiny_tokenizer)
    ids = tiny_tokenizer(["a cat"] * 32, return_tensors="pt")


    def sample():
        torch.manual_seed(0)
        sampler = chunk_sampler(model, tiny_tokenizer, max_new_tokens=30, temperature=1.0, top_k=top_k, top_p=1.0)
        return sampler(ids.input_ids, ids.attention_mask)

    clean = _rows_repeating_a_token(sample(), tiny_tokenizer.pad_token_id)
    model.generation_config.no_repeat_ngram_size = 1
    model.generation_config.bad_words_ids = [[tiny_tokenizer.eos_token_id + 1]]
    configured = sample()
    assert clean > 8
    assert _rows_repeating_a_token(configured, tiny_tokenizer.pad_token_id) == clean
    assert model.generation_config.no_repeat_ngram_size == 1  # the model's own config is left as it was


def test_half_precision_checkpoint_trains_float32_master_weights(tiny_tokenizer):
    model = build_tiny_bloom(tiny_tokenizer, n_layer=3).to(torch.bfloat16)
    trainer = PPOTrainer(model, None, WordFractionReward(), tiny_tokenizer, small_config(learning_rate=1e-5))
    assert {p.dtype for p in trainer.trainable_params} == {torch.float32}
    before = [p.detach().clone() for p in trainer.trainable_params]
    torch.manual_seed(0)
    trainer.step(ROWS)
    changed = sum(not torch.equal(b, p) for b, p in zip(before, trainer.trainable_params))
    assert changed >= len(before) // 2  # steps of ~1e-5 survive; in bf16 they round away


def test_a_poisoned_trunk_pad_does_not_poison_the_batch(tiny_tokenizer, monkeypatch):
    """Whatever the recorded trunk holds where it never ran (padding, each row's last sampled token), every
    log-prob, value, loss and parameter stays finite."""
    original = rollout_module.assemble_trunk_hidden

    def poisoned(recorded, new_tokens, query_len, response_len):
        trunk = original(recorded, new_tokens, query_len, response_len)
        if trunk is not None:
            trunk[trunk == 0] = float("nan")  # every position the trunk never computed
        return trunk

    monkeypatch.setattr(rollout_module, "assemble_trunk_hidden", poisoned)
    model = build_tiny_bloom(tiny_tokenizer, n_layer=3)
    trainer = PPOTrainer(model, None, WordFractionReward(), tiny_tokenizer, small_config(num_layers_unfrozen=1))
    assert trainer.reuse_trunk
    torch.manual_seed(0)
    stats = trainer.step(ROWS)
    assert all(math.isfinite(v) for v in stats.values() if isinstance(v, float)), stats
    assert all(torch.isfinite(p).all() for p in trainer.trainable_params)
