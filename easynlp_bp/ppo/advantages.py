"""Token rewards (score at EOS, -β·KL per token), GAE (Schulman et al. 2016) and masked whitening.

Pure torch. Tensors are (B, T) over *response* tokens only; ``mask`` is 1 up to and including the EOS
(or the last token of a truncated response) and 0 after it.
"""
from __future__ import annotations

import torch


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of ``mask`` (B, T) -> (B,); rows must contain at least one 1."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, torch.full_like(positions, -1)).max(dim=1).values


def compute_token_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards ``r_t = -β·(log π(a_t) - log π_ref(a_t))`` plus the score at the last real token.

    Args:
        scores: (B,) one scalar reward per sequence (already scaled/clipped).
        logprobs, ref_logprobs: (B, T) rollout-time log-probs of the sampled tokens (k1 estimator).
        mask: (B, T) response mask.
        kl_coef: β.
    Returns:
        rewards (B, T) (0 beyond the mask) and kl (B, T), the masked per-token log-ratio.
    """
    mask = mask.to(logprobs.dtype)
    kl = (logprobs - ref_logprobs) * mask  # (B, T)
    rewards = -kl_coef * kl
    last = last_token_index(mask)  # (B,)
    rewards[torch.arange(len(scores), device=scores.device), last] += scores.to(rewards.dtype)
    return rewards, kl


def leave_one_out_centered(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """Each score minus the mean of the other ``group_size - 1`` scores of its group (RLOO's baseline).

    ``scores`` (B,) holds consecutive groups of ``group_size`` responses to the same prompt. The baseline does
    not depend on the response it is subtracted from, so the policy gradient stays unbiased.
    """
    if group_size == 1:
        return scores
    groups = scores.reshape(-1, group_size)
    others_mean = (groups.sum(dim=1, keepdim=True) - groups) / (group_size - 1)
    return (groups - others_mean).reshape(-1)


def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation by the reverse recursion over response tokens.

    ``δ_t = r_t + γ·V_{t+1} - V_t``, ``A_t = δ_t + γλ·A_{t+1}``, with ``V`` and ``A`` zero after the last real
    token (the episode ends at EOS). ``returns = A + V`` is computed here, before any whitening.

    Returns:
        advantages (B, T) and returns (B, T), both 0 beyond the mask.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    advantages_reversed = []
    next_advantage = torch.zeros_like(values[:, 0])
    next_value = torch.zeros_like(values[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        next_value = values[:, t]
        advantages_reversed.append(next_advantage)
    advantages = torch.stack(advantages_reversed[::-1], dim=1)  # (B, T)
    returns = advantages + values
    return advantages * mask, returns * mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``x`` over the masked positions (Bessel-corrected by default, as the reference)."""
    mask = mask.to(x.dtype)
    mean = masked_mean(x, mask)
    var = (((x - mean) ** 2) * mask).sum()
    count = mask.sum()
    return var / (count - 1).clamp(min=1) if unbiased else var / count.clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Normalise ``x`` to zero mean / unit variance over the masked positions; positions outside stay 0."""
    mask_f = mask.to(x.dtype)
    mean, var = masked_mean(x, mask_f), masked_var(x, mask_f)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask_f
