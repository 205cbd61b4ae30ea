"""PPO trainer on tiny models (checklist P1-P4, N1-N5, U5-U8, K4, K6, R1, R2) and config errors."""
import copy

import pytest
import torch

from conftest import build_tiny_bloom
from easynlp_bp.ppo.config import PPOConfig
from easynlp_bp.ppo.rollout import (
    generate_responses, response_logprobs, response_mask_from_eos,
)
from easynlp_bp.ppo.trainer import PPOTrainer
from easynlp_bp.ppo.value_head import PolicyWithValueHead, build_reference
from easynlp_bp.default.vocabulary import QUALITY

TARGET_WORDS = {w for phrase in QUALITY for w in phrase.split()}


class WordFractionReward:
    """A plain test reward: share of response words in the quality vocabulary, plus a little length (so that
    rollouts of a random model, which rarely hit the vocabulary, still get different rewards); records its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, raw_prompts, prompts, reference_prompts=None):
        self.calls.append((list(raw_prompts), list(prompts), reference_prompts))
        return torch.tensor([sum(w in TARGET_WORDS for w in p.split()) / max(len(p.split()), 1) + 0.01 * len(p)
                             for p in prompts])


ROWS = [{"raw_prompt": r, "prompt": f"{r}, highly detailed, 8k"} for r in
        ["a cat", "1 girl", "a dragon in the snow", "a castle at night", "a fox", "a robot on the moon", "an owl", "a ship"]]


def small_config(**overrides):
    values = dict(num_rollouts=8, chunk_size=4, mini_batch_size=4, ppo_epochs=2, max_new_tokens=12,
                  learning_rate=1e-3, num_layers_unfrozen=1, forward_batch_size=4, total_steps=4, eval_size=4)
    values.update(overrides)
    return PPOConfig(**values)


@pytest.fixture
def trainer(tiny_tokenizer):
    model = build_tiny_bloom(tiny_tokenizer, n_layer=3)
    return PPOTrainer(model, None, WordFractionReward(), tiny_tokenizer, small_config())


# ---------------------------------------------------------------- config and start-up errors
@pytest.mark.parametrize("kwargs,match", [
    (dict(num_rollouts=64, chunk_size=24), r"num_rollouts=64 must be a multiple of chunk_size=24; choose e.g. chunk_size=16"),
    (dict(num_rollouts=16, chunk_size=16, mini_batch_size=5), "multiple of mini_batch_size=5"),
    (dict(mini_batch_size=4, micro_batch_size=3), "multiple of micro_batch_size=3"),
    (dict(num_layers_unfrozen=0), "num_layers_unfrozen=0 must be -1"),
    (dict(kl_target=-1.0), "kl_target=-1.0 must be positive"),
    (dict(temperature=0.0), "temperature=0.0 must be positive"),
    (dict(scale_reward="batch"), "scale_reward='batch'"),
])
def test_bad_config_fails_with_clear_message(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PPOConfig(**kwargs)


def test_num_layers_unfrozen_larger_than_model_fails(tiny_tokenizer):
    with pytest.raises(ValueError, match=r"num_layers_unfrozen=8 is larger than the model's 2 decoder layers"):
        PPOTrainer(build_tiny_bloom(tiny_tokenizer), None, WordFractionReward(), tiny_tokenizer, small_config(num_layers_unfrozen=8))


def test_p1_pad_equal_eos_fails_at_start_up(tiny_tokenizer):
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.pad_token = tokenizer.eos_token
    with pytest.raises(ValueError, match=r"pads with the EOS token"):
        PPOTrainer(build_tiny_bloom(tiny_tokenizer), None, WordFractionReward(), tokenizer, small_config())


# ---------------------------------------------------------------- masks, alignment, log-probs
def test_p4_alignment_hand_made_three_token_example():
    # query of 2 tokens, response of 3: logits at positions 1, 2, 3 predict response tokens 0, 1, 2.
    vocab = 4
    logits = torch.full((1, 5, vocab), -10.0)
    response = torch.tensor([[2, 1, 3]])
    for position, token in zip([1, 2, 3], [2, 1, 3]):
        logits[0, position, token] = 10.0
    logits[0, 4, 0] = 50.0  # the last position predicts beyond the response and must be ignored
    logprobs, _ = response_logprobs(logits, response, query_len=2, temperature=1.0)
    assert logprobs.shape == (1, 3)
    assert torch.all(logprobs > -1e-6)  # each token got ~all the mass from the right position


def test_n1_n4_temperature_and_fp32_log_softmax():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11).to(torch.bfloat16)
    response = torch.randint(0, 11, (2, 3))
    lp, scaled = response_logprobs(logits, response, 3, temperature=0.7)
    assert lp.dtype == torch.float32 and scaled.dtype == torch.float32
    expected = torch.log_softmax(logits[:, 2:5].float() / 0.7, -1).gather(-1, response.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(lp, expected)


def test_k6_p1_response_mask_from_eos_not_from_pad():
    eos, pad = 2, 3
    ids = torch.tensor([[5, 6, eos, pad, pad], [5, pad, 7, 8, 9], [eos, pad, pad, pad, pad]])
    mask, truncated = response_mask_from_eos(ids, eos)
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert truncated.tolist() == [False, True, False]


def test_p3_padded_and_unpadded_logprobs_agree(tiny_tokenizer):
    model = build_tiny_bloom(tiny_tokenizer)
    policy = PolicyWithValueHead(model)
    ids = torch.tensor([tiny_tokenizer("Input: a cat\nOutput: a cute cat, 8k").input_ids])
    mask = torch.ones_like(ids)
    padded = torch.cat([torch.full((1, 5), tiny_tokenizer.pad_token_id), ids], 1)
    padded_mask = torch.cat([torch.zeros(1, 5, dtype=torch.long), mask], 1)
    with torch.no_grad():
        logits, values = policy(ids, mask)
        plogits, pvalues = policy(padded, padded_mask)
    q = 4
    response = ids[:, q:]
    lp, _ = response_logprobs(logits, response, q, 1.0)
    plp, _ = response_logprobs(plogits, response, q + 5, 1.0)
    assert torch.allclose(lp, plp, atol=1e-5)
    assert torch.allclose(values, pvalues[:, 5:], atol=1e-5)


def test_n5_dropout_off_in_both_passes(tiny_tokenizer):
    from transformers import BloomConfig, BloomForCausalLM

    config = BloomConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, n_layer=2, n_head=4,
                         hidden_dropout=0.5, attention_dropout=0.5)
    policy = PolicyWithValueHead(BloomForCausalLM(config), num_layers_unfrozen=1)
    reference = build_reference(policy)
    policy.train()  # cannot switch dropout back on
    reference.train()
    ids = torch.randint(5, 100, (2, 9))
    mask = torch.ones_like(ids)
    assert torch.equal(policy(ids, mask)[0], policy(ids, mask)[0])
    assert torch.equal(reference(ids, mask), reference(ids, mask))
    assert not policy.training and not reference.training


def test_u7_value_head_starts_at_zero_and_u8_trunk_is_shared_and_frozen(tiny_tokenizer):
    model = build_tiny_bloom(tiny_tokenizer, n_layer=3)
    policy = PolicyWithValueHead(model, num_layers_unfrozen=1)
    reference = build_reference(policy)
    _, values = policy(torch.randint(5, 100, (1, 7)), torch.ones(1, 7, dtype=torch.long))
    assert torch.all(values == 0)
    h_policy, h_ref = policy.base.transformer.h, reference.base.transformer.h
    assert h_ref[0] is h_policy[0] and h_ref[1] is h_policy[1]  # shared trunk, no second copy
    assert h_ref[2] is not h_policy[2]  # the trained top layer has its own frozen copy
    emb = policy.base.get_input_embeddings().weight
    assert reference.base.get_output_embeddings().weight.data_ptr() == emb.data_ptr()  # tied head shared
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("base.transformer.h.2.", "base.transformer.ln_f", "value_head")) for n in trainable)
    assert not any(p.requires_grad for p in reference.parameters())


# ---------------------------------------------------------------- one PPO step
def test_step_order_first_ratio_is_one_and_kl_updates_once(trainer):
    reward = trainer.reward_fn
    frozen_before = {n: p.detach().clone() for n, p in trainer.unwrapped.named_parameters() if not p.requires_grad}
    trained_before = {n: p.detach().clone() for n, p in trainer.unwrapped.named_parameters() if p.requires_grad}
    beta = trainer.kl_ctl.value
    stats = trainer.step(ROWS)
    c = trainer.config
    # N1/N3: old log-probs recomputed with the training forward -> ratio 1, approx-KL 0 at the first minibatch
    assert stats["policy/first_ratio_max_dev"] < 1e-4
    assert abs(stats["policy/first_approx_kl"]) < 1e-7
    # U5: one optimizer step per minibatch per epoch
    assert trainer.global_step == c.ppo_epochs * c.num_rollouts // c.mini_batch_size == 4
    # K4: β updated exactly once, with the rollout-time per-sequence KL and n_steps = episodes
    err = min(max(stats["kl/observed"] / c.kl_target - 1, -0.2), 0.2)
    assert stats["kl/coef"] == beta
    assert trainer.kl_ctl.value == pytest.approx(beta * (1 + err * c.num_rollouts / c.kl_horizon))
    # U8: the trunk did not move, the trainable top did
    for n, p in trainer.unwrapped.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n]), n
    assert any(not torch.equal(p, trained_before[n]) for n, p in trainer.unwrapped.named_parameters() if n in trained_before)
    # R1/R2: the reward saw plain text (no template, no special tokens) and the reference prompts
    raw, prompts, refs = reward.calls[0]
    assert raw == [r["raw_prompt"] for r in ROWS] and refs == [r["prompt"] for r in ROWS]
    assert not any("Output:" in p or tiny_tokenizer_specials(trainer) & set(p.split()) for p in prompts)
    for key in ("reward/score_mean", "kl/observed", "kl/coef", "loss/policy", "loss/value", "policy/entropy",
                "policy/approx_kl", "policy/clipfrac", "value/clipfrac", "value/explained_variance",
                "rollout/response_length", "rollout/truncated_rate", "time/generate", "time/score",
                "time/forward_ref_value", "time/update"):
        assert key in stats and stats[key] == stats[key], key  # present and not NaN
    assert 0 <= stats["rollout/truncated_rate"] <= 1


def tiny_tokenizer_specials(trainer):
    return {trainer.tokenizer.eos_token, trainer.tokenizer.pad_token}


def test_u8_reference_logprobs_unchanged_across_steps(trainer):
    batch = generate_responses(trainer.unwrapped.base, trainer.tokenizer, [r["raw_prompt"] for r in ROWS[:4]],
                               chunk_size=4, max_new_tokens=8, temperature=1.0, top_k=0, top_p=1.0, device=torch.device("cpu"))
    ids, mask = batch.input_ids()
    before = trainer.reference(ids, mask)
    policy_before = trainer.policy(ids, mask)[0].detach()
    trainer.step(ROWS)
    trainer.step(ROWS)
    assert torch.equal(trainer.reference(ids, mask), before)
    assert not torch.equal(trainer.policy(ids, mask)[0].detach(), policy_before)


def test_u6_gradient_independent_of_micro_batch_size(tiny_tokenizer):
    grads = []
    for micro in (4, 2, 1):
        model = build_tiny_bloom(tiny_tokenizer, n_layer=2, seed=3)
        torch.manual_seed(0)
        trainer = PPOTrainer(model, None, WordFractionReward(), tiny_tokenizer,
                             small_config(micro_batch_size=micro, num_layers_unfrozen=-1))
        batch, _ = trainer.rollout(ROWS)
        # a non-trivial value head and advantages so that every loss term has a gradient
        torch.nn.init.normal_(trainer.unwrapped.value_head.weight, std=0.1)
        advantages = torch.randn(batch.logprobs.shape, generator=torch.Generator().manual_seed(1)) * batch.response_mask
        returns = torch.randn(batch.logprobs.shape, generator=torch.Generator().manual_seed(2)) * batch.response_mask
        trainer.accumulate_gradients(batch, torch.tensor([0, 3, 5, 6]), advantages, returns)
        grads.append(torch.cat([p.grad.flatten() for p in trainer.trainable_params if p.grad is not None]))
        if micro == 4:
            assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-6, rtol=1e-4)
    assert torch.allclose(grads[0], grads[2], atol=1e-6, rtol=1e-4)


def test_n2_rollouts_ignore_the_models_distorting_generation_defaults(tiny_tokenizer):
    model = build_tiny_bloom(tiny_tokenizer)
    model.generation_config.top_k = 3
    model.generation_config.repetition_penalty = 5.0
    torch.manual_seed(0)
    batch = generate_responses(model, tiny_tokenizer, ["a cat"] * 64, chunk_size=64, max_new_tokens=1,
                               temperature=1.0, top_k=0, top_p=1.0, device=torch.device("cpu"))
    assert len(set(batch.response_ids[:, 0].tolist())) > 3  # top_k=3 from the model was not applied


def test_k6_truncation_penalty_lowers_truncated_scores(tiny_tokenizer):
    model = build_tiny_bloom(tiny_tokenizer)
    trainer = PPOTrainer(model, None, WordFractionReward(), tiny_tokenizer,
                         small_config(truncated_penalty=1.0, scale_reward="none", num_layers_unfrozen=-1))
    scores = trainer.scale_scores(torch.tensor([0.5, 0.5]), torch.tensor([True, False]))
    assert scores.tolist() == [-0.5, 0.5]


def test_reward_fn_returning_wrong_shape_is_an_error(tiny_tokenizer):
    trainer = PPOTrainer(build_tiny_bloom(tiny_tokenizer), None, lambda r, p, ref: torch.zeros(1), tiny_tokenizer,
                         small_config(num_layers_unfrozen=-1))
    with pytest.raises(ValueError, match="reward_fn returned 1 scores for 8 prompts"):
        trainer.step(ROWS)


def test_u7_optional_value_init_shifts_old_values_consistently(tiny_tokenizer):
    trainer = PPOTrainer(build_tiny_bloom(tiny_tokenizer), None, WordFractionReward(), tiny_tokenizer,
                         small_config(num_layers_unfrozen=-1, init_value_from_scores=True))
    batch, _ = trainer.rollout(ROWS[:8])
    mask = batch.response_mask.float()
    trainer._init_value_bias(-3.5, batch, mask)
    ids, attention = batch.input_ids()
    _, values = trainer.unwrapped(ids, attention)
    Q = batch.query_ids.shape[1]
    recomputed = values[:, Q - 1 : Q - 1 + batch.response_ids.shape[1]] * mask
    assert torch.allclose(recomputed, batch.values, atol=1e-6)
    assert torch.all(batch.values[mask.bool()] == -3.5)


def test_rollout_sampling_is_generate_token_for_token(tiny_tokenizer):
    """top_k 0 / top_p 1 rollouts use the project's KV-cache loop; under one seed they are HF generate's tokens."""
    from transformers import GenerationConfig

    from easynlp_bp.ppo.rollout import chunk_sampler, left_pad
    from easynlp_bp.text.template import build_prompt

    model = build_tiny_bloom(tiny_tokenizer, seed=4)
    encoded = [tiny_tokenizer(build_prompt(r["raw_prompt"]), add_special_tokens=False).input_ids for r in ROWS[:4]]
    ids, mask = left_pad(encoded, tiny_tokenizer.pad_token_id)
    sample = chunk_sampler(model, tiny_tokenizer, max_new_tokens=16, temperature=1.0, top_k=0, top_p=1.0)
    config = GenerationConfig(do_sample=True, top_k=0, top_p=1.0, max_new_tokens=16, pad_token_id=tiny_tokenizer.pad_token_id,
                              eos_token_id=tiny_tokenizer.eos_token_id)
    assert sample.__name__ == "<lambda>"  # the fast path, not the generate fallback
    for seed in (0, 1):
        torch.manual_seed(seed)
        ours = sample(ids, mask)
        torch.manual_seed(seed)
        reference = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, ids.shape[1]:]
        assert torch.equal(ours, reference)
    assert chunk_sampler(model, tiny_tokenizer, max_new_tokens=4, temperature=1.0, top_k=5, top_p=1.0).__name__ == "generate"


def batch_with_ragged_responses(trainer):
    """A rollout whose responses end at different positions (EOS written in), queries of different lengths."""
    from easynlp_bp.ppo.rollout import score_logprobs_and_values

    batch, _ = trainer.rollout(ROWS)
    eos, pad = trainer.tokenizer.eos_token_id, trainer.tokenizer.pad_token_id
    ids = batch.response_ids.clone()
    for row, end in enumerate([2, 5, 3, 11, 1, 7, 4, 6]):
        ids[row, end] = eos
    batch.response_mask, batch.truncated = response_mask_from_eos(ids, eos)
    batch.response_ids = torch.where(batch.response_mask.bool(), ids, torch.full_like(ids, pad))
    score_logprobs_and_values(trainer.unwrapped, trainer.reference, batch, temperature=trainer.config.temperature,
                              forward_batch_size=trainer.config.forward_batch_size, device=torch.device("cpu"),
                              reuse_trunk=trainer.reuse_trunk)
    return batch


@pytest.mark.parametrize("num_layers_unfrozen", [-1, 1])
def test_forwards_on_real_columns_equal_full_width_forwards(tiny_tokenizer, monkeypatch, num_layers_unfrozen):
    """Scoring and update forwards skip the columns that are padding for all their rows; the log-probs, values,
    reference log-probs and gradients are those of full-width forwards up to float noise."""
    from easynlp_bp.ppo.rollout import RolloutBatch

    torch.manual_seed(0)
    trainer = PPOTrainer(build_tiny_bloom(tiny_tokenizer, seed=5), None, WordFractionReward(), tiny_tokenizer,
                         small_config(num_layers_unfrozen=num_layers_unfrozen, forward_batch_size=2, temperature=0.8))
    torch.nn.init.normal_(trainer.unwrapped.value_head.weight, std=0.1)
    batch = batch_with_ragged_responses(trainer)
    Q, R = batch.query_ids.shape[1], batch.response_ids.shape[1]
    index = torch.tensor([4, 0, 6])  # short queries, EOS at 1, 2 and 4
    start, r = batch.real_columns(index)
    assert start > 0 and r == 5  # these rows really are trimmed on both sides
    ids, attention = batch.input_ids()
    mask = batch.response_mask.float()
    logits, values = trainer.unwrapped(ids, attention)
    torch.testing.assert_close(batch.logprobs, response_logprobs(logits, batch.response_ids, Q, 0.8)[0] * mask,
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batch.values, values[:, Q - 1 : Q + R - 1] * mask, rtol=1e-5, atol=1e-5)
    ref = response_logprobs(trainer.reference(ids, attention), batch.response_ids, Q, 0.8)[0] * mask
    torch.testing.assert_close(batch.ref_logprobs, ref, rtol=1e-5, atol=1e-5)
    advantages = torch.randn(mask.shape, generator=torch.Generator().manual_seed(1)) * mask
    returns = torch.randn(mask.shape, generator=torch.Generator().manual_seed(2)) * mask
    grads, losses = [], []
    for trim in (True, False):
        if not trim:
            monkeypatch.setattr(RolloutBatch, "real_columns", lambda self, index: (0, R))
        trainer.optimizer.zero_grad(set_to_none=True)
        stats = trainer.accumulate_gradients(batch, index, advantages, returns)
        losses.append(torch.tensor([stats["loss/policy"], stats["loss/value"], stats["policy/entropy"]]))
        grads.append(torch.cat([p.grad.flatten() for p in trainer.trainable_params if p.grad is not None]))
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_rewards_flattened_by_the_clip_are_reported(tiny_tokenizer, caplog):
    """A policy far from its reference prompts gets deltas that are all the same many-std offset; the ±10 clip
    then makes them identical. The run says so (metric and one warning) instead of silently learning nothing."""
    trainer = PPOTrainer(build_tiny_bloom(tiny_tokenizer), None, WordFractionReward(), tiny_tokenizer,
                         small_config(num_layers_unfrozen=-1, cliprange_reward=10.0))
    offset = torch.tensor([-3.4, -3.5, -3.3, -3.45, -3.38, -3.42, -3.36, -3.5])  # std ~0.07: ~-50 std each
    with caplog.at_level("WARNING", logger="easynlp_bp.ppo.trainer"):
        scores = trainer.scale_scores(offset, torch.zeros(8, dtype=torch.bool))
        trainer.scale_scores(offset, torch.zeros(8, dtype=torch.bool))
    assert scores.tolist() == [-10.0] * 8
    assert sum("hit cliprange_reward=10" in r.getMessage() for r in caplog.records) == 1
    spread = PPOTrainer(build_tiny_bloom(tiny_tokenizer), None, WordFractionReward(), tiny_tokenizer,
                        small_config(num_layers_unfrozen=-1, cliprange_reward=10.0))
    with caplog.at_level("WARNING", logger="easynlp_bp.ppo.trainer"):
        caplog.clear()
        spread.scale_scores(torch.linspace(-1, 1, 8), torch.zeros(8, dtype=torch.bool))
    assert not caplog.records
    # the metric a run logs: every rollout of a flat far-off reward is clipped
    flat = PPOTrainer(build_tiny_bloom(tiny_tokenizer), None,
                      lambda raws, prompts, refs: -3.4 + 1e-3 * torch.arange(len(prompts), dtype=torch.float32),
                      tiny_tokenizer, small_config(num_layers_unfrozen=-1, cliprange_reward=10.0))
    assert flat.step(ROWS)["reward/clipped_rate"] == 1.0


def test_group_size_answers_each_prompt_several_times_and_scores_against_its_siblings(tiny_tokenizer):
    reward = WordFractionReward()
    trainer = PPOTrainer(build_tiny_bloom(tiny_tokenizer), None, reward, tiny_tokenizer,
                         small_config(group_size=4, scale_reward="none", num_layers_unfrozen=-1))
    with pytest.raises(ValueError, match="takes num_rollouts / group_size = 2 prompt rows; got 8"):
        trainer.step(ROWS)
    trainer.step(ROWS[:2])
    raw_prompts, prompts, _ = reward.calls[0]
    assert raw_prompts == ["a cat"] * 4 + ["1 girl"] * 4
    scores = reward(raw_prompts, prompts)
    scaled = trainer.scale_scores(scores, torch.zeros(8, dtype=torch.bool))
    # every score minus the mean of its three siblings: each group sums to zero, offsets between prompts are gone
    assert torch.allclose(scaled.reshape(2, 4).sum(1), torch.zeros(2), atol=1e-6)
    assert torch.allclose(scaled[0], scores[0] - scores[1:4].mean(), atol=1e-6)


def test_group_size_must_divide_num_rollouts():
    with pytest.raises(ValueError, match="num_rollouts=8 must be a multiple of group_size=3"):
        small_config(group_size=3)
