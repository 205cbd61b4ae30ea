"""Learning curves of the project's PPO against trl 0.11's classic ``PPOTrainer``, the anchor (issue 24, item 4).

Both start from the same SFT weights, see the same training prompts in the same order (the SFT run's train
table, sampled as the PPO app samples it), are scored by the same reward (the PPO run's terms, from its
``run_config.json``) and share every setting the two trainers have in common (from its ``ppo_config.json``):
rollouts per iteration, minibatch, PPO epochs, learning rate and AdamW betas/decay, adaptive KL (init, target,
horizon; both in per-sequence-sum units), GAE, clip ranges, value weight, gradient clip, running-std reward
scaling and its clip, undistorted sampling (top_k 0, top_p 1, the model's own generation config ignored), the
frozen bottom layers (trl's ``num_shared_layers = n_layer - num_layers_unfrozen``). What stays trl's own: no
leave-one-out baseline over a prompt's ``group_size`` responses, no value-head bias from the first scores,
trl's value head initialisation and its ratio threshold. The variant ``trl_0_11_group`` is trl 0.11 given the
project's group baseline: this process sends it each score minus the mean of its ``group_size - 1`` siblings'
(``leave_one_out_centered``, before the running-std scaling, as the project's trainer does).

trl 0.11 needs transformers 4.x, so it runs in a subprocess with its ``--target`` install (``bench_ppo.py``'s
:func:`install_trl`). That process cannot import the project's reward (transformers 5): it sends each batch of
(raw prompt, response, reference prompt) texts as one JSON line on its stdout, and this process answers with the
scores on its stdin. At each evaluation point the worker saves its policy's weights; this process then evaluates
both trainers' snapshots with one function, the project's held-out evaluation (``PPOTrainer.evaluate``: its
sampler, top_k 0, top_p 1, temperature and ``max_new_tokens`` of the config, seed ``seed + 1_000_003``): mean
reward (absolute, no reference delta), share of prompts keeping every content word, KL to the SFT model (summed
over the response). Identical weights thus give identical numbers, whichever trainer produced them.

    .venv/bin/python benchmarks/bench_trl_anchor.py --sft_dir outputs/beautiful_prompt \\
        --ppo_dir outputs/beautiful_prompt_ppo --eval_at 0,10,20,30 --output anchor.json
    .venv/bin/python benchmarks/bench_trl_anchor.py --sft_dir ... --ppo_dir ... --quick   # 2 iterations, 16 prompts
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

HERE = Path(__file__).resolve()
VARIANTS = ("project", "trl_0_11", "trl_0_11_group")
EVAL_SEED_OFFSET = 1_000_003  # PPOTrainer.evaluate samples under config.seed + this


# ---------------------------------------------------------------------------------------------- trl 0.11 side
def build_trl_trainer(spec: dict):
    """(trl 0.11 PPOTrainer, its tokenizer) from the SFT dir, with the project run's settings ``spec["ppo"]``."""
    import torch
    from transformers import GenerationConfig, PreTrainedTokenizerFast
    from trl import AutoModelForCausalLMWithValueHead, PPOConfig, PPOTrainer, create_reference_model

    c = spec["ppo"]
    torch.manual_seed(spec["seed"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(Path(spec["sft_dir"]) / "tokenizer.json"),
                                        padding_side="left", **spec["special_tokens"])
    # dropout off in the value head too (checklist N5; the SFT model's own dropout is 0)
    model = AutoModelForCausalLMWithValueHead.from_pretrained(spec["sft_dir"], summary_dropout_prob=0.0)
    # sample from the policy itself: the SFT dir's generation_config (repetition_penalty, top_k/top_p) stays out
    model.pretrained_model.generation_config = GenerationConfig(
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    ref_model = create_reference_model(model, num_shared_layers=spec["num_shared_layers"])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=c["learning_rate"],
                                  betas=(c["adam_beta1"], c["adam_beta2"]), eps=1e-8, weight_decay=c["weight_decay"])
    config = PPOConfig(
        batch_size=c["num_rollouts"], mini_batch_size=c["mini_batch_size"], ppo_epochs=c["ppo_epochs"],
        learning_rate=c["learning_rate"], init_kl_coef=c["init_kl_coef"], adap_kl_ctrl=c["kl_target"] is not None,
        target=c["kl_target"] or 6.0, horizon=c["kl_horizon"], gamma=c["gamma"], lam=c["lam"],
        cliprange=c["cliprange"], cliprange_value=c["cliprange_value"], vf_coef=c["vf_coef"],
        max_grad_norm=c["max_grad_norm"] or None, score_clip=c["cliprange_reward"] or None, seed=spec["seed"],
        log_with=None)
    return PPOTrainer(config, model, ref_model=ref_model, tokenizer=tokenizer, optimizer=optimizer), tokenizer


def trl_worker(spec: dict) -> None:
    """In the subprocess (trl 0.11 first on sys.path): PPO on ``spec["batches"]``; scores come from the parent.

    stdout is the channel to the parent (one JSON line per request); anything else printed goes to stderr.
    """
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    import torch
    from trl.trainer.utils import RunningMoments

    c = spec["ppo"]
    trainer, tokenizer = build_trl_trainer(spec)
    # trl 0.11.4's use_score_scaling fails on one process (RunningMoments.std is a float, step() calls .to on it),
    # so its scaling is done here with its own RunningMoments, as step() would: scores / (running std + eps)
    running = RunningMoments(trainer.accelerator) if c["scale_reward"] == "running" else None
    generation = dict(max_new_tokens=c["max_new_tokens"], do_sample=True, temperature=c["temperature"], top_k=0,
                      top_p=1.0, repetition_penalty=1.0, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id)
    snapshots, iterations = {}, []
    eval_at = set(spec["eval_at"])

    def snapshot(iteration: int) -> None:
        path = Path(spec["snapshot_dir"]) / f"trl_0_11_{iteration}.pt"
        torch.save(trainer.accelerator.unwrap_model(trainer.model).pretrained_model.state_dict(), path)
        snapshots[iteration] = str(path)

    for iteration, rows in enumerate(spec["batches"]):
        if iteration in eval_at:
            snapshot(iteration)
        start = time.perf_counter()
        queries = [torch.tensor(tokenizer(r["query"], add_special_tokens=False).input_ids) for r in rows]
        responses = trainer.generate(queries, batch_size=c["chunk_size"], return_prompt=False, **generation)
        texts = [tokenizer.decode(r, skip_special_tokens=True).strip() for r in responses]
        channel.write(json.dumps({"score": {"raw_prompts": [r["raw_prompt"] for r in rows], "responses": texts,
                                            "references": [r["prompt"] for r in rows]}}) + "\n")
        scores = json.loads(sys.stdin.readline())["scores"]
        scaled = torch.tensor(scores, dtype=torch.float32)
        if running is not None:
            running.update(scaled)
            scaled = scaled / (running.std + torch.finfo(scaled.dtype).eps)
        stats = trainer.step(queries, responses, list(scaled))
        iterations.append({"seconds": time.perf_counter() - start, "score_mean": statistics.mean(scores),
                           "kl": float(stats["objective/kl"]), "kl_coef": float(stats["objective/kl_coef"]),
                           "response_length": statistics.mean(len(r) for r in responses)})
    if len(spec["batches"]) in eval_at:
        snapshot(len(spec["batches"]))
    import transformers
    import trl

    channel.write(json.dumps({"done": {"iterations": iterations, "snapshots": snapshots,
                                       "versions": {"trl": trl.__version__,
                                                    "transformers": transformers.__version__}}}) + "\n")


def run_trl(target: Path, spec: dict, reward, group_size: int = 1) -> dict:
    """Start the trl 0.11 worker and score its batches with ``reward`` until it reports done; ``group_size`` > 1:
    it gets the scores centred on each group's leave-one-out mean."""
    env = {**os.environ, "PYTHONPATH": str(target), "TOKENIZERS_PARALLELISM": "false"}
    spec_path = Path(spec["snapshot_dir"]) / "trl_spec.json"
    spec_path.write_text(json.dumps(spec))
    with tempfile.TemporaryFile("w+") as errors:
        worker = subprocess.Popen([sys.executable, str(HERE), "--_trl_worker", str(spec_path)], env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True,
                                  cwd=str(HERE.parent))
        result = serve_scores(worker, reward, group_size)
        if worker.wait() != 0 or result is None:
            errors.seek(0)
            raise RuntimeError(f"trl 0.11 worker failed (exit {worker.returncode}):\n{errors.read()[-3000:]}")
    result["snapshots"] = {int(k): path for k, path in result["snapshots"].items()}  # JSON keys are strings
    return result


def serve_scores(worker: subprocess.Popen, reward, group_size: int = 1) -> Optional[dict]:
    """Answer the worker's ``{"score": ...}`` lines with ``{"scores": [...]}``; return its ``done`` payload.

    ``group_size`` > 1: the batch is consecutive groups of answers to one prompt, and each score is sent minus the
    mean of its group siblings' (the project trainer's baseline).
    """
    import torch

    from easynlp_bp.ppo.advantages import leave_one_out_centered

    for line in worker.stdout:
        message = json.loads(line)
        if "done" in message:
            return message["done"]
        batch = message["score"]
        scores = torch.as_tensor(reward(batch["raw_prompts"], batch["responses"], batch["references"]),
                                 dtype=torch.float32)
        scores = leave_one_out_centered(scores, group_size)
        worker.stdin.write(json.dumps({"scores": [float(s) for s in scores]}) + "\n")
        worker.stdin.flush()
    return None


# ---------------------------------------------------------------------------------------------- project side
def load_run(sft_dir: str, ppo_dir: str, eval_size: Optional[int], seed: Optional[int]):
    """(PPOConfig, reward, reward terms, train rows, held-out rows) as the PPO app builds them for this run."""
    from dataclasses import replace

    from easynlp_bp.ppo.config import PPOConfig
    from easynlp_bp.ppo.prompt_tables import read_prompt_rows, sft_data_tables
    from easynlp_bp.reward.spec import build_reward
    from easynlp_bp.reward.terms import TermContext

    run = json.loads((Path(ppo_dir) / "run_config.json").read_text(encoding="utf-8"))
    params, resolved = run["user_defined_parameters"], run["resolved"]
    config = PPOConfig(**resolved["ppo_config"])
    config = replace(config, **{k: v for k, v in (("eval_size", eval_size), ("seed", seed)) if v is not None})
    spec = [tuple(term) for term in resolved["reward_terms"]]
    context = TermContext(params.get("reward_model_aesthetic"), params.get("reward_model_pickscore"),
                          heuristic=params.get("reward") == "heuristic",
                          consistency_model=params.get("consistency_model"),
                          batch_size=params.get("reward_batch_size", 32))
    reward = build_reward(spec, context, delta_reward=params.get("delta_reward", True))
    max_chars = params.get("max_input_chars", 2000)
    train, dev = (read_prompt_rows(table, raw_column="raw_prompt", prompt_column="prompt", max_chars=max_chars)[0]
                  for table in sft_data_tables(sft_dir))
    return config, reward, spec, train, dev[: config.eval_size]


def training_batches(train_rows: list[dict], config, iterations: int) -> list[list[dict]]:
    """Each iteration's rows as the project's trainer sees them: PromptSampler order, each prompt group_size times."""
    from easynlp_bp.ppo.training_loop import PromptSampler
    from easynlp_bp.text.template import build_prompt

    sampler = PromptSampler(train_rows, config.seed)
    batches = []
    for _ in range(iterations):
        rows = sampler.next_batch(config.prompts_per_iteration)
        batches.append([{"raw_prompt": r["raw_prompt"], "prompt": r["prompt"], "query": build_prompt(r["raw_prompt"])}
                        for r in rows for _ in range(config.group_size)])
    return batches


def run_project(sft_dir: str, config, reward, batches: list[list[dict]], eval_at: Sequence[int]) -> dict:
    """The project's PPOTrainer on ``batches`` (one ``step`` each); weights snapshotted at ``eval_at``."""
    import torch

    from easynlp_bp.models.causal_lm import BeautifulPromptModel
    from easynlp_bp.ppo.trainer import PPOTrainer

    bp = BeautifulPromptModel.from_pretrained(sft_dir)
    trainer = PPOTrainer(bp.model, None, reward, bp.tokenizer, config)
    snapshots, iterations = {}, []

    def snapshot(iteration: int) -> None:
        snapshots[iteration] = {k: v.detach().clone() for k, v in trainer.unwrapped.base.state_dict().items()}

    for iteration, rows in enumerate(batches):
        if iteration in eval_at:
            snapshot(iteration)
        start = time.perf_counter()
        # step() takes each prompt once and answers it group_size times itself
        stats = trainer.step(rows[:: config.group_size])
        iterations.append({"seconds": time.perf_counter() - start, "score_mean": stats["reward/score_mean"],
                           "kl": stats["kl/observed"], "kl_coef": stats["kl/coef"],
                           "response_length": stats["rollout/response_length"]})
    if len(batches) in eval_at:
        snapshot(len(batches))
    del trainer
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return {"iterations": iterations, "snapshots": snapshots}


class HeldOutEvaluator:
    """The project's held-out evaluation (``PPOTrainer.evaluate``) of any weights of the SFT model's shape,
    with per-prompt numbers (for paired differences)."""

    def __init__(self, sft_dir: str, config, reward, dev_rows: list[dict]):
        from easynlp_bp.models.causal_lm import BeautifulPromptModel
        from easynlp_bp.ppo.value_head import PolicyWithValueHead, ReferenceModel

        # the loader applies the kernel patches, as for the trainer's models (models/kernels.py)
        policy, reference = BeautifulPromptModel.from_pretrained(sft_dir), BeautifulPromptModel.from_pretrained(sft_dir)
        self.policy = PolicyWithValueHead(policy.model, -1)
        self.reference = ReferenceModel(reference.model)
        self.tokenizer, self.config, self.reward, self.rows = policy.tokenizer, config, reward, dev_rows

    def evaluate(self, state_dict: dict) -> dict:
        import torch

        from easynlp_bp.ppo.rollout import generate_responses, score_logprobs_and_values
        from easynlp_bp.text.faithfulness import subject_kept_share

        c = self.config
        self.policy.base.load_state_dict(state_dict)
        raws = [r["raw_prompt"] for r in self.rows]
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed + EVAL_SEED_OFFSET)
            batch = generate_responses(self.policy.base, self.tokenizer, raws, chunk_size=c.chunk_size,
                                       max_new_tokens=c.max_new_tokens, temperature=c.temperature, top_k=c.top_k,
                                       top_p=c.top_p, device=torch.device("cpu"))
            score_logprobs_and_values(self.policy, self.reference, batch, temperature=c.temperature,
                                      forward_batch_size=c.forward_batch_size, device=torch.device("cpu"))
        reward = self.reward.compute(raws, batch.responses, None).total  # absolute: no reference delta
        kept = [subject_kept_share(r, y) for r, y in zip(raws, batch.responses)]
        return {"reward": reward.tolist(), "kl": (batch.logprobs - batch.ref_logprobs).sum(1).tolist(),
                "all_words_kept": [float(k >= 1.0) for k in kept], "responses": batch.responses}


def curve(evaluator: HeldOutEvaluator, run: dict, eval_at: Sequence[int]) -> list[dict]:
    """One row per evaluation point: held-out means and the training seconds up to that point."""
    import torch

    rows = []
    for point in eval_at:
        weights = run["snapshots"][point]
        if isinstance(weights, str):
            weights = torch.load(weights, weights_only=True)
        scores = evaluator.evaluate(weights)
        seconds = sum(it["seconds"] for it in run["iterations"][:point])
        rows.append({"iteration": point, "reward": statistics.mean(scores["reward"]),
                     "all_words_kept": statistics.mean(scores["all_words_kept"]), "kl": statistics.mean(scores["kl"]),
                     "train_seconds": round(seconds, 2), "per_prompt_reward": scores["reward"],
                     "sample": {"raw_prompt": evaluator.rows[0]["raw_prompt"], "response": scores["responses"][0]}})
    return rows


def compare(curves: dict[str, list[dict]]) -> dict:
    """The held-out reward gains over iteration 0; against each other trainer (with the project's run): the paired
    (per held-out prompt) difference project - it at the last point, whether both started from the same numbers,
    and which is higher at the last point (|t| > 2)."""
    from benchmarks.bench_rl_gain import paired

    result = {"reward_gain_over_iteration_0": {name: [round(r["reward"] - rows[0]["reward"], 4) for r in rows]
                                               for name, rows in curves.items()},
              "last_point_difference_project_minus": {}, "same_start": {}, "higher_at_last_point": {}}
    others = [name for name in curves if name != "project"] if "project" in curves else []
    for name in others:
        ours, theirs = curves["project"], curves[name]
        difference = paired([a - b for a, b in zip(ours[-1]["per_prompt_reward"], theirs[-1]["per_prompt_reward"])])
        t = difference["t"] or 0.0
        result["last_point_difference_project_minus"][name] = difference
        result["same_start"][name] = ours[0]["per_prompt_reward"] == theirs[0]["per_prompt_reward"]
        result["higher_at_last_point"][name] = "project" if t > 2 else name if t < -2 else "neither (|t| <= 2)"
    return result


def run_benchmark(args) -> dict:
    import torch

    from benchmarks.bench_ppo import install_trl

    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants:
        raise ValueError(f"--variants={args.variants!r}: choose from {', '.join(VARIANTS)}.")
    eval_at = sorted({int(p) for p in args.eval_at.split(",")})
    if eval_at[0] != 0:
        raise ValueError(f"--eval_at={args.eval_at!r} must start at 0 (the SFT model, the curves' common start).")
    config, reward, spec, train_rows, dev_rows = load_run(args.sft_dir, args.ppo_dir, args.eval_size, args.seed)
    if any(name.startswith("trl_0_11") for name in variants):
        install_trl(Path(args.trl_target))
    batches = training_batches(train_rows, config, eval_at[-1])
    load = [os.getloadavg()[0]]
    runs = {}
    with tempfile.TemporaryDirectory(prefix="bench_trl_anchor_") as work:
        for name in variants:
            if name == "project":
                runs[name] = run_project(args.sft_dir, config, reward, batches, eval_at)
            else:
                from transformers import AutoConfig, AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(args.sft_dir)
                n_layer = AutoConfig.from_pretrained(args.sft_dir).num_hidden_layers
                unfrozen = config.num_layers_unfrozen
                (Path(work) / name).mkdir()
                runs[name] = run_trl(Path(args.trl_target), {
                    "sft_dir": str(Path(args.sft_dir).resolve()), "ppo": config.to_dict(), "seed": config.seed,
                    "batches": batches, "eval_at": eval_at, "snapshot_dir": str(Path(work) / name),
                    "num_shared_layers": n_layer - unfrozen if 0 < unfrozen < n_layer else None,
                    "special_tokens": {k: getattr(tokenizer, k) for k in ("bos_token", "eos_token", "unk_token",
                                                                          "pad_token")}},
                    reward, config.group_size if name == "trl_0_11_group" else 1)
            load.append(os.getloadavg()[0])
            print(f"{name}: {len(runs[name]['iterations'])} iterations, "
                  f"{sum(i['seconds'] for i in runs[name]['iterations']):.1f} s", file=sys.stderr, flush=True)
        evaluator = HeldOutEvaluator(args.sft_dir, config, reward, dev_rows)
        curves = {name: curve(evaluator, run, eval_at) for name, run in runs.items()}
    result = {
        "sft_dir": args.sft_dir, "ppo_dir": args.ppo_dir, "reward_terms": spec, "ppo_config": config.to_dict(),
        "train_prompts": len(train_rows), "held_out_prompts": len(dev_rows), "eval_at": eval_at,
        "threads": torch.get_num_threads(), "load_avg_1min": {"start": load[0], "end": load[-1]},
        "curves": {name: [{k: v for k, v in row.items() if k != "per_prompt_reward"} for row in rows]
                   for name, rows in curves.items()},
        "training": {name: run["iterations"] for name, run in runs.items()},
        "comparison": compare(curves),
    }
    trl_runs = [run for name, run in runs.items() if name.startswith("trl_0_11")]
    if trl_runs:
        result["trl_versions"] = trl_runs[0]["versions"]
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--_trl_worker"]:  # inside the subprocess: trl 0.11 is first on sys.path
        trl_worker(json.loads(Path(argv[1]).read_text()))
        return 0
    sys.path.insert(0, str(HERE.parents[1]))
    from benchmarks.results import emit_result

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sft_dir", default="outputs/beautiful_prompt",
                        help="SFT model both trainers start from; its data/train.jsonl and dev.jsonl give the prompts.")
    parser.add_argument("--ppo_dir", default="outputs/beautiful_prompt_ppo",
                        help="PPO run whose run_config.json gives the reward terms and PPO settings.")
    parser.add_argument("--eval_at", default=None,
                        help="Iterations to evaluate at, comma-separated, from 0; the last is the iteration count "
                             "(default 0,10,20,30).")
    parser.add_argument("--eval_size", type=int, default=None, help="Held-out prompts (default: the run's eval_size).")
    parser.add_argument("--seed", type=int, default=None, help="Seed of both trainers (default: the run's seed).")
    parser.add_argument("--variants", default=",".join(VARIANTS[:2]),
                        help=f"Trainers, comma-separated, of {', '.join(VARIANTS)}; trl_0_11* need the install into "
                             "--trl_target.")
    parser.add_argument("--trl_target", default=str(Path(tempfile.gettempdir()) / "easynlp_bp_trl011"),
                        help="Directory trl 0.11 is pip-installed into (kept between runs; shared with bench_ppo).")
    parser.add_argument("--quick", action="store_true",
                        help="Defaults --eval_at=0,1,2 --eval_size=16: a check that it runs.")
    parser.add_argument("--output", help="Also write the result JSON here.")
    args = parser.parse_args(argv)
    if args.eval_at is None:
        args.eval_at = "0,1,2" if args.quick else "0,10,20,30"
    if args.quick and args.eval_size is None:
        args.eval_size = 16
    return emit_result(run_benchmark(args), args.output)


if __name__ == "__main__":
    sys.exit(main())
