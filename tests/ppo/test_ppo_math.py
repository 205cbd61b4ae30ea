"""PPO math (checklist K1, K3, P2, U1-U4): token rewards, GAE vs a plain loop, whitening, losses, KL control."""
import math

import pytest
import torch

from easynlp_bp.ppo.advantages import (
    compute_gae, compute_token_rewards, last_token_index, leave_one_out_centered, masked_mean, masked_whiten,
)
from easynlp_bp.ppo.kl_controller import AdaptiveKLController, FixedKLController
from easynlp_bp.ppo.losses import clipped_policy_loss, clipped_value_loss
from easynlp_bp.ppo.running_stats import RunningMoments


def _mask():
    # lengths 5, 3, 1 (the last one ends at its first token)
    return torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.float32)


def test_k1_kl_penalty_on_every_token_and_score_at_last_real_token():
    torch.manual_seed(0)
    mask = _mask()
    logprobs, ref = torch.randn(3, 5), torch.randn(3, 5)
    scores = torch.tensor([1.0, -2.0, 3.0])
    beta = 0.1
    rewards, kl = compute_token_rewards(scores, logprobs, ref, mask, beta)
    last = last_token_index(mask)
    assert last.tolist() == [4, 2, 0]
    for b in range(3):
        non_score = rewards[b].clone()
        non_score[last[b]] -= scores[b]
        assert torch.allclose(non_score.sum(), -beta * ((logprobs[b] - ref[b]) * mask[b]).sum(), atol=1e-6)
        assert torch.all(rewards[b][mask[b] == 0] == 0)
    assert torch.allclose(kl, (logprobs - ref) * mask)


def _gae_loop(rewards, values, mask, gamma, lam):
    B, T = rewards.shape
    adv = torch.zeros(B, T)
    for b in range(B):
        n = int(mask[b].sum())
        last = 0.0
        for t in reversed(range(n)):
            next_v = values[b, t + 1].item() if t + 1 < n else 0.0
            delta = rewards[b, t].item() + gamma * next_v - values[b, t].item()
            last = delta + gamma * lam * last
            adv[b, t] = last
    return adv


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.5)])
def test_u4_gae_matches_plain_loop_and_returns_before_whitening(gamma, lam):
    torch.manual_seed(1)
    mask = _mask()
    rewards, values = torch.randn(3, 5), torch.randn(3, 5)
    advantages, returns = compute_gae(rewards, values, mask, gamma, lam)
    expected = _gae_loop(rewards, values, mask, gamma, lam)
    assert torch.allclose(advantages, expected, atol=1e-5)
    assert torch.allclose(returns, (expected + values) * mask, atol=1e-5)


def test_p2_u1_masked_whitening_pads_exactly_zero():
    torch.manual_seed(2)
    mask = _mask()
    x = torch.randn(3, 5) * 3 + 7
    white = masked_whiten(x, mask)
    assert torch.all(white[mask == 0] == 0.0)
    assert abs(masked_mean(white, mask).item()) < 1e-6
    values = white[mask == 1]
    assert values.std(unbiased=True).item() == pytest.approx(1.0, abs=1e-4)
    # padding values must not influence the statistics
    x2 = x.clone()
    x2[mask == 0] = 1e6
    assert torch.allclose(masked_whiten(x2, mask), white)


def test_u3_policy_loss_equal_logprobs_is_minus_mean_advantage_no_clipping():
    mask = _mask()
    adv = torch.arange(15.0).reshape(3, 5) - 7
    lp = torch.randn(3, 5)
    out = clipped_policy_loss(lp, lp.clone(), adv, mask, 0.2, mask.sum())
    assert out.loss.item() == pytest.approx(-masked_mean(adv, mask).item(), abs=1e-6)
    assert out.clipfrac_sum.item() == 0
    assert out.approx_kl_sum.item() == pytest.approx(0.0, abs=1e-7)


def test_u3_policy_loss_clips_ratio_and_clamps_log_ratio():
    mask = torch.ones(1, 2)
    adv = torch.tensor([[1.0, -1.0]])
    old = torch.zeros(1, 2)
    new = torch.tensor([[math.log(2.0), math.log(0.5)]])  # ratio 2 (A>0 clipped to 1.2), ratio .5 (A<0: clipped at .8)
    out = clipped_policy_loss(new, old, adv, mask, 0.2, 2)
    # max(-A·ρ, -A·clip(ρ)): token 1: max(-2, -1.2) = -1.2; token 2: max(0.5, 0.8) = 0.8
    assert out.loss.item() == pytest.approx((-1.2 + 0.8) / 2, abs=1e-6)
    assert out.clipfrac_sum.item() == 2
    huge = clipped_policy_loss(torch.tensor([[1000.0, 0.0]]), old, adv, mask, 0.2, 2)
    assert torch.isfinite(huge.loss)


def test_u2_value_loss_clipping_reference_formula():
    mask = torch.ones(1, 3)
    old = torch.zeros(1, 3)
    values = torch.tensor([[0.5, 0.1, -0.5]])
    returns = torch.tensor([[1.0, 1.0, 0.0]])
    out = clipped_value_loss(values, old, returns, mask, 0.2, 3)
    clipped = torch.tensor([[0.2, 0.1, -0.2]])
    expected = 0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2).mean()
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-7)
    assert out.clipfrac_sum.item() == 1  # only the first token: its clipped error 0.64 > 0.25


def test_k3_adaptive_kl_formula_and_units():
    ctl = AdaptiveKLController(0.05, target=6.0, horizon=10000)
    ctl.update(current_kl=9.0, n_steps=64)  # error clip(0.5) = 0.2
    assert ctl.value == pytest.approx(0.05 * (1 + 0.2 * 64 / 10000))
    ctl = AdaptiveKLController(0.05, target=6.0, horizon=10000)
    ctl.update(current_kl=5.4, n_steps=64)  # error -0.1
    assert ctl.value == pytest.approx(0.05 * (1 - 0.1 * 64 / 10000))
    # Units: per-token KL 0.05 over ~100 tokens is a per-sequence KL of 5, close to the target of 6:
    # β must NOT shrink at the maximum rate (as it would if a per-token mean were fed).
    per_token = torch.full((64, 100), 0.05)
    right = AdaptiveKLController(0.05, 6.0, 10000)
    wrong = AdaptiveKLController(0.05, 6.0, 10000)
    for _ in range(1000):
        right.update(float(per_token.sum(1).mean()), n_steps=64)
        wrong.update(float(per_token.mean()), n_steps=64)
    max_rate = 0.05 * (1 - 0.2 * 64 / 10000) ** 1000
    assert wrong.value == pytest.approx(max_rate, rel=1e-6)
    assert right.value > 0.05 * (1 - 0.17 * 64 / 10000) ** 1000 > max_rate
    with pytest.raises(ValueError, match="non-finite"):
        right.update(float("nan"), 64)


def test_k5_kl_controller_and_running_moments_state_roundtrip():
    ctl = AdaptiveKLController(0.05, 6.0, 100)
    ctl.update(1.0, 10)
    other = AdaptiveKLController(1.0, 1.0, 1)
    other.load_state_dict(ctl.state_dict())
    assert (other.value, other.target, other.horizon) == (ctl.value, 6.0, 100)
    fixed = FixedKLController(0.1)
    fixed.update(100.0, 64)
    assert fixed.value == 0.1
    rm = RunningMoments()
    rm.update(torch.tensor([1.0, 3.0]))
    rm.update(torch.tensor([5.0]))
    assert rm.mean == pytest.approx(3.0) and rm.std == pytest.approx(2.0)
    rm2 = RunningMoments()
    rm2.load_state_dict(rm.state_dict())
    assert rm2.state_dict() == rm.state_dict()


def test_leave_one_out_baseline_is_the_mean_of_the_other_responses_to_the_same_prompt():
    scores = torch.tensor([1.0, 2.0, 6.0, 10.0, 10.0, 13.0])
    centered = leave_one_out_centered(scores, group_size=3)
    # group 1: 1 - (2+6)/2, 2 - (1+6)/2, 6 - (1+2)/2; group 2: 10 - 11.5, 10 - 11.5, 13 - 10
    assert centered.tolist() == [-3.0, -1.5, 4.5, -1.5, -1.5, 3.0]
    assert leave_one_out_centered(scores, group_size=1) is scores
    # a constant per prompt (how hard the prompt is, the reference prompt's reward) leaves no trace
    shifted = scores + torch.tensor([5.0, 5.0, 5.0, -7.0, -7.0, -7.0])
    assert torch.allclose(leave_one_out_centered(shifted, 3), centered)
