"""PPO at the trainer's call sites, on rollouts that really end (EOS at varied lengths, so masks pad).

Each test recomputes what the trainer should have passed on (to the KL controller, to the update, to the
reward function) with plain loops written here, independently of easynlp_bp.ppo.advantages, and compares.
Checklist items: K1, K3, K4, P2, P4, N1, N3, U1, U3, U4, U6, reward scaling and clipping, the paper defaults.
"""
from __future__ import annotations

import math

import pytest
import torch

from conftest import build_tiny_bloom
from ppo_policies import ROWS, TextReward, build_eos_policy
from easynlp_bp.ppo import trainer as trainer_module
from easynlp_bp.ppo.config import PPOConfig
from easynlp_bp.ppo.trainer import PPOTrainer

EOS_BIAS = 4.3


def small_config(**overrides) -> PPOConfig:
    values = dict(num_rollouts=8, chunk_size=4, mini_batch_size=4, ppo_epochs=2, max_new_tokens=12,
                  learning_rate=1e-3, num_layers_unfrozen=1, forward_batch_size=4, total_steps=4, eval_size=4)
    values.update(overrides)
    return PPOConfig(**values)


class RecordingKL:
    """Wraps the trainer's KL controller and records every ``update`` call."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    @property
    def value(self):
        return self.inner.value

    def update(self, current_kl, n_steps):
        self.calls.append((current_kl, n_steps))
        self.inner.update(current_kl, n_steps)


def spy_policy_loss(monkeypatch, record):
    """Route the trainer's calls of ``clipped_policy_loss`` through ``record(*args)`` (then the real loss)."""
    from easynlp_bp.ppo import losses

    original = losses.clipped_policy_loss

    def spy(*args, **kwargs):
        record(*args, **kwargs)
        return original(*args, **kwargs)

    for module in (losses, trainer_module):
        if hasattr(module, "clipped_policy_loss"):
            monkeypatch.setattr(module, "clipped_policy_loss", spy)


def make_trainer(tokenizer, reward=None, eos_bias=None, **overrides):
    """Trainer over the EOS policy with a *different* reference model, so the KL is non-zero from step 1."""
    config = small_config(**overrides)
    bias = EOS_BIAS * config.temperature if eos_bias is None else eos_bias  # same P(EOS) at any temperature
    policy = build_eos_policy(tokenizer, eos_bias=bias, seed=0)
    reference = build_eos_policy(tokenizer, eos_bias=bias, seed=7)
    trainer = PPOTrainer(policy, reference, reward or TextReward(), tokenizer, config)
    trainer.kl_ctl = RecordingKL(trainer.kl_ctl)
    trainer.recorded = []  # (batch, advantages, returns, β) for each optimize() call
    original = trainer.optimize

    def recording_optimize(batch, advantages, returns):
        trainer.recorded.append((batch, advantages.clone(), returns.clone(), trainer.kl_ctl.value))
        return original(batch, advantages, returns)

    trainer.optimize = recording_optimize
    return trainer


# ---------------------------------------------------------------- independent reference computations
def lengths_of(mask: torch.Tensor) -> list[int]:
    return [int(m.sum()) for m in mask]


def reference_token_rewards(scores, logprobs, ref_logprobs, mask, beta):
    rewards = torch.zeros_like(logprobs, dtype=torch.float64)
    for b, n in enumerate(lengths_of(mask)):
        for t in range(n):
            rewards[b, t] = -beta * (float(logprobs[b, t]) - float(ref_logprobs[b, t]))
        rewards[b, n - 1] += float(scores[b])  # the score sits on the last real token (EOS or truncation)
    return rewards


def reference_gae(rewards, values, mask, gamma, lam):
    advantages = torch.zeros_like(rewards, dtype=torch.float64)
    for b, n in enumerate(lengths_of(mask)):
        running = 0.0
        for t in reversed(range(n)):
            next_value = float(values[b, t + 1]) if t + 1 < n else 0.0
            delta = float(rewards[b, t]) + gamma * next_value - float(values[b, t])
            running = delta + gamma * lam * running
            advantages[b, t] = running
    returns = (advantages + values.double()) * mask.double()
    return advantages, returns


def reference_whiten(x, mask):
    real = x[mask.bool()]
    mean, var = real.mean(), real.var(unbiased=True)
    return (x - mean) / math.sqrt(float(var) + 1e-8) * mask.double()


def reference_scale(scores, history, config):
    """Divide by the std of every score seen so far (Bessel), then clip at ±cliprange_reward."""
    history.append(scores.double())
    std = torch.cat(history).std(unbiased=True)
    return (scores.double() / std).clamp(-config.cliprange_reward, config.cliprange_reward)


def recompute_forward(model, batch, temperature, value_head=None):
    """log-probs (and values) of the response tokens from a plain forward of cat(query, response)."""
    ids, attention = batch.input_ids()
    Q, R = batch.query_ids.shape[1], batch.response_ids.shape[1]
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=attention, output_hidden_states=True)
    logprobs = torch.zeros(len(batch), R)
    values = torch.zeros(len(batch), R)
    for t in range(R):  # the logit at position Q-1+t predicts response token t
        step = torch.log_softmax(out.logits[:, Q - 1 + t].float() / temperature, dim=-1)
        logprobs[:, t] = step.gather(-1, batch.response_ids[:, t : t + 1]).squeeze(-1)
        if value_head is not None:
            values[:, t] = value_head(out.hidden_states[-1][:, Q - 1 + t]).squeeze(-1)
    mask = batch.response_mask.float()
    return logprobs * mask, values * mask


def assert_real_padding(batch):
    lengths = lengths_of(batch.response_mask)
    R = batch.response_ids.shape[1]
    assert min(lengths) < R, f"no padded response: {lengths}"
    assert (~batch.truncated).sum() >= 2, "fewer than two responses ended with EOS"
    assert len(set(lengths)) >= 3, f"lengths do not vary: {lengths}"


# ---------------------------------------------------------------- the policy really stops
def test_eos_policy_rollouts_end_at_varied_lengths(tiny_tokenizer):
    trainer = make_trainer(tiny_tokenizer)
    batch, _ = trainer.rollout(ROWS)
    assert_real_padding(batch)
    eos, pad = tiny_tokenizer.eos_token_id, tiny_tokenizer.pad_token_id
    for ids, mask, truncated in zip(batch.response_ids, batch.response_mask, batch.truncated):
        n = int(mask.sum())
        assert mask[:n].all() and not mask[n:].any()
        assert (ids[n:] == pad).all()  # pad after the EOS, never a sampled token
        assert (ids[n - 1] == eos) == (not truncated)
        assert (ids[: n - 1] != eos).all()  # the mask ends at the *first* EOS


# ---------------------------------------------------------------- step call site: rewards, GAE, whitening, KL
def test_step_passes_the_reference_advantages_returns_and_kl(tiny_tokenizer):
    """Token rewards (score at the last real token, -β·KL), running-std scaling and clipping, GAE with the
    configured γ and λ (not swapped), returns before whitening, masked whitening, and the controller's input
    (per-sequence KL sum, batch mean; n = episodes) — over two iterations with real padding."""
    trainer = make_trainer(tiny_tokenizer, gamma=0.9, lam=0.8, cliprange_reward=1.0, kl_target=0.05,
                           init_kl_coef=0.2, kl_horizon=100)
    c = trainer.config
    history = []
    clipped_seen = unclipped_seen = 0
    for iteration in range(2):
        with torch.no_grad():  # a non-zero critic (it trains from iteration 2 on anyway)
            torch.nn.init.normal_(trainer.unwrapped.value_head.weight, std=0.5)
        trainer.step(ROWS)
        batch, advantages, returns, beta = trainer.recorded[iteration]
        mask = batch.response_mask.float()
        assert_real_padding(batch)
        scores = reference_scale(batch.scores, history, c)
        clipped_seen += int((scores.abs() == c.cliprange_reward).sum())
        unclipped_seen += int((scores.abs() < c.cliprange_reward).sum())
        rewards = reference_token_rewards(scores, batch.logprobs, batch.ref_logprobs, mask, beta)
        expected_adv, expected_returns = reference_gae(rewards, batch.values, mask, c.gamma, c.lam)
        torch.testing.assert_close(returns.double(), expected_returns, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(advantages.double(), reference_whiten(expected_adv, mask), atol=1e-4, rtol=1e-4)
        assert (advantages[mask == 0] == 0).all() and (returns[mask == 0] == 0).all()
        # K3: the controller gets the batch mean of the per-sequence KL sum, n_steps = episodes.
        kl_sum = ((batch.logprobs - batch.ref_logprobs) * mask).sum(dim=1).mean()
        current_kl, n_steps = trainer.kl_ctl.calls[iteration]
        assert current_kl == pytest.approx(float(kl_sum), rel=1e-5, abs=1e-7)
        assert n_steps == c.num_rollouts
        # β followed exactly the formula with that KL
        error = min(max(current_kl / c.kl_target - 1, -0.2), 0.2)
        assert trainer.kl_ctl.value == pytest.approx(beta * (1 + error * n_steps / c.kl_horizon), rel=1e-9)
    assert clipped_seen and unclipped_seen, "reward clipping was not exercised"
    assert len(trainer.kl_ctl.calls) == 2  # K4: once per rollout batch


# ---------------------------------------------------------------- rollout call site: alignment, temperature, text
@pytest.mark.parametrize("temperature", [0.7])
def test_old_logprobs_values_and_reference_logprobs_are_aligned_and_tempered(tiny_tokenizer, temperature):
    policy_copy = build_eos_policy(tiny_tokenizer, eos_bias=EOS_BIAS * temperature, seed=0)
    reference_copy = build_eos_policy(tiny_tokenizer, eos_bias=EOS_BIAS * temperature, seed=7)
    trainer = make_trainer(tiny_tokenizer, temperature=temperature)
    with torch.no_grad():  # a non-zero value head, so that a misaligned value read shows
        torch.nn.init.normal_(trainer.unwrapped.value_head.weight, std=0.5)
        trainer.unwrapped.value_head.bias.fill_(0.3)
    batch, _ = trainer.rollout(ROWS)
    assert_real_padding(batch)
    logprobs, values = recompute_forward(policy_copy, batch, temperature, trainer.unwrapped.value_head)
    ref_logprobs, _ = recompute_forward(reference_copy, batch, temperature)
    torch.testing.assert_close(batch.logprobs, logprobs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch.values, values, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch.ref_logprobs, ref_logprobs, atol=1e-5, rtol=1e-5)
    pads = batch.response_mask == 0
    assert pads.any() and (batch.logprobs[pads] == 0).all() and (batch.values[pads] == 0).all()
    assert (batch.ref_logprobs[pads] == 0).all()


def test_rollouts_sample_at_the_configured_temperature(tiny_tokenizer):
    # EOS is 4.3 logits above the rest: at T = 0.05 (86 logits) every response is EOS alone; at T = 1 they vary.
    cold = make_trainer(tiny_tokenizer, eos_bias=EOS_BIAS, temperature=0.05)
    batch, _ = cold.rollout(ROWS)
    assert lengths_of(batch.response_mask) == [1] * len(ROWS) and not batch.truncated.any()
    warm = make_trainer(tiny_tokenizer, eos_bias=EOS_BIAS, temperature=1.0)
    assert max(lengths_of(warm.rollout(ROWS)[0].response_mask)) > 1


def test_prompt_rows_need_a_reference_prompt_all_or_none(tiny_tokenizer, tmp_path):
    from easynlp_bp.ppo.training_loop import run_ppo

    reward = TextReward()
    trainer = make_trainer(tiny_tokenizer, reward)
    mixed = [dict(r) for r in ROWS]
    mixed[2]["prompt"] = None
    message = r"Prompt row 2 \(raw_prompt='a dragon in the snow'\) has no reference prompt while 7 other rows"
    with pytest.raises(ValueError, match=message):
        trainer.step(mixed)
    with pytest.raises(ValueError, match=message):
        run_ppo(trainer, mixed, [], str(tmp_path))
    assert reward.calls == [] and trainer.global_step == 0  # refused before any rollout or update
    trainer.step([{"raw_prompt": r["raw_prompt"]} for r in ROWS])  # no row has one: absolute rewards
    assert reward.calls[0][2] is None


def test_reward_fn_gets_the_decoded_text_up_to_eos_without_the_eos_token(tiny_tokenizer):
    reward = TextReward()
    trainer = make_trainer(tiny_tokenizer, reward)
    trainer.step(ROWS)
    batch = trainer.recorded[0][0]
    raw, prompts, refs = reward.calls[0]
    assert raw == [r["raw_prompt"] for r in ROWS] and refs == [r["prompt"] for r in ROWS]
    for ids, mask, text in zip(batch.response_ids, batch.response_mask, prompts):
        n = int(mask.sum())
        assert tiny_tokenizer.eos_token not in text and tiny_tokenizer.pad_token not in text
        expected = tiny_tokenizer.decode(ids[:n], skip_special_tokens=True).strip()
        assert text == expected
    # the unscaled scores of exactly these texts are what the trainer logs
    assert trainer.recorded[0][0].scores.tolist() == reward(raw, prompts).tolist()


def test_kl_units_per_sequence_sum_not_per_token_mean(tiny_tokenizer):
    """With KL ≈ target per sequence, β must barely move; a per-token mean would pin the error at -0.2."""
    trainer = make_trainer(tiny_tokenizer)
    batch, _ = trainer.rollout(ROWS)
    mask = batch.response_mask.float()
    per_sequence = float(((batch.logprobs - batch.ref_logprobs) * mask).sum(1).mean())
    per_token = float(((batch.logprobs - batch.ref_logprobs) * mask).sum() / mask.sum())
    assert per_sequence > 3 * per_token > 0  # the units differ clearly on this batch
    trainer = make_trainer(tiny_tokenizer, kl_target=per_sequence, kl_horizon=100)
    beta = trainer.kl_ctl.value
    trainer.step(ROWS)
    (current_kl, _), = trainer.kl_ctl.calls
    assert current_kl == pytest.approx(per_sequence, rel=1e-5)
    assert trainer.kl_ctl.value == pytest.approx(beta, rel=1e-6)


# ---------------------------------------------------------------- update call site
def test_ratio_is_one_at_the_first_minibatch_of_every_iteration(tiny_tokenizer, monkeypatch):
    """Old log-probs are recomputed with the training forward at the sampling temperature (N1, N3)."""
    calls = []
    spy_policy_loss(monkeypatch, lambda logprobs, old_logprobs, advantages, mask, *args: calls.append(
        (logprobs.detach().clone(), old_logprobs.clone(), mask.clone())))
    trainer = make_trainer(tiny_tokenizer, temperature=0.7)
    per_iteration = trainer.config.optimizer_steps_per_iteration
    for iteration in range(3):
        trainer.step(ROWS)
        assert len(calls) == (iteration + 1) * per_iteration
        logprobs, old, mask = calls[iteration * per_iteration]
        assert mask.sum() < mask.numel()  # padding present in this minibatch's masks
        deviation = ((torch.exp(logprobs - old) - 1).abs() * mask).max()
        assert deviation < 1e-4, f"iteration {iteration}: first-minibatch ratio deviates by {deviation}"
        later = calls[(iteration + 1) * per_iteration - 1]
        assert ((later[0] - later[1]).abs() * later[2]).max() > 1e-4  # later minibatches did move


def test_each_epoch_shuffles_the_rollout_batch_into_minibatches(tiny_tokenizer, monkeypatch):
    calls = []
    spy_policy_loss(monkeypatch, lambda logprobs, old_logprobs, *args: calls.append(old_logprobs.clone()))
    trainer = make_trainer(tiny_tokenizer, ppo_epochs=3)
    trainer.step(ROWS)
    rows = trainer.recorded[0][0].logprobs
    # episode indices; the loss sees the response positions up to the minibatch's longest response only
    minibatches = [[int((rows[:, : old.shape[1]] == row).all(1).nonzero()) for row in old] for old in calls]
    assert len(minibatches) == 6 and all(len(mb) == 4 for mb in minibatches)
    for epoch in range(3):  # each epoch sees every episode exactly once
        assert sorted(minibatches[2 * epoch] + minibatches[2 * epoch + 1]) == list(range(8))
    assert len({tuple(sorted(mb)) for mb in minibatches[::2]}) > 1  # and in a different split


def test_value_loss_at_the_call_site_clipped_around_old_values_weighted_and_normalised(tiny_tokenizer):
    """The value head's gradient (the policy loss does not reach it) equals vf_coef × the gradient of
    0.5·Σ max((V-R)², (V_old + clip(V-V_old, ±ε_v) - R)²) / (tokens of the minibatch), V read at Q-1+t."""
    trainer = make_trainer(tiny_tokenizer, num_layers_unfrozen=-1, micro_batch_size=2)
    head = trainer.unwrapped.value_head
    with torch.no_grad():
        torch.nn.init.normal_(head.weight, std=0.3, generator=torch.Generator().manual_seed(5))
    batch, _ = trainer.rollout(ROWS)
    mask = batch.response_mask.float()
    generator = torch.Generator().manual_seed(6)
    batch.values = (batch.values + 0.3 * torch.randn(mask.shape, generator=generator)) * mask  # V_old ≠ V
    returns = torch.randn(mask.shape, generator=generator) * mask
    index = torch.tensor([1, 2, 4, 7])
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.accumulate_gradients(batch, index, torch.zeros_like(mask), returns)
    got = head.weight.grad.clone()

    ids, attention = batch.input_ids(index)
    Q, R = batch.query_ids.shape[1], batch.response_ids.shape[1]
    hidden = trainer.unwrapped.base(input_ids=ids, attention_mask=attention, output_hidden_states=True).hidden_states[-1]
    values = torch.stack([head(hidden[:, Q - 1 + t]).squeeze(-1) for t in range(R)], dim=1)  # (4, R)
    old, ret, m = batch.values[index], returns[index], mask[index]
    eps = trainer.config.cliprange_value
    clipped = old + (values - old).clamp(-eps, eps)
    loss = 0.5 * (torch.max((values - ret) ** 2, (clipped - ret) ** 2) * m).sum() / m.sum()
    expected, = torch.autograd.grad(trainer.config.vf_coef * loss, head.weight)
    clip_active = ((clipped - ret) ** 2 > (values - ret) ** 2) & m.bool()
    assert clip_active.any() and (~clip_active & m.bool()).any()  # both branches of the max are exercised
    assert m.sum(1)[:2].sum() != m.sum(1)[2:].sum()  # the two micro-batches hold different token counts
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-4)


def test_extreme_log_ratios_give_finite_gradients(tiny_tokenizer):
    trainer = make_trainer(tiny_tokenizer, num_layers_unfrozen=-1)
    batch, _ = trainer.rollout(ROWS)
    mask = batch.response_mask.float()
    signs = torch.where(torch.arange(mask.shape[1]) % 2 == 0, 1.0, -1.0)
    batch.logprobs = (batch.logprobs - 300.0 * signs) * mask  # log-ratios of ±300 on every real token
    advantages = torch.where(torch.arange(len(batch)) % 2 == 0, 1.0, -1.0).unsqueeze(1) * mask
    trainer.accumulate_gradients(batch, torch.arange(4), advantages, torch.zeros_like(mask))
    grads = [p.grad for p in trainer.trainable_params if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def _gradient(tokenizer, micro_batch_size, batch_rows):
    policy = build_eos_policy(tokenizer, seed=3)
    reference = build_eos_policy(tokenizer, seed=7)
    torch.manual_seed(0)
    trainer = PPOTrainer(policy, reference, TextReward(), tokenizer,
                         small_config(micro_batch_size=micro_batch_size, num_layers_unfrozen=-1))
    batch, _ = trainer.rollout(batch_rows)
    with torch.no_grad():
        torch.nn.init.normal_(trainer.unwrapped.value_head.weight, std=0.1, generator=torch.Generator().manual_seed(4))
    mask = batch.response_mask.float()
    advantages = torch.randn(mask.shape, generator=torch.Generator().manual_seed(1)) * mask
    returns = torch.randn(mask.shape, generator=torch.Generator().manual_seed(2)) * mask
    index = torch.tensor([0, 3, 5, 6])
    trainer.accumulate_gradients(batch, index, advantages, returns)
    grad = torch.cat([p.grad.flatten() for p in trainer.trainable_params if p.grad is not None])
    return grad, mask[index]


def test_u6_per_token_normalisation_under_two_micro_batch_sizes_with_padding(tiny_tokenizer):
    full, mask = _gradient(tiny_tokenizer, 4, ROWS)
    half, _ = _gradient(tiny_tokenizer, 2, ROWS)
    tokens = mask.sum(1)
    assert tokens[:2].sum() != tokens[2:].sum(), "micro-batches must hold different token counts"
    assert full.abs().sum() > 0
    torch.testing.assert_close(half, full, atol=1e-6, rtol=1e-4)
    # and the scale: halving the loss normaliser would double it
    assert not torch.allclose(half, 2 * full, atol=1e-6, rtol=1e-4)


# ---------------------------------------------------------------- defaults
PAPER_PPO_DEFAULTS = dict(  # DESIGN.md section 2, PPO row (the authors' trlx settings)
    total_steps=5000, mini_batch_size=4, num_layers_unfrozen=8, learning_rate=5e-6, num_rollouts=64,
    chunk_size=16, ppo_epochs=4, init_kl_coef=0.05, kl_target=6.0, kl_horizon=10000, gamma=1.0, lam=0.95,
    cliprange=0.2, cliprange_value=0.2, vf_coef=0.5, scale_reward="running", cliprange_reward=10.0,
    max_new_tokens=256, top_k=0, top_p=1.0, temperature=1.0,
)


def test_every_paper_default_of_the_preset():
    config = PPOConfig()
    assert {k: getattr(config, k) for k in PAPER_PPO_DEFAULTS} == PAPER_PPO_DEFAULTS
    assert config.micro_batch_size == config.mini_batch_size  # batch 4 per step, no accumulation
    assert config.truncated_penalty == 0.0 and config.init_value_from_scores is False  # trlx: score as-is, V=0
    from easynlp_bp.reward.combined import CombinedReward

    reward = CombinedReward.heuristic()
    # the paper's R = (1 - α)·aesthetic + α·PickScore with α = 0.7, both deltaed against the reference prompt
    assert reward.term("pickscore").weight == 0.7 and reward.term("aesthetic").weight == pytest.approx(0.3)
    assert reward.delta_reward is True
