"""PPOConfig: every PPO hyperparameter as one typed field, defaults = the paper's trlx settings.

Grouped as in docs/ppo.md: rollouts, KL penalty, advantages and losses, reward scaling, optimisation,
schedule. Validated in ``__post_init__`` so a bad setting fails before any model is loaded.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from easynlp_bp.finite_numbers import require_finite


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class PPOConfig:
    """PPO settings (see docs/ppo.md for the equation each one enters).

    Example:
        >>> PPOConfig(num_rollouts=32, chunk_size=16, mini_batch_size=8, max_new_tokens=48).ppo_epochs
        4
    """

    # Rollouts.
    num_rollouts: int = _f(64, "Episodes collected per PPO iteration (per process).")
    chunk_size: int = _f(16, "Prompts per generate call while collecting rollouts.")
    group_size: int = _f(
        1, "Responses sampled per prompt in a rollout batch (num_rollouts / group_size prompts). Above 1 each score "
        "is taken relative to the mean of the other responses to the same prompt (leave-one-out, as RLOO), so how "
        "easy or hard a prompt is to score leaves the advantage; the reference prompt's reward then cancels."
    )
    max_new_tokens: int = _f(256, "Longest response in tokens; longer ones are truncated (see truncated_penalty).")
    temperature: float = _f(1.0, "Sampling temperature; every log-prob is computed from logits / temperature.")
    top_k: int = _f(0, "Top-k during rollouts (0: off; anything else biases the KL estimate).")
    top_p: float = _f(1.0, "Nucleus sampling during rollouts (1.0: off).")
    # KL penalty.
    init_kl_coef: float = _f(0.05, "Initial β of the per-token KL penalty.")
    kl_target: Optional[float] = _f(6.0, "Target per-sequence KL (nats) of the adaptive controller; none: fixed β.")
    kl_horizon: int = _f(10000, "Horizon (episodes) of the adaptive KL controller.")
    # Advantages and losses.
    gamma: float = _f(1.0, "Discount γ of GAE.")
    lam: float = _f(0.95, "λ of GAE.")
    cliprange: float = _f(0.2, "Policy ratio clip ε.")
    cliprange_value: float = _f(0.2, "Value clip ε_v.")
    vf_coef: float = _f(0.5, "Weight of the value loss.")
    init_value_from_scores: bool = _f(
        False, "Set the value head's bias to the mean scaled score of the first rollout batch (a critic that starts "
        "at the reward's offset instead of 0; off in the reference)."
    )
    # Reward scaling.
    scale_reward: str = _f("running", "running (divide scores by their running std) or none.")
    cliprange_reward: float = _f(10.0, "Clip scaled scores to ±this (0: no clipping).")
    truncated_penalty: float = _f(
        0.0, "Subtracted from the score of responses with no EOS within max_new_tokens (0: score as-is, as trlx)."
    )
    # Optimisation.
    ppo_epochs: int = _f(4, "Passes over each rollout batch.")
    mini_batch_size: int = _f(4, "Episodes per optimizer step (per process).")
    micro_batch_size: Optional[int] = _f(None, "Episodes per forward/backward (none: = mini_batch_size).")
    forward_batch_size: int = _f(16, "Episodes per no-grad forward (old log-probs, values, reference).")
    learning_rate: float = _f(5e-6, "AdamW learning rate (constant, as the reference's effectively constant cosine).")
    adam_beta1: float = _f(0.9, "AdamW β1.")
    adam_beta2: float = _f(0.95, "AdamW β2.")
    weight_decay: float = _f(1e-6, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm (0: off).")
    num_layers_unfrozen: int = _f(
        8, "Top decoder layers that train; the reference shares the frozen trunk. -1: all train, full reference copy."
    )
    # Schedule.
    total_steps: int = _f(5000, "Optimizer steps to train (trlx's unit; one iteration makes ppo_epochs·num_rollouts/mini_batch_size).")
    eval_interval: int = _f(10, "Evaluate on held-out prompts every N iterations (0: only at the start and end).")
    checkpoint_interval: int = _f(10, "Save a resumable checkpoint every N iterations (0: only at the end).")
    eval_size: int = _f(500, "Held-out prompts per evaluation (the paper holds out 500).")
    seed: int = _f(42, "Seed; each process samples with seed + rank.")

    def __post_init__(self) -> None:
        require_finite(self)  # NaN passes every < / >= check below
        for name in ("num_rollouts", "chunk_size", "group_size", "max_new_tokens", "ppo_epochs", "mini_batch_size",
                     "forward_batch_size", "kl_horizon", "total_steps", "eval_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1.")
        if self.micro_batch_size is None:  # unset means "no gradient accumulation" (frozen: set it once here)
            object.__setattr__(self, "micro_batch_size", self.mini_batch_size)
        if self.num_rollouts % self.chunk_size:
            raise ValueError(
                f"num_rollouts={self.num_rollouts} must be a multiple of chunk_size={self.chunk_size}; "
                f"choose e.g. chunk_size={_divisor_near(self.num_rollouts, self.chunk_size)}."
            )
        if self.num_rollouts % self.group_size:
            raise ValueError(
                f"num_rollouts={self.num_rollouts} must be a multiple of group_size={self.group_size} "
                "(whole groups of responses per prompt)."
            )
        if self.num_rollouts % self.mini_batch_size:
            raise ValueError(
                f"num_rollouts={self.num_rollouts} must be a multiple of mini_batch_size={self.mini_batch_size} "
                "so that every optimizer step sees the same number of episodes."
            )
        if self.micro_batch_size < 1 or self.mini_batch_size % self.micro_batch_size:
            raise ValueError(
                f"mini_batch_size={self.mini_batch_size} must be a multiple of micro_batch_size={self.micro_batch_size}."
            )
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be positive (rollouts sample).")
        if self.top_k < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"top_k={self.top_k} must be >= 0 and top_p={self.top_p} in (0, 1].")
        if self.init_kl_coef < 0:
            raise ValueError(f"init_kl_coef={self.init_kl_coef} must not be negative.")
        if self.kl_target is not None and self.kl_target <= 0:
            raise ValueError(f"kl_target={self.kl_target} must be positive (per-sequence nats), or none for a fixed β.")
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ValueError(f"gamma={self.gamma} and lam={self.lam} must lie in [0, 1].")
        for name in ("cliprange", "cliprange_value", "vf_coef", "cliprange_reward", "learning_rate",
                     "weight_decay", "max_grad_norm", "truncated_penalty"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must not be negative.")
        if self.scale_reward not in ("running", "none"):
            raise ValueError(f"scale_reward={self.scale_reward!r} must be 'running' or 'none'.")
        if self.num_layers_unfrozen == 0 or self.num_layers_unfrozen < -1:
            raise ValueError(
                f"num_layers_unfrozen={self.num_layers_unfrozen} must be -1 (all layers train) or a positive "
                "number of top layers to train."
            )
        if self.eval_interval < 0 or self.checkpoint_interval < 0:
            raise ValueError("eval_interval and checkpoint_interval must not be negative.")

    @property
    def prompts_per_iteration(self) -> int:
        """Prompt rows one iteration samples; each is answered ``group_size`` times."""
        return self.num_rollouts // self.group_size

    @property
    def optimizer_steps_per_iteration(self) -> int:
        return self.ppo_epochs * (self.num_rollouts // self.mini_batch_size)

    def to_dict(self) -> dict:
        return asdict(self)


def _divisor_near(n: int, wanted: int) -> int:
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    return min(divisors, key=lambda d: abs(d - wanted))


# Settings for the embedded default (a ~1M-parameter model trained from scratch): short prompts, two trainable
# layers of four, and each prompt answered four times per iteration (group_size), each answer scored against its
# three siblings. Against the stand-in RMs only about a quarter of the reward's variance is within a prompt
# (benchmarks/bench_reward_variance.py); the rest is how easy the prompt is to score, which a critic this small
# does not learn (explained variance ~0.1), so without the group baseline the advantages were mostly noise and
# PPO did not beat its SFT start at any learning rate (docs/ppo.md). With it, lr 5e-5 for 30 iterations does; lr 1e-4
# for 60 gains more reward but loses more of the user's words (measured there).
# Held-out evaluation uses the SFT run's whole dev split (200 prompts). Only keys the user did not give.
EMBEDDED_DEFAULT_PRESET = {
    "num_rollouts": 32, "chunk_size": 16, "group_size": 4, "mini_batch_size": 8, "max_new_tokens": 48,
    "learning_rate": 5e-5, "init_kl_coef": 0.3, "kl_target": 2.0, "num_layers_unfrozen": 2, "total_steps": 480,
    "eval_interval": 15, "checkpoint_interval": 15, "eval_size": 200, "kl_horizon": 1000,
    "init_value_from_scores": True,
}
# EasyNLP flags that map onto PPO settings (flag -> PPOConfig field); the rest do not apply to RL.
FLAG_TO_FIELD = {"learning_rate": "learning_rate", "micro_batch_size": "micro_batch_size",
                 "max_grad_norm": "max_grad_norm", "weight_decay": "weight_decay",
                 "save_checkpoint_steps": "checkpoint_interval"}
UNUSED_FLAGS = {"epoch_num": "total_steps", "sequence_length": "max_new_tokens",
                "gradient_accumulation_steps": "mini_batch_size (with --micro_batch_size)",
                "warmup_proportion": None, "logging_steps": None}
