#!/usr/bin/env python
"""Mutation check: does the fast test suite notice when one line of the PPO / reward / SFT code breaks?

Each mutation below changes one line so that one item of the PPO checklist (or one rule of the reward /
SFT stages) is broken, the way real RLHF code has been broken. For each, the package is copied to a
scratch directory, the line is changed there, and the stage's fast tests run (``pytest -x``): a failing
run *kills* the mutant. The score is killed / total; survivors are listed with the reason they survive
(an ``explained`` entry says why the change cannot be seen by a test, e.g. an equivalent mutant).

Hand-picked mutations rather than a generic tool (mutmut): operator-swapping tools make hundreds of
mostly meaningless mutants (minutes each here on two CPU cores) and cannot target checklist items;
each entry here breaks something a reviewer would care about, so every survivor means a missing test.

    python scripts/mutation_check.py                  # all stages (~1 min per mutant on 2 CPU cores)
    python scripts/mutation_check.py --stage ppo      # only the PPO mutations
    python scripts/mutation_check.py --list           # show the mutations, run nothing
    python scripts/mutation_check.py --only K3-units  # one mutation by id

Exit status: 0 when every stage's kill rate (explained survivors excluded) reaches ``--min-score``
(default 0.95), 1 otherwise, 2 when a mutation no longer applies (the code moved: update its entry).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The fast tests each stage's mutants run against (each well under a minute on 2 CPU cores).
STAGE_TESTS = {
    "ppo": ["tests/ppo/test_ppo_math.py", "tests/ppo/test_ppo_call_sites.py", "tests/ppo/test_ppo_trainer.py"],  # ~40 s
    "reward": ["tests/reward/test_reward_formats.py", "tests/reward/test_reward_combined.py"],
    "sft": ["tests/sft/test_sft_data.py"],
}


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` by ``new`` in ``path`` (one line's change); ``breaks`` says what that breaks."""

    id: str
    path: str
    old: str
    new: str
    breaks: str
    occurrence: int = 1  # which occurrence of ``old`` to replace (1-based)
    explained: str = ""  # why a survivor cannot be caught by a test (equivalent mutant), if it survives
    stage_name: str = ""  # the stage whose tests run, when the file is outside its folder

    @property
    def stage(self) -> str:
        return self.stage_name or self.path.split("/")[1]


# Short names of the mutated files, to keep the table below readable.
A, T, R, L, K, V, S = (f"easynlp_bp/ppo/{n}.py" for n in
                       ("advantages", "trainer", "rollout", "losses", "kl_controller", "value_head", "running_stats"))
RF, RC, RD = "easynlp_bp/text/reward_formats.py", "easynlp_bp/reward/combined.py", "easynlp_bp/reward/data.py"
SD = "easynlp_bp/sft/data.py"

MUTATIONS = [
    # ------------------------------------------------------------ K1 token rewards
    Mutation("K1-kl-sign", A, "kl = (logprobs - ref_logprobs) * mask", "kl = (ref_logprobs - logprobs) * mask",
             "KL penalty with the wrong sign"),
    Mutation("K1-beta-sign", A, "rewards = -kl_coef * kl", "rewards = kl_coef * kl", "KL rewarded, not penalised"),
    Mutation("K1-score-at-end", A, "last] += scores", "-1] += scores", "score at the last column, not the last real token"),
    Mutation("K1-last-index", A, ".max(dim=1).values", ".min(dim=1).values", "last_token_index wrong"),
    Mutation("K1-unscaled-score", T, "compute_token_rewards(scores, batch.logprobs",
             "compute_token_rewards(batch.scores, batch.logprobs", "raw scores bypass scaling and clipping"),
    # ------------------------------------------------------------ K3/K4 adaptive KL
    Mutation("K3-units", T, "self._gather(kl.sum(dim=1))", "self._gather(kl.mean(dim=1))",
             "controller fed the per-token mean instead of the per-sequence sum"),
    Mutation("K3-n-steps", T, "n_steps=c.num_rollouts", "n_steps=c.mini_batch_size",
             "controller's n_steps is not the episodes per iteration"),
    Mutation("K3-clip", K, "min(max(current_kl / self.target - 1.0, -0.2), 0.2)",
             "min(max(current_kl / self.target - 1.0, -0.1), 0.1)", "error clipped at ±0.1"),
    Mutation("K3-direction", K, "self.value *= 1.0 + proportional_error", "self.value *= 1.0 - proportional_error",
             "β moves away from the target"),
    Mutation("K4-beta-after-kl", T, "kl_coef = self.kl_ctl.value", "kl_coef = self.config.init_kl_coef",
             "rewards ignore the adapted β"),
    # ------------------------------------------------------------ reward scaling
    Mutation("RS-no-scale", T, "scores = scores / max(self.running.std, 1e-8)", "scores = scores",
             "no running-std scaling"),
    Mutation("RS-batch-std", T, "scores = scores / max(self.running.std, 1e-8)",
             "scores = scores / max(float(scores.std()), 1e-8)", "batch std instead of the running std"),
    Mutation("RS-no-clip", T, "scores = scores.clamp(-c.cliprange_reward, c.cliprange_reward)", "scores = scores",
             "no reward clipping"),
    Mutation("RS-running-std", S, "self.std = (self.var * total / max(total - 1, 1)) ** 0.5",
             "self.std = self.var ** 0.5", "running std not Bessel-corrected"),
    Mutation("K6-penalty-target", T, "c.truncated_penalty * truncated.float()",
             "c.truncated_penalty * (~truncated).float()", "truncation penalty on the finished responses"),
    Mutation("R2-no-delta", T, "refs = reference_prompts_of(rows)", "refs = None",
             "reference prompts never reach the reward"),
    Mutation("R2-mixed-batch", T, "if len(missing) == len(rows):", "if missing:",
             "one row without a reference silently switches its batch to absolute rewards"),
    # ------------------------------------------------------------ U4 GAE, U1 whitening
    Mutation("U4-no-gamma", A, "delta = rewards[:, t] + gamma * next_value", "delta = rewards[:, t] + next_value",
             "γ dropped from δ"),
    Mutation("U4-no-lambda", A, "gamma * lam * next_advantage", "gamma * next_advantage", "λ dropped"),
    Mutation("U4-unmasked-values", A, "    values = values * mask\n", "\n", "values beyond EOS bootstrap the last token"),
    Mutation("U4-returns", A, "returns = advantages + values", "returns = advantages", "returns without values"),
    Mutation("U4-swap-call", T, "mask, c.gamma, c.lam)", "mask, c.lam, c.gamma)", "γ and λ swapped at the call site"),
    Mutation("U1-no-whiten", T, "advantages = masked_whiten(advantages, mask)", "advantages = advantages",
             "advantages not whitened"),
    Mutation("U1-unmasked-whiten", T, "advantages = masked_whiten(advantages, mask)",
             "advantages = masked_whiten(advantages, torch.ones_like(mask)) * mask", "whitening statistics include pads"),
    Mutation("U1-returns-after-whiten", T, "advantages = masked_whiten(advantages, mask)",
             "advantages = masked_whiten(advantages, mask); returns = (advantages + batch.values) * mask",
             "returns computed from whitened advantages"),
    Mutation("U1-whiten-scale", A, "whitened = (x - mean) * torch.rsqrt(var + eps)", "whitened = x - mean",
             "whitening only centres"),
    Mutation("U1-whiten-pads", A, "return whitened * mask_f", "return whitened", "pads get non-zero advantages"),
    Mutation("U1-biased-var", A, "var / (count - 1).clamp(min=1) if unbiased", "var / count.clamp(min=1) if unbiased",
             "whitening variance not Bessel-corrected (the reference's)"),
    Mutation("U1-masked-mean", A, "return (x * mask).sum() / mask.sum().clamp(min=1)", "return x.mean()",
             "masked mean over pads"),
    # ------------------------------------------------------------ P2/P4 masks and alignment
    Mutation("P2-mask-excludes-eos", R, "(positions.unsqueeze(0) <= first_eos.unsqueeze(1))",
             "(positions.unsqueeze(0) < first_eos.unsqueeze(1))", "the EOS token left out of the mask"),
    Mutation("P2-tokens-after-eos", R, "response_ids = torch.where(response_mask.bool(), response_ids,",
             "response_ids = torch.where(response_mask.bool() | True, response_ids,", "sampled tokens kept after EOS",
             explained="equivalent with HF generate, which already writes pad after a sequence's EOS (the line "
             "guards other generators); the tests check that pads follow EOS"),
    Mutation("P2-logprobs-unmasked", R, "batch.logprobs = torch.cat(logprobs) * mask",
             "batch.logprobs = torch.cat(logprobs)", "old log-probs not zero after EOS"),
    Mutation("P2-values-unmasked", R, "batch.values = torch.cat(values) * mask", "batch.values = torch.cat(values)",
             "old values not zero after EOS"),
    Mutation("P2-ref-unmasked", R, "batch.ref_logprobs = torch.cat(ref_logprobs) * mask",
             "batch.ref_logprobs = torch.cat(ref_logprobs)", "reference log-probs not zero after EOS"),
    Mutation("R1-eos-in-text", R, "skip_special_tokens=True", "skip_special_tokens=False",
             "</s> reaches the reward function"),
    Mutation("P4-logprob-shift", R, "logits[:, query_len - 1 : query_len - 1 + R]",
             "logits[:, query_len - 2 : query_len - 2 + R]", "log-probs read one position early"),
    Mutation("P4-value-shift", R, "values[:, query_len - 1 : query_len - 1 + response_len]",
             "values[:, query_len : query_len + response_len]", "values read one position late"),
    Mutation("N3-old-from-ref", R, "logprobs.append(response_logprobs(logits,",
             "logprobs.append(response_logprobs(reference(input_ids, attention_mask),",
             "old log-probs taken from the reference model"),
    # ------------------------------------------------------------ N1 temperature
    Mutation("N1-train-forward", T, "Q, c.temperature)", "Q, 1.0)", "training forward ignores temperature"),
    Mutation("N1-rollout-forward", R, "logprobs.append(response_logprobs(logits, response_ids, Q, temperature)",
             "logprobs.append(response_logprobs(logits, response_ids, Q, 1.0)", "old log-probs ignore temperature"),
    Mutation("N1-ref-forward", R, "response_logprobs(ref_logits, response_ids, Q, temperature)",
             "response_logprobs(ref_logits, response_ids, Q, 1.0)", "reference log-probs ignore temperature"),
    Mutation("N1-sampling", T, "temperature=c.temperature, top_k=c.top_k", "temperature=1.0, top_k=c.top_k",
             "rollouts sampled at temperature 1 whatever the setting"),
    Mutation("N4-fp32", R, "R].float() / temperature", "R] / temperature",
             "log-softmax in the model's dtype (not float32)"),
    # ------------------------------------------------------------ U2/U3 losses, U5/U6 update
    Mutation("U3-no-log-ratio-clamp", L, "log_ratio = (logprobs - old_logprobs).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)",
             "log_ratio = logprobs - old_logprobs", "no log-ratio clamp: NaN gradients on extreme ratios"),
    Mutation("U3-min", L, "torch.max(unclipped, clipped)", "torch.min(unclipped, clipped)", "optimistic (min) clipping"),
    Mutation("U3-clip-range", L, "1.0 - cliprange, 1.0 + cliprange", "1.0 - cliprange, 1.0 + 2 * cliprange",
             "asymmetric clip range"),
    Mutation("U2-value-max", L, "torch.max(loss_unclipped, loss_clipped)", "loss_unclipped", "no value clipping"),
    Mutation("U2-value-half", L, "loss = 0.5 * (", "loss = 1.0 * (", "value loss without the 0.5"),
    Mutation("U2-value-clip-anchor", L, "values_clipped = old_values + torch.clamp(values - old_values,",
             "values_clipped = torch.clamp(values,", "value clipped around 0, not the old value"),
    Mutation("U6-per-micro-batch", L, "loss = (torch.max(unclipped, clipped) * mask).sum() / n_tokens",
             "loss = (torch.max(unclipped, clipped) * mask).sum() / mask.sum()", "policy loss normalised per micro-batch"),
    Mutation("U6-value-per-micro-batch", L, "loss = 0.5 * (torch.max(loss_unclipped, loss_clipped) * mask).sum() / n_tokens",
             "loss = 0.5 * (torch.max(loss_unclipped, loss_clipped) * mask).sum() / mask.sum()",
             "value loss normalised per micro-batch"),
    Mutation("U-vf-coef", T, "loss = pg.loss + c.vf_coef * vf.loss", "loss = pg.loss + vf.loss", "vf_coef ignored"),
    Mutation("U5-no-shuffle", T, "torch.randperm(len(batch)).split(", "torch.arange(len(batch)).split(",
             "minibatches not shuffled"),
    Mutation("U5-one-epoch", T, "for epoch in range(c.ppo_epochs):", "for epoch in range(1):", "ppo_epochs ignored"),
    Mutation("U7-value-init", V, "nn.init.zeros_(self.value_head.weight)", "nn.init.normal_(self.value_head.weight)",
             "value head not zero-initialised"),
    Mutation("U7-value-bias-shift", T, "batch.values = (batch.values + offset) * mask", "batch.values = batch.values * mask",
             "critic bias init without shifting the old values"),
    Mutation("U8-trunk", V, "frozen.extend(layers[: n - num_layers_unfrozen])",
             "frozen.extend(layers[: n - num_layers_unfrozen - 1])", "one trunk layer too many trains"),
    Mutation("N5-dropout", V, "return super().train(False)", "return super().train(mode)", "dropout can be switched on",
             occurrence=1),
    Mutation("P1-pad-eos", T, "if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:",
             "if tokenizer.pad_token_id is None:", "pad == eos accepted"),
    # ------------------------------------------------------------ reward stage
    Mutation("RM-aes-eos", RF, 'return f"{prompt.strip()}{eos_token}"', 'return f"{prompt.strip()}"',
             "aesthetic RM input without EOS"),
    Mutation("RM-ps-format", RF, 'PICKSCORE_TEMPLATE = "Input: {raw_prompt}\\nOutput: {prompt}{eos}"',
             'PICKSCORE_TEMPLATE = "Input: {raw_prompt}\\nOutput:{prompt}{eos}"', "PickScore RM format changed"),
    Mutation("RM-type-branch", RF, '== "aesthetic":', '!= "aesthetic":', "formats swapped between RM types"),
    Mutation("RM-alpha-swap", RC, "rm_reward = (1.0 - self.alpha) * aesthetic + self.alpha * pick",
             "rm_reward = self.alpha * aesthetic + (1.0 - self.alpha) * pick", "α weighs the wrong RM"),
    Mutation("RM-ref-alpha", RC, "reference_reward = (1.0 - self.alpha) * reference_aesthetic + self.alpha * reference_pick",
             "reference_reward = 0.5 * reference_aesthetic + 0.5 * reference_pick", "reference reward not α-weighted"),
    Mutation("RM-delta-sign", RC, "total = rm_reward - reference_reward + length", "total = rm_reward + reference_reward + length",
             "delta added instead of subtracted"),
    Mutation("RM-delta-flag", RC, "use_reference = self.delta_reward and reference_prompts is not None",
             "use_reference = reference_prompts is not None", "delta_reward=False ignored"),
    Mutation("RM-ref-split", RC, "aesthetic, reference_aesthetic = aesthetic_all[:n], aesthetic_all[n:]",
             "reference_aesthetic, aesthetic = aesthetic_all[:n], aesthetic_all[n:]", "prompt and reference scores swapped"),
    Mutation("RM-length", RC, "n.clamp(max=window) - (n - window).clamp(min=0.0)",
             "n.clamp(max=window) + (n - window).clamp(min=0.0)", "length term has no penalty past the window"),
    Mutation("RM-label-scale", RD, "labels = reward_model.normalize(torch.tensor(", "labels = (lambda x: x)(torch.tensor(",
             "labels not normalised"),
    Mutation("RM-label-std", RD, "std = float(values.std()) if len(values) > 1 else 0.0",
             "std = float(values.std(unbiased=False)) if len(values) > 1 else 0.0", "label std not Bessel-corrected"),
    Mutation("RM-denormalize", "easynlp_bp/models/reward_model.py", "return outputs * self.config.label_std + self.config.label_mean",
             "return outputs + self.config.label_mean", "scores not mapped back to label units"),
    # ------------------------------------------------------------ SFT stage
    Mutation("SFT-labels-on-prompt", SD, '"labels": [IGNORE_INDEX] * len(prompt_ids) + target_ids',
             '"labels": prompt_ids + target_ids', "the instruction is learned"),
    Mutation("SFT-no-eos", "easynlp_bp/text/template.py", 'return f"{TARGET_SEPARATOR}{prompt.strip()}{eos_token}"',
             'return f"{TARGET_SEPARATOR}{prompt.strip()}"', "EOS not appended to the target", stage_name="sft"),
    Mutation("SFT-cut-instruction", SD, "target_ids = target_ids[: max_length - len(prompt_ids)]",
             "target_ids = target_ids[: max_length]", "long examples exceed max_length"),
    Mutation("SFT-pick-filter", SD, "if not score_value >= config.min_pick_score:", "if score_value > config.min_pick_score:",
             "pick_score filter inverted"),
    Mutation("SFT-pick-boundary", SD, "if not score_value >= config.min_pick_score:", "if not score_value > config.min_pick_score:",
             "pick_score exactly 18.5 dropped"),
    Mutation("SFT-min-tokens", SD, "if n_tokens < config.min_target_tokens:", "if n_tokens < config.min_target_tokens - 5:",
             "short targets kept"),
    Mutation("SFT-short-drop", SD, "rng.random() < config.short_target_drop", "rng.random() > config.short_target_drop",
             "70% of short targets dropped instead of 30%"),
    Mutation("SFT-pad-labels", SD, 'batch["labels"].append([IGNORE_INDEX] * pad + ex["labels"])',
             'batch["labels"].append([pad_token_id] * pad + ex["labels"])', "padding learned"),
]


def copy_tree(destination: Path) -> None:
    """Copy the files git would track (tracked + untracked-not-ignored) into ``destination``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for name in files:
        source = ROOT / name
        if source.is_file() and (name.startswith(("easynlp_bp/", "tests/", "modelzoo/", "examples/")) or name == "pytest.ini"):
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run_tests(workdir: Path, tests: list[str], timeout: float) -> tuple[bool, float, str]:
    """(passed, seconds, last output line) of ``pytest -x`` on ``tests`` with the copy first on the path."""
    env = {**os.environ, "PYTHONPATH": f"{workdir}{os.pathsep}{workdir / 'tests'}", "PYTHONDONTWRITEBYTECODE": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow", *tests]
    start = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, time.perf_counter() - start, "timeout (counted as killed)"
    lines = (result.stdout + result.stderr).strip().splitlines()
    return result.returncode == 0, time.perf_counter() - start, lines[-1] if lines else ""


def apply(workdir: Path, mutation: Mutation) -> str:
    """Mutate the copy in place; returns the original text to restore. Raises LookupError if stale."""
    path = workdir / mutation.path
    text = path.read_text(encoding="utf-8")
    index = -1
    for _ in range(mutation.occurrence):
        index = text.find(mutation.old, index + 1)
        if index < 0:
            raise LookupError(f"{mutation.id}: {mutation.old!r} (occurrence {mutation.occurrence}) is not in {mutation.path}")
    path.write_text(text[:index] + mutation.new + text[index + len(mutation.old):], encoding="utf-8")
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", choices=sorted(STAGE_TESTS), action="append", help="stage(s) to mutate (default: all)")
    parser.add_argument("--only", action="append", help="mutation id(s) to run")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--min-score", type=float, default=0.95, help="kill rate each stage must reach")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per test run")
    parser.add_argument("--output", help="write the results as JSON here")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if (not args.stage or m.stage in args.stage) and (not args.only or m.id in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.id:28s} {m.path:36s} {m.breaks}")
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="mutation_check_") as tmp:
        workdir = Path(tmp)
        copy_tree(workdir)
        stages = sorted({m.stage for m in chosen})
        for stage in stages:
            passed, seconds, tail = run_tests(workdir, STAGE_TESTS[stage], args.timeout)
            print(f"baseline {stage}: {'pass' if passed else 'FAIL'} in {seconds:.0f}s ({tail})", flush=True)
            if not passed:
                print("The unmutated tests fail; fix them before checking mutants.", file=sys.stderr)
                return 1
        for m in chosen:
            try:
                original = apply(workdir, m)
            except LookupError as err:
                print(f"STALE {err}", file=sys.stderr)
                return 2
            try:
                passed, seconds, tail = run_tests(workdir, STAGE_TESTS[m.stage], args.timeout)
            finally:
                (workdir / m.path).write_text(original, encoding="utf-8")
            status = "SURVIVED" if passed else "killed"
            print(f"{status:8s} {m.id:28s} {seconds:5.0f}s  {m.breaks}" + (f"  [{m.explained}]" if passed and m.explained else ""),
                  flush=True)
            results.append({"id": m.id, "stage": m.stage, "path": m.path, "breaks": m.breaks, "killed": not passed,
                            "explained": m.explained, "seconds": round(seconds, 1), "last_line": tail})
    return report(results, args)


def report(results: list[dict], args) -> int:
    ok = True
    summary = {}
    for stage in sorted({r["stage"] for r in results}):
        rows = [r for r in results if r["stage"] == stage]
        counted = [r for r in rows if r["killed"] or not r["explained"]]
        killed = sum(r["killed"] for r in counted)
        score = killed / max(len(counted), 1)
        summary[stage] = {"mutants": len(rows), "killed": killed, "explained_survivors": len(rows) - len(counted),
                          "score": round(score, 4)}
        ok &= score >= args.min_score
        print(f"{stage}: {killed}/{len(counted)} killed ({score:.0%}), {len(rows) - len(counted)} explained survivors")
    if args.output:
        Path(args.output).write_text(json.dumps({"summary": summary, "results": results}, indent=1), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
