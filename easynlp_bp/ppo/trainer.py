"""PPOTrainer: rollout → token rewards → GAE → epochs × minibatches → KL update (Ziegler et al. 2019).

Owned here because trl removed its PPO trainer (1.13) and older ones cannot express a text reward from two
RMs with their own tokenizers, minus the reference prompt's reward, nor the adaptive KL in the paper's units.
Devices and distribution come from accelerate; each process collects its own ``num_rollouts`` episodes.
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Callable, Optional, Sequence

import torch

from easynlp_bp.ppo.advantages import (
    compute_gae, compute_token_rewards, leave_one_out_centered, masked_mean, masked_var, masked_whiten,
)
from easynlp_bp.ppo.config import PPOConfig
from easynlp_bp.ppo.frozen_trunk import shares_trunk, trunk_cache_bytes
from easynlp_bp.ppo.kl_controller import AdaptiveKLController, FixedKLController
from easynlp_bp.ppo.losses import clipped_policy_loss, clipped_value_loss, masked_entropy_sum
from easynlp_bp.ppo.rollout import (
    RolloutBatch, generate_responses, response_logprobs, response_values, score_logprobs_and_values,
)
from easynlp_bp.ppo.running_stats import RunningMoments
from easynlp_bp.ppo.value_head import (
    PolicyWithValueHead, ReferenceModel, build_reference, count_decoder_layers,
)
from easynlp_bp.text.faithfulness import subject_kept_share
from easynlp_bp.models.kernels import use_fused_kernels
from easynlp_bp.components import COMPONENTS

logger = logging.getLogger(__name__)

RewardFn = Callable[[Sequence[str], Sequence[str], Optional[Sequence[str]]], torch.Tensor]


def reference_prompts_of(rows: Sequence[dict]) -> Optional[list[str]]:
    """The rows' reference prompts (``prompt``), or None when no row has one.

    Raises:
        ValueError: some rows have a reference prompt and others do not; a batch would otherwise mix
            delta rewards (relative to the reference) with absolute ones, whose scales differ.
    """
    missing = [i for i, r in enumerate(rows) if not r.get("prompt")]
    if not missing:
        return [r["prompt"] for r in rows]
    if len(missing) == len(rows):
        return None
    row = rows[missing[0]]
    raise ValueError(
        f"Prompt row {missing[0]} (raw_prompt={row.get('raw_prompt')!r}) has no reference prompt while "
        f"{len(rows) - len(missing)} other rows have one: rewards would mix deltas and absolute values. "
        "Give every row a reference prompt, or none (drop the column)."
    )


@COMPONENTS.register("PPOTrainer")
class PPOTrainer:
    """PPO with a value head, a frozen reference and an adaptive per-token KL penalty.

    Example:
        >>> trainer = PPOTrainer(causal_lm, None, reward_fn, tokenizer, PPOConfig(num_rollouts=16, chunk_size=16))
        >>> stats = trainer.step([{"raw_prompt": "a cat", "prompt": "a cat, 8k"}] * 16)
        >>> stats["kl/coef"], stats["reward/score_mean"]
    """

    def __init__(self, policy, ref_policy, reward_fn: RewardFn, tokenizer, config: PPOConfig, accelerator=None):
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
            raise ValueError(
                f"The tokenizer pads with the EOS token (pad={tokenizer.pad_token_id}, eos={tokenizer.eos_token_id}): "
                "masks built from padding would drop the real EOS and the policy would never learn to stop. "
                "Give it a distinct pad token (see beautiful_prompt.model.check_pad_token)."
            )
        self.config = config
        self.tokenizer = tokenizer
        self.reward_fn = reward_fn
        self.accelerator = accelerator or Accelerator()
        set_seed(config.seed + self.accelerator.process_index)  # a different sampling stream per process (S1)
        # fused GeLU and attention: ~25% and ~5% of a BLOOM update; a no-op on models the loader patched
        for model in (policy, ref_policy):
            if model is not None:
                use_fused_kernels(model)
        if not isinstance(policy, PolicyWithValueHead):
            n_layers = count_decoder_layers(policy)
            if config.num_layers_unfrozen > n_layers:
                raise ValueError(
                    f"num_layers_unfrozen={config.num_layers_unfrozen} is larger than the model's {n_layers} "
                    f"decoder layers; choose 1..{n_layers}, or -1 to train all layers."
                )
            policy = PolicyWithValueHead(policy, config.num_layers_unfrozen)
        keep_fp32_master_weights(policy)
        if ref_policy is None:
            reference = build_reference(policy)
        elif isinstance(ref_policy, ReferenceModel):
            reference = ref_policy
        else:
            reference = ReferenceModel(ref_policy)
        self.reference = reference.to(self.accelerator.device)
        params = [p for p in policy.parameters() if p.requires_grad]
        # fused: one kernel per step for all tensors; off CUDA torch otherwise loops ~6 ops over every tensor,
        # about 10x slower on the benchmark's model (docs/benchmarks.md, section 3). Same update rule.
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                                      eps=1e-8, weight_decay=config.weight_decay, fused=fused)
        # Constant learning rate: the reference's cosine has T_max=1e12, i.e. is constant in practice.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        self.policy, self.optimizer = self.accelerator.prepare(policy, optimizer)
        self.trainable_params = params
        # One trunk pass per rollout batch serves the old log-probs, the reference and every PPO epoch when the
        # reference runs the policy's own frozen modules (ppo/frozen_trunk.py); exact, since they never change.
        self.reuse_trunk = policy.trunk is not None and shares_trunk(
            policy.base, self.reference.base, policy.num_layers_unfrozen)
        if config.kl_target is None:
            self.kl_ctl = FixedKLController(config.init_kl_coef)
        else:
            self.kl_ctl = AdaptiveKLController(config.init_kl_coef, config.kl_target, config.kl_horizon)
        self.running = RunningMoments()
        self.warned_reward_clip = False  # warn once per run when the clip flattens most rewards
        self.global_step = 0  # optimizer steps
        self.iteration = 0  # rollout batches

    # ------------------------------------------------------------------ helpers
    @property
    def unwrapped(self) -> PolicyWithValueHead:
        """The policy without its DDP wrapper: used for generation and no-grad forwards, which need no
        gradient synchronisation (and so cannot deadlock when processes run different numbers of them)."""
        return self.accelerator.unwrap_model(self.policy)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def _gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """The tensor concatenated over processes (identical on every process), on CPU."""
        if self.accelerator.num_processes == 1:
            return tensor
        return self.accelerator.gather(tensor.to(self.device)).cpu()

    def score(self, raw_prompts: Sequence[str], prompts: Sequence[str], reference_prompts=None,
              term_means: Optional[dict] = None) -> torch.Tensor:
        """Call the reward function and check it returned one finite float per prompt.

        ``term_means``: filled with the batch mean of every reward term (``reward/term/<name>``, and the reference
        prompts' ``reward/reference/<name>``) when the reward function reports them (``compute``, as
        :class:`~easynlp_bp.reward.combined.CombinedReward` does), averaged over processes.
        """
        compute = getattr(self.reward_fn, "compute", None)
        if compute is not None:
            breakdown = compute(list(raw_prompts), list(prompts), reference_prompts)
            scores = breakdown.total
            if term_means is not None:
                term_means.update(self._mean_over_processes(breakdown.means()))
        else:
            scores = self.reward_fn(list(raw_prompts), list(prompts), reference_prompts)
        scores = torch.as_tensor(scores).detach().float().cpu().reshape(-1)
        if scores.shape[0] != len(prompts):
            raise ValueError(f"reward_fn returned {scores.shape[0]} scores for {len(prompts)} prompts.")
        if not torch.isfinite(scores).all():
            raise ValueError(f"reward_fn returned non-finite scores: {scores.tolist()}.")
        return scores

    def _mean_over_processes(self, means: dict[str, float]) -> dict[str, float]:
        if self.accelerator.num_processes == 1 or not means:
            return means
        values = self._gather(torch.tensor([list(means.values())], dtype=torch.float32))  # (P, K)
        return dict(zip(means, values.mean(0).tolist()))

    def rollout(self, rows: Sequence[dict]) -> tuple[RolloutBatch, dict]:
        """Sample, score and run the no-grad forwards for one batch of prompt rows; returns (batch, times)."""
        c = self.config
        raw = [r["raw_prompt"] for r in rows]
        refs = reference_prompts_of(rows)
        times = {}
        start = time.perf_counter()
        # with a shared frozen trunk its outputs are recorded while sampling: scoring then runs the top layers only
        trunk_layer = self.unwrapped.trunk.layers[self.unwrapped.trunk.n_frozen - 1] if self.reuse_trunk else None
        batch = generate_responses(
            self.unwrapped.base, self.tokenizer, raw, chunk_size=c.chunk_size, max_new_tokens=c.max_new_tokens,
            temperature=c.temperature, top_k=c.top_k, top_p=c.top_p, device=self.device, trunk_layer=trunk_layer,
        )
        batch.reference_prompts = refs
        times["time/generate"] = time.perf_counter() - start
        start = time.perf_counter()
        batch.scores = self.score(raw, batch.responses, refs, term_means=batch.reward_terms)
        times["time/score"] = time.perf_counter() - start
        start = time.perf_counter()
        score_logprobs_and_values(self.unwrapped, self.reference, batch, temperature=c.temperature,
                                  forward_batch_size=c.forward_batch_size, device=self.device,
                                  reuse_trunk=self.reuse_trunk)
        times["time/forward_ref_value"] = time.perf_counter() - start
        return batch, times

    def scale_scores(self, scores: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
        """Truncation penalty, the group baseline (``group_size`` > 1), running-std scaling (statistics over all
        processes) and clipping, as trlx."""
        c = self.config
        scores = scores - c.truncated_penalty * truncated.float()
        scores = leave_one_out_centered(scores, c.group_size)
        self.running.update(self._gather(scores))
        if c.scale_reward == "running":
            scores = scores / max(self.running.std, 1e-8)
        if c.cliprange_reward:
            clipped = self.clipped_rate(scores)
            if clipped > 0.5 and not self.warned_reward_clip:
                # e.g. a policy far from the reference prompts: every delta is the same many-std offset, and
                # the clip turns all of them into the same number (no signal left for the policy)
                logger.warning("%.0f%% of this iteration's scaled rewards hit cliprange_reward=%g, so PPO sees no "
                               "difference between them; set cliprange_reward=0 or scale_reward=none (the PPO "
                               "value head absorbs a constant offset).", 100 * clipped, c.cliprange_reward)
                self.warned_reward_clip = True
            scores = scores.clamp(-c.cliprange_reward, c.cliprange_reward)
        return scores

    def clipped_rate(self, scaled: torch.Tensor) -> float:
        """Share of scaled scores at ±``cliprange_reward`` (0 when there is no clip)."""
        limit = self.config.cliprange_reward
        return float((scaled.abs() >= limit).float().mean()) if limit else 0.0

    # ------------------------------------------------------------------ the algorithm
    def step(self, rows: Sequence[dict]) -> dict:
        """One PPO iteration on ``config.prompts_per_iteration`` prompt rows (``raw_prompt`` and optional reference
        ``prompt``), each answered ``group_size`` times: ``num_rollouts`` episodes."""
        c = self.config
        if len(rows) != c.prompts_per_iteration:
            raise ValueError(f"step() takes num_rollouts / group_size = {c.prompts_per_iteration} prompt rows; "
                             f"got {len(rows)}.")
        rows = [row for row in rows for _ in range(c.group_size)]
        # 1. Sample responses and score them; old log-probs, values and reference log-probs.
        batch, times = self.rollout(rows)
        mask = batch.response_mask.float()
        # 2. Per-token rewards: -β·KL on every token, the (scaled) score at the last real token.
        kl_coef = self.kl_ctl.value
        scores = self.scale_scores(batch.scores, batch.truncated)
        if c.init_value_from_scores and self.iteration == 0:
            self._init_value_bias(float(self._gather(scores).mean()), batch, mask)
        rewards, kl = compute_token_rewards(scores, batch.logprobs, batch.ref_logprobs, mask, kl_coef)
        # 3. GAE over response tokens; returns before whitening; masked whitening of the advantages.
        advantages, returns = compute_gae(rewards, batch.values, mask, c.gamma, c.lam)
        advantages = masked_whiten(advantages, mask)
        # 4. ppo_epochs × minibatches of clipped policy and value losses.
        start = time.perf_counter()
        stats = self.optimize(batch, advantages, returns)
        times["time/update"] = time.perf_counter() - start
        trunk_bytes = trunk_cache_bytes(batch.trunk_hidden)
        batch.trunk_hidden = None  # the next rollout computes its own
        # 5. Adapt β once per rollout batch with the rollout-time per-sequence KL (Ziegler et al.), averaged
        # over all processes; n = one process's episodes, so N processes adapt β per iteration like one (trlx).
        kl_per_sequence = self._gather(kl.sum(dim=1))
        mean_kl = float(kl_per_sequence.mean())
        self.kl_ctl.update(mean_kl, n_steps=c.num_rollouts)
        self.iteration += 1
        explained = 1 - masked_var(returns - batch.values, mask) / masked_var(returns, mask).clamp(min=1e-8)
        lengths = self._gather(mask.sum(1))
        stats.update(times)
        stats.update(batch.reward_terms)
        stats.update({
            "reward/score_mean": float(self._gather(batch.scores).mean()),
            "reward/score_scaled_mean": float(self._gather(scores).mean()),
            "reward/clipped_rate": self.clipped_rate(self._gather(scores)),
            "reward/running_std": self.running.std,
            "kl/observed": mean_kl,
            "kl/coef": kl_coef,
            "kl/coef_next": self.kl_ctl.value,
            "value/explained_variance": float(explained),
            "value/mean": float(masked_mean(batch.values, mask)),
            "rollout/response_length": float(lengths.mean()),
            "rollout/truncated_rate": float(self._gather(batch.truncated.float()).mean()),
            "time/iteration": sum(times.values()),
            "memory/trunk_cache_bytes": trunk_bytes,
            "step/iteration": self.iteration,
            "step/optimizer": self.global_step,
        })
        return stats

    @torch.no_grad()
    def _init_value_bias(self, offset: float, batch: RolloutBatch, mask: torch.Tensor) -> None:
        """Shift the (linear) value head by ``offset``; the batch's old values shift by exactly the same."""
        self.unwrapped.value_head.bias.add_(offset)
        batch.values = (batch.values + offset) * mask

    def optimize(self, batch: RolloutBatch, advantages: torch.Tensor, returns: torch.Tensor) -> dict:
        """``ppo_epochs`` passes; each shuffles the batch, one optimizer step per minibatch (U5)."""
        c = self.config
        totals: dict[str, float] = {}
        n_minibatches = 0
        for epoch in range(c.ppo_epochs):
            for mb_index in torch.randperm(len(batch)).split(c.mini_batch_size):
                mb_stats = self.accumulate_gradients(batch, mb_index, advantages, returns,
                                                     record_ratio=(epoch == 0 and n_minibatches == 0))
                if c.max_grad_norm:
                    self.accelerator.clip_grad_norm_(self.trainable_params, c.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.global_step += 1
                n_minibatches += 1
                for key, value in mb_stats.items():
                    totals[key] = totals.get(key, 0.0) + value
        first = {k: totals.pop(k) for k in list(totals) if k.startswith("policy/first_")}
        return {**{k: v / n_minibatches for k, v in totals.items()}, **first}

    def accumulate_gradients(self, batch: RolloutBatch, mb_index: torch.Tensor, advantages: torch.Tensor,
                             returns: torch.Tensor, record_ratio: bool = False) -> dict:
        """Forward/backward the minibatch ``mb_index`` in micro-batches; losses are normalised by the
        minibatch's token count so the summed gradient does not depend on ``micro_batch_size`` (U6)."""
        c = self.config
        mask = batch.response_mask.float()
        n_tokens = mask[mb_index].sum().clamp(min=1.0).to(self.device)
        micro_batches = mb_index.split(c.micro_batch_size)
        stats = {"loss/policy": 0.0, "loss/value": 0.0, "policy/entropy": 0.0, "policy/approx_kl": 0.0,
                 "policy/clipfrac": 0.0, "value/clipfrac": 0.0}
        for i, index in enumerate(micro_batches):
            sync = i == len(micro_batches) - 1
            context = contextlib.nullcontext() if sync else self.accelerator.no_sync(self.policy)
            with context:
                pg, vf, logprobs, response_logits, mb = self._micro_batch_losses(batch, index, advantages, returns,
                                                                                 mask, n_tokens)
                loss = pg.loss + c.vf_coef * vf.loss
                self.accelerator.backward(loss)
            with torch.no_grad():
                stats["loss/policy"] += pg.loss.item()
                stats["loss/value"] += vf.loss.item()
                stats["policy/entropy"] += (masked_entropy_sum(response_logits, mb["mask"]) / n_tokens).item()
                stats["policy/approx_kl"] += (pg.approx_kl_sum / n_tokens).item()
                stats["policy/clipfrac"] += (pg.clipfrac_sum / n_tokens).item()
                stats["value/clipfrac"] += (vf.clipfrac_sum / n_tokens).item()
                if record_ratio and i == 0:
                    log_ratio = logprobs - mb["old_logprobs"]
                    ratio = torch.exp(log_ratio)
                    stats["policy/first_ratio_max_dev"] = float(((ratio - 1).abs() * mb["mask"]).max())
                    stats["policy/first_approx_kl"] = float(masked_mean((ratio - 1) - log_ratio, mb["mask"]))
        return stats

    def _micro_batch_losses(self, batch: RolloutBatch, index: torch.Tensor, advantages: torch.Tensor,
                            returns: torch.Tensor, mask: torch.Tensor, n_tokens: torch.Tensor):
        """(policy loss, value loss, log-probs, response logits, the micro-batch's rollout tensors) of rows ``index``.

        The forward runs on the rows' real columns only (:meth:`RolloutBatch.real_columns`): the response
        tensors are cut to the ``r`` positions any of these rows reaches, beyond which every row is masked.
        """
        c = self.config
        Q = batch.query_ids.shape[1]
        start, r = batch.real_columns(index)
        input_ids, attention_mask = (t[:, start : Q + r].to(self.device) for t in batch.input_ids(index))
        trunk = None if batch.trunk_hidden is None else batch.trunk_hidden[index.to(self.device), start : Q + r]
        mb = {name: tensor[index, :r].to(self.device) for name, tensor in (
            ("mask", mask), ("old_logprobs", batch.logprobs), ("old_values", batch.values),
            ("advantages", advantages), ("returns", returns), ("response_ids", batch.response_ids))}
        # only the r+1 last positions need logits and values; the frozen trunk is cached (reuse_trunk)
        logits, values = self.policy(input_ids, attention_mask, logits_to_keep=r + 1, trunk_hidden=trunk)
        logprobs, response_logits = response_logprobs(logits, mb["response_ids"], Q - start, c.temperature)
        vpred = response_values(values, Q - start, r)
        pg = clipped_policy_loss(logprobs, mb["old_logprobs"], mb["advantages"], mb["mask"], c.cliprange, n_tokens)
        vf = clipped_value_loss(vpred, mb["old_values"], mb["returns"], mb["mask"], c.cliprange_value, n_tokens)
        return pg, vf, logprobs, response_logits, mb

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, rows: Sequence[dict], n_samples: int = 3) -> dict:
        """Held-out mean reward (absolute, no reference delta), reference reward, KL, response length and
        subject preservation (mean share of the raw prompt's content words kept; share keeping all).

        Sampling uses the rollout settings under a fixed seed, without disturbing the training RNG.
        """
        c = self.config
        acc = self.accelerator
        rows = list(rows)[: c.eval_size]
        shard = rows[acc.process_index :: acc.num_processes]
        devices = [self.device] if self.device.type == "cuda" else []
        sums = torch.zeros(7, dtype=torch.float64)
        samples = []
        terms: Optional[dict] = {} if acc.num_processes == 1 else None  # (a gather could wait on an empty shard)
        if shard:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(c.seed + 1_000_003 + acc.process_index)
                batch = generate_responses(
                    self.unwrapped.base, self.tokenizer, [r["raw_prompt"] for r in shard], chunk_size=c.chunk_size,
                    max_new_tokens=c.max_new_tokens, temperature=c.temperature, top_k=c.top_k, top_p=c.top_p,
                    device=self.device,
                )
            score_logprobs_and_values(self.unwrapped, self.reference, batch, temperature=c.temperature,
                                      forward_batch_size=c.forward_batch_size, device=self.device,
                                      reuse_trunk=self.reuse_trunk)
            reward = self.score(batch.raw_prompts, batch.responses, None, term_means=terms)
            has_ref = all(r.get("prompt") for r in shard)
            ref_reward = self.score(batch.raw_prompts, [r["prompt"] for r in shard], None) if has_ref else torch.zeros(len(shard))
            kl = (batch.logprobs - batch.ref_logprobs).sum(1)
            kept = [subject_kept_share(r, y) for r, y in zip(batch.raw_prompts, batch.responses)]
            sums = torch.tensor([reward.sum(), ref_reward.sum(), kl.sum(), batch.response_mask.sum(), len(shard),
                                 sum(kept), sum(k >= 1.0 for k in kept)], dtype=torch.float64)
            samples = [{"raw_prompt": r, "response": y} for r, y in zip(batch.raw_prompts[:n_samples], batch.responses)]
        if acc.num_processes > 1:
            sums = acc.reduce(sums.to(self.device), reduction="sum").cpu()
        n = max(float(sums[4]), 1.0)
        term_logs = {key.replace("reward/", "eval/", 1): value for key, value in (terms or {}).items()
                     if key != "reward/total"}
        return {**term_logs, "eval/reward_mean": float(sums[0]) / n, "eval/ref_reward_mean": float(sums[1]) / n,
                "eval/kl": float(sums[2]) / n, "eval/response_length": float(sums[3]) / n,
                "eval/prompts": int(sums[4]), "eval/subject_mean": float(sums[5]) / n,
                "eval/subject_all": float(sums[6]) / n, "samples": samples}


def keep_fp32_master_weights(policy: torch.nn.Module) -> None:
    """Convert ``policy`` to float32 when any trainable parameter is in half precision (transformers loads a
    checkpoint's own dtype): AdamW steps of ~1e-6 relative to a weight vanish in bf16's 8-bit mantissa, so PPO
    would silently not train. The whole policy is converted, so layers never meet activations of another dtype."""
    half = sorted({str(p.dtype) for p in policy.parameters() if p.requires_grad and p.dtype != torch.float32})
    if half:
        logger.warning("The policy's trainable parameters are %s; PPO trains float32 master weights (small AdamW "
                       "steps vanish in half precision), so the policy is converted to float32.", ", ".join(half))
        policy.float()
