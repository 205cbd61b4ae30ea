"""Clipped PPO losses (Schulman et al. 2017) for the policy and the value head, masked over tokens.

Each loss is a *sum* over masked tokens divided by ``n_tokens``, the number of response tokens in the whole
optimizer step (checklist U6), so accumulating micro-batches gives the gradient of one big batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

# exp() of a log-ratio beyond this overflows float32 after a few multiplications; the clip makes such
# tokens carry no gradient anyway.
MAX_LOG_RATIO = 20.0


@dataclass
class PolicyLossOutput:
    """The clipped policy loss and its diagnostics (token sums; divide by the token count to average)."""

    loss: torch.Tensor
    clipfrac_sum: torch.Tensor
    approx_kl_sum: torch.Tensor


@dataclass
class ValueLossOutput:
    loss: torch.Tensor
    clipfrac_sum: torch.Tensor


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
    n_tokens: float | torch.Tensor,
) -> PolicyLossOutput:
    """``Σ max(-A·ρ, -A·clip(ρ, 1-ε, 1+ε)) / n_tokens`` with ``ρ = exp(logπ - logπ_old)``.

    Args:
        logprobs: (B, T) current log-probs (with grad); old_logprobs, advantages: (B, T) rollout values.
        mask: (B, T) response mask; cliprange: ε; n_tokens: normaliser (tokens of the optimizer step).
    """
    mask = mask.to(logprobs.dtype)
    log_ratio = (logprobs - old_logprobs).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = (torch.max(unclipped, clipped) * mask).sum() / n_tokens
    with torch.no_grad():
        clipfrac = ((clipped > unclipped).to(mask.dtype) * mask).sum()
        approx_kl = (((ratio - 1) - log_ratio) * mask).sum()  # k3 estimator of KL(π_old || π)
    return PolicyLossOutput(loss=loss, clipfrac_sum=clipfrac, approx_kl_sum=approx_kl)


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float,
    n_tokens: float | torch.Tensor,
) -> ValueLossOutput:
    """``Σ 0.5·max((V-R)², (V_old + clip(V-V_old, ±ε_v) - R)²) / n_tokens``."""
    mask = mask.to(values.dtype)
    values_clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    loss_unclipped = (values - returns) ** 2
    loss_clipped = (values_clipped - returns) ** 2
    loss = 0.5 * (torch.max(loss_unclipped, loss_clipped) * mask).sum() / n_tokens
    with torch.no_grad():
        clipfrac = ((loss_clipped > loss_unclipped).to(mask.dtype) * mask).sum()
    return ValueLossOutput(loss=loss, clipfrac_sum=clipfrac)


def masked_entropy_sum(logits_fp32: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over masked tokens of the entropy of ``softmax(logits)``; logits (B, T, V) in float32."""
    log_p = torch.log_softmax(logits_fp32, dim=-1)
    entropy = -(log_p.exp() * log_p).sum(-1)  # (B, T)
    return (entropy * mask.to(entropy.dtype)).sum()
