"""The outer PPO loop: prompt sampling, periodic evaluation, checkpoints, TensorBoard and the final plot.

Stops when ``config.total_steps`` optimizer steps are done (trlx's unit), checked after each iteration.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Optional, Sequence

import torch

from easynlp_bp.io.writers import to_json, write_jsonl
from easynlp_bp.ppo.checkpoint import load_checkpoint, save_checkpoint, save_final_policy
from easynlp_bp.ppo.trainer import reference_prompts_of
from easynlp_bp.progress import progress_bar
from easynlp_bp.training_plots import plot_curves

logger = logging.getLogger(__name__)


MIN_PROMPTS_TO_HOLD_OUT = 20


def hold_out_prompts(rows: Sequence[dict], eval_size: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Split one prompt table into (train, held-out): up to ``eval_size`` prompts, at most a tenth of them.

    The paper holds out 500 of its 40k PPO prompts. A table of fewer than 20 rows is not split (no
    held-out evaluation; the caller logs that). The split is the same for the same ``seed``.
    """
    rows = list(rows)
    n_held = min(eval_size, len(rows) // 10) if len(rows) >= MIN_PROMPTS_TO_HOLD_OUT else 0
    if n_held == 0:
        return rows, []
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
    held = set(order[:n_held])
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


class PromptSampler:
    """Endless shuffled passes over this process's shard of the prompt rows; its position is checkpointed."""

    def __init__(self, rows: Sequence[dict], seed: int, rank: int = 0, world_size: int = 1):
        self.rows = list(rows)[rank::world_size]
        if not self.rows:
            raise ValueError(f"No training prompts for process {rank} of {world_size}; give more prompt rows.")
        self.seed = seed
        self.epoch = 0
        self.cursor = 0
        self._order = self._permutation()

    def _permutation(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(len(self.rows), generator=generator).tolist()

    def next_batch(self, n: int) -> list[dict]:
        batch = []
        while len(batch) < n:
            if self.cursor == len(self._order):
                self.epoch, self.cursor = self.epoch + 1, 0
                self._order = self._permutation()
            batch.append(self.rows[self._order[self.cursor]])
            self.cursor += 1
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
        self._order = self._permutation()


def run_ppo(trainer, train_rows: Sequence[dict], eval_rows: Sequence[dict], output_dir: str,
            resume_from: Optional[str | Path] = None, keep_checkpoints: int = 2) -> dict:
    """Train ``trainer`` until ``config.total_steps`` optimizer steps; returns a summary of the run.

    Writes TensorBoard events to ``output_dir/runs``, ``metrics.jsonl`` (one line per iteration and
    evaluation), checkpoints, the final HF model directory in ``output_dir`` and ``ppo_curves.png``.
    """
    c = trainer.config
    acc = trainer.accelerator
    output = Path(output_dir)
    reference_prompts_of(train_rows)  # all rows have a reference prompt or none: fail now, not mid-run
    sampler = PromptSampler(train_rows, c.seed, acc.process_index, acc.num_processes)
    history: list[dict] = []
    if resume_from is not None:
        state = load_checkpoint(trainer, resume_from)
        sampler.load_state_dict(state["prompt_sampler"][acc.process_index] if isinstance(state["prompt_sampler"], list)
                                else state["prompt_sampler"])
        history = state.get("history", [])
    writer = _writer(output) if acc.is_main_process else None
    log = _Logger(writer, output / "metrics.jsonl" if acc.is_main_process else None, history)

    if trainer.iteration == 0 and eval_rows:
        log.write(_evaluate(trainer, eval_rows), trainer.global_step)
    bar = progress_bar(c.total_steps, "PPO", "step", initial=trainer.global_step, enabled=None if acc.is_main_process
                       else False)
    while trainer.global_step < c.total_steps:
        step_before = trainer.global_step
        stats = trainer.step(sampler.next_batch(c.prompts_per_iteration))
        log.write(stats, trainer.global_step)
        bar.update(trainer.global_step - step_before)
        bar.set_postfix(reward=f"{stats['reward/score_mean']:.3f}", kl=f"{stats['kl/observed']:.2f}", refresh=False)
        if acc.is_main_process:
            logger.info("iteration %d (step %d): reward %.4f, KL %.3f, β %.5f, %.1fs", trainer.iteration,
                        trainer.global_step, stats["reward/score_mean"], stats["kl/observed"], stats["kl/coef"],
                        stats["time/iteration"])
        done = trainer.global_step >= c.total_steps
        if eval_rows and ((c.eval_interval and trainer.iteration % c.eval_interval == 0) or done):
            log.write(_evaluate(trainer, eval_rows), trainer.global_step)
        if (c.checkpoint_interval and trainer.iteration % c.checkpoint_interval == 0) or done:
            sampler_states = _gather_objects(acc, sampler.state_dict())
            save_checkpoint(trainer, output, {"prompt_sampler": sampler_states, "history": log.history},
                            keep=keep_checkpoints)
    bar.close()
    if acc.is_main_process:
        save_final_policy(trainer, output)
        plot_curves(log.history, str(output / "ppo_curves.png"), ppo_curve_panels(log.history))
        if writer is not None:
            writer.close()
    acc.wait_for_everyone()
    evals = [h for h in log.history if "eval/reward_mean" in h]
    result = {"global_step": trainer.global_step, "iterations": trainer.iteration, "kl_coef": trainer.kl_ctl.value,
              "first_eval": evals[0] if evals else None, "last_eval": evals[-1] if evals else None,
              "history": log.history}
    if len(evals) >= 2:
        result["summary"] = held_out_summary(evals[0], evals[-1])
    return result


def held_out_summary(first: dict, last: dict) -> str:
    """One line: held-out reward and words kept at the start (the SFT model) and the end, and the final KL."""
    return (f"Held-out ({last.get('eval/prompts', 0)} prompts): reward SFT {first['eval/reward_mean']:.3f} -> RL "
            f"{last['eval/reward_mean']:.3f} (reference prompts {last.get('eval/ref_reward_mean', float('nan')):.3f}); "
            f"every word kept {first.get('eval/subject_all', float('nan')):.1%} -> "
            f"{last.get('eval/subject_all', float('nan')):.1%}; KL to SFT {last.get('eval/kl', float('nan')):.2f}.")


def _evaluate(trainer, eval_rows) -> dict:
    result = trainer.evaluate(eval_rows)
    samples = result.pop("samples")
    if trainer.accelerator.is_main_process:
        logger.info("eval at step %d: reward %.4f (reference prompts %.4f), KL %.3f; e.g. %s", trainer.global_step,
                    result["eval/reward_mean"], result["eval/ref_reward_mean"], result["eval/kl"], samples[:1])
    return {**result, "eval/samples": samples}


def _gather_objects(acc, obj) -> list:
    if acc.num_processes == 1:
        return [obj]
    from accelerate.utils import gather_object

    return gather_object([obj])


def _writer(output: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency of the test/train extras; metrics.jsonl still has it all
        logger.warning("tensorboard is not installed; metrics go to metrics.jsonl only.")
        return None
    return SummaryWriter(log_dir=str(output / "runs"))


class _Logger:
    """Writes each record to TensorBoard (numbers only) and metrics.jsonl, and keeps it in ``history``."""

    def __init__(self, writer, jsonl_path: Optional[Path], history: list[dict]):
        self.writer, self.jsonl_path, self.history = writer, jsonl_path, history
        if jsonl_path is not None:
            # metrics.jsonl restarts from the checkpoint's history: rows a killed run logged after its last
            # checkpoint are cut (they are logged again when the resumed run redoes those iterations)
            write_jsonl(str(jsonl_path), history)

    def write(self, record: dict, step: int) -> None:
        record = {**record, "step": step}
        self.history.append(record)
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step" and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)
            self.writer.flush()
        if self.jsonl_path is not None:
            with open(self.jsonl_path, "a", encoding="utf-8") as handle:
                handle.write(to_json(record, default=str) + "\n")


CURVE_PANELS = [("train reward (Δ vs reference)", ["reward/score_mean"]), ("held-out reward", ["eval/reward_mean"]),
                ("held-out subject words kept", ["eval/subject_mean", "eval/subject_all"]),
                ("KL (per sequence)", ["kl/observed", "eval/kl"]), ("β", ["kl/coef"])]


def ppo_curve_panels(history: Sequence[dict]) -> list[tuple[str, list[str]]]:
    """The ``(title, metric keys)`` panels of :data:`CURVE_PANELS` that ``history`` has data for, then one panel
    per reward term (its training and held-out means and the reference prompts' mean), whatever terms ran."""
    panels = [(title, keys) for title, keys in CURVE_PANELS if any(k in h for h in history for k in keys)]
    names = dict.fromkeys(k.split("/", 2)[2] for h in history for k in h
                          if k.startswith(("reward/term/", "eval/term/")))
    for name in names:
        panels.append((f"term: {name}", [f"reward/term/{name}", f"reward/reference/{name}", f"eval/term/{name}"]))
    return panels
