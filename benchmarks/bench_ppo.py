"""PPO iteration time against trl 0.11's classic ``PPOTrainer``, and the shared-trunk memory saving.

Both trainers get the same random BLOOM (saved once, loaded by both), the same 64 prompts, the same text
reward (:func:`comma_reward`), 64 rollouts sampled with top_k 0 / top_p 1, minibatch 16, 4 PPO epochs, the
adaptive KL controller (init 0.05, target 6, horizon 10000). trl 0.11.x needs transformers 4.x, so it is
installed into a separate ``--target`` directory and run in a subprocess that imports it from there (the
project's trl 1.16 stays untouched). Repetitions rotate the order of the variants; the first iteration of each
repetition is a warm-up and not counted. Memory: bytes of distinct tensors (weights, reference, gradients,
AdamW state) held after one iteration with ``num_layers_unfrozen = n_layer / 3`` against ``-1`` (full copy).

``--num_layers_unfrozen -1,third`` times both settings side by side in one run (the order rotated with the
trainers): the project trains the top N layers and reuses its frozen trunk's output; trl 0.11 gets
``num_shared_layers = n_layer - N`` (its bottom layers frozen, the reference a copy that runs them again).

The critic-free trainers of today's trl (1.16, the project's own environment) run in-process on the same model
and reward with the same number of sampled responses per iteration: ``rollouts / num_generations`` prompts ×
``num_generations`` completions, minibatch ``mini_batch_size``, ``ppo_epochs`` passes over them
(trl's ``steps_per_generation`` and ``num_iterations``), a KL anchor to a full reference copy (beta 0.04).
trl reports no phase split, so for them the iteration time is the wall time of the optimizer steps that
belong to one generation round.

    .venv/bin/python benchmarks/bench_ppo.py --repeats 3 --iterations 3 --output ppo.json
    .venv/bin/python benchmarks/bench_ppo.py --variants project,trl_0_11 --num_layers_unfrozen=-1,third
    .venv/bin/python benchmarks/bench_ppo.py --variants project,grpo,rloo   # without the trl 0.11 install
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
TRL_PACKAGES = [  # trl 0.11 and what it needs that differs from the project's environment
    "trl==0.11.4", "transformers==4.46.3", "tokenizers==0.20.3", "accelerate==0.34.2", "huggingface_hub==0.26.5",
    "datasets==3.1.0", "tyro==0.8.14", "docstring-parser", "shtab", "typeguard",
]
PHASES = ("generate", "score", "forward_ref_value", "update")
VARIANTS = ("project", "trl_0_11", "grpo", "rloo")


def comma_reward(texts: Sequence[str]) -> list[float]:
    """A cheap deterministic text reward both trainers call: comma-separated phrases (up to 8), a little length."""
    return [min(t.count(","), 8) / 8 + 0.01 * min(len(t.split()), 40) for t in texts]


# ---------------------------------------------------------------------------------------------- trl 0.11 side
def install_trl(target: Path) -> None:
    """pip-install trl 0.11 and its transformers 4.x into ``target`` (once; a marker file records success)."""
    marker = target / ".bench_ppo_installed"
    if marker.exists():
        return
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target)]
    subprocess.run(pip + ["--no-deps", *TRL_PACKAGES], check=True)
    subprocess.run(pip + ["aiohttp"], check=True)  # datasets 3.x imports it
    marker.write_text("\n".join(TRL_PACKAGES))


def trl_worker(spec: dict) -> dict:
    """Run in the subprocess with trl 0.11 first on sys.path: ``iterations`` PPO iterations, times per phase."""
    import torch
    from transformers import PreTrainedTokenizerFast
    from trl import AutoModelForCausalLMWithValueHead, PPOConfig, PPOTrainer

    torch.manual_seed(spec["seed"])
    # the project's tokenizer.json, read by tokenizers 0.20 (transformers 4.x does not know the saved class name)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(Path(spec["model_dir"]) / "tokenizer.json"),
                                        padding_side="left", **spec["special_tokens"])
    model = AutoModelForCausalLMWithValueHead.from_pretrained(spec["model_dir"])
    config = PPOConfig(batch_size=spec["rollouts"], mini_batch_size=spec["mini_batch_size"], ppo_epochs=spec["ppo_epochs"],
                       learning_rate=spec["learning_rate"], init_kl_coef=0.05, adap_kl_ctrl=True, target=6,
                       horizon=10000, gamma=1.0, lam=0.95, cliprange=0.2, cliprange_value=0.2, vf_coef=0.5,
                       max_grad_norm=1.0, seed=spec["seed"], log_with=None)
    # ref: a frozen copy; num_shared_layers freezes the policy's bottom layers (trl's "shared" trunk)
    trainer = PPOTrainer(config, model, ref_model=None, tokenizer=tokenizer,
                         num_shared_layers=spec.get("num_shared_layers"))
    queries = [torch.tensor(tokenizer(q, add_special_tokens=False).input_ids) for q in spec["queries"]]
    generation = dict(max_new_tokens=spec["new_tokens"], do_sample=True, top_k=0, top_p=1.0,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    iterations = []
    for _ in range(spec["iterations"]):
        start = time.perf_counter()
        responses = trainer.generate(queries, batch_size=spec["chunk_size"], return_prompt=False, **generation)
        t_generate = time.perf_counter() - start
        start = time.perf_counter()
        texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
        rewards = [torch.tensor(r) for r in comma_reward(texts)]
        t_score = time.perf_counter() - start
        start = time.perf_counter()
        stats = trainer.step(queries, responses, rewards)
        t_step = time.perf_counter() - start
        forward = float(stats["time/ppo/forward_pass"])
        update = float(stats["time/ppo/optimize_step"])
        iterations.append({"generate": t_generate, "score": t_score, "forward_ref_value": forward,
                           "update": update, "other": t_step - forward - update,
                           "total": t_generate + t_score + t_step,
                           "response_length": statistics.mean(len(r) for r in responses)})
    return {"iterations": iterations, "versions": _versions()}


def _versions() -> dict:
    import transformers
    import trl

    return {"trl": trl.__version__, "transformers": transformers.__version__}


def run_trl(target: Path, spec: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(target), "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    out = subprocess.run([sys.executable, str(HERE), "--_trl_worker", handle.name], env=env, capture_output=True,
                         text=True, check=False, cwd=str(HERE.parent))
    os.unlink(handle.name)
    if out.returncode != 0:
        raise RuntimeError(f"trl 0.11 worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- trl 1.16 side
def run_trl_group(model_dir: Path, queries: list[str], args, algorithm: str) -> dict:
    """trl 1.16 GRPO or RLOO for ``iterations`` generation rounds of ``rollouts`` completions; seconds per round."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    config_class, trainer_class = {"grpo": (GRPOConfig, GRPOTrainer), "rloo": (RLOOConfig, RLOOTrainer)}[algorithm]
    rounds_of_steps = args.rollouts // args.mini_batch_size
    steps_per_iteration = rounds_of_steps * args.ppo_epochs
    stamps: list[float] = []

    class StepClock(TrainerCallback):
        def on_train_begin(self, *unused, **kwargs):
            stamps.append(time.perf_counter())

        def on_step_end(self, *unused, **kwargs):
            stamps.append(time.perf_counter())

    def comma_reward_func(completions, **kwargs):
        return comma_reward(completions)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    prompts = args.rollouts // args.num_generations * args.iterations
    dataset = Dataset.from_dict({"prompt": (queries * (prompts // len(queries) + 1))[:prompts]})
    with tempfile.TemporaryDirectory() as output_dir:
        config = config_class(
            output_dir=output_dir, per_device_train_batch_size=args.mini_batch_size,
            steps_per_generation=rounds_of_steps, num_iterations=args.ppo_epochs, num_generations=args.num_generations,
            max_completion_length=args.new_tokens, temperature=1.0, top_k=0, top_p=1.0, beta=0.04,
            learning_rate=args.learning_rate, lr_scheduler_type="constant", max_grad_norm=1.0,
            max_steps=steps_per_iteration * args.iterations, logging_steps=steps_per_iteration, save_strategy="no",
            report_to=[], use_cpu=True, seed=args.seed, disable_dropout=True, dataloader_num_workers=0,
            disable_tqdm=True)
        trainer = trainer_class(model=AutoModelForCausalLM.from_pretrained(model_dir), reward_funcs=comma_reward_func,
                                args=config, train_dataset=dataset, processing_class=tokenizer,
                                callbacks=[StepClock()])
        try:
            trainer.train()
        finally:  # trl's accelerate state is process-wide; later trainers in this process must not inherit it
            from accelerate.state import AcceleratorState

            AcceleratorState._reset_state(reset_partial_state=True)
    lengths = [e["completions/mean_length"] for e in trainer.state.log_history if "completions/mean_length" in e]
    iterations = []
    for i in range(args.iterations):
        seconds = stamps[(i + 1) * steps_per_iteration] - stamps[i * steps_per_iteration]
        iterations.append({"total": seconds, "response_length": lengths[i] if i < len(lengths) else float("nan")})
    return {"iterations": iterations}


# ---------------------------------------------------------------------------------------------- project side
def build_model_dir(directory: Path, hidden_size: int, n_layer: int, vocab_size: int):
    """Save a random BLOOM + project tokenizer to ``directory``; return (raw prompts, queries, special tokens)."""
    from benchmarks.random_bloom import save_random_bloom
    from easynlp_bp.text.template import build_prompt

    tokenizer, pairs = save_random_bloom(directory, hidden_size, n_layer, tokenizer_vocab=vocab_size)
    raw = [p["raw_prompt"] for p in pairs]
    special = {name: getattr(tokenizer, name) for name in ("bos_token", "eos_token", "unk_token", "pad_token")}
    return raw, [build_prompt(r) for r in raw], special


def make_project_trainer(model_dir: Path, args, num_layers_unfrozen: int):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from easynlp_bp.ppo.config import PPOConfig
    from easynlp_bp.ppo.trainer import PPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    policy = AutoModelForCausalLM.from_pretrained(model_dir)
    config = PPOConfig(num_rollouts=args.rollouts, chunk_size=args.chunk_size, mini_batch_size=args.mini_batch_size,
                       forward_batch_size=args.chunk_size, ppo_epochs=args.ppo_epochs, max_new_tokens=args.new_tokens,
                       learning_rate=args.learning_rate, num_layers_unfrozen=num_layers_unfrozen, top_k=0, top_p=1.0,
                       seed=args.seed)
    reward_fn = lambda raw, prompts, refs: __import__("torch").tensor(comma_reward(prompts))  # noqa: E731
    return PPOTrainer(policy, None, reward_fn, tokenizer, config)


def run_project(model_dir: Path, raw_prompts: list[str], args, num_layers_unfrozen: int) -> dict:
    trainer = make_project_trainer(model_dir, args, num_layers_unfrozen)
    rows = [{"raw_prompt": r} for r in raw_prompts[: args.rollouts]]
    iterations = []
    for _ in range(args.iterations):
        stats = trainer.step(rows)
        times = {phase: stats[f"time/{phase}"] for phase in PHASES}
        iterations.append({**times, "total": sum(times.values()),
                           "response_length": stats["rollout/response_length"]})
    return {"iterations": iterations, "memory_bytes": trainer_memory_bytes(trainer),
            "trunk_cache_bytes": stats["memory/trunk_cache_bytes"]}


def trainer_memory_bytes(trainer) -> dict:
    """Bytes of distinct tensors the trainer holds: weights (policy + reference), gradients, optimizer state."""
    seen: set[int] = set()

    def total(tensors) -> int:
        size = 0
        for t in tensors:
            if t is None or not hasattr(t, "untyped_storage"):
                continue
            key = t.untyped_storage().data_ptr()
            if key not in seen:
                seen.add(key)
                size += t.untyped_storage().nbytes()
        return size

    modules = [trainer.unwrapped, trainer.reference]
    weights = total(t for m in modules for t in list(m.parameters()) + list(m.buffers()))
    # gradients live during each update only (zero_grad(set_to_none=True)): at their peak one per trainable weight
    grads = sum(p.numel() * p.element_size() for p in trainer.trainable_params)
    optimizer = total(v for state in trainer.optimizer.state.values() for v in state.values())
    return {"weights": weights, "gradients": grads, "optimizer": optimizer, "total": weights + grads + optimizer}


def summarize(runs: list[dict]) -> dict:
    timed = [it for run in runs for it in run["iterations"][1:]] or [it for run in runs for it in run["iterations"]]
    return {key: statistics.median(it[key] for it in timed) for key in timed[0]}


def run_benchmark(args) -> dict:
    import torch

    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or "project" not in variants:
        raise ValueError(f"--variants={args.variants!r}: choose from {', '.join(VARIANTS)}, project included "
                         "(the memory comparison and the ratios are against it).")
    if args.rollouts % args.mini_batch_size or args.rollouts % args.num_generations:
        raise ValueError(f"--rollouts={args.rollouts} must be a multiple of --mini_batch_size and --num_generations.")
    target = Path(args.trl_target)
    if "trl_0_11" in variants:
        install_trl(target)
    work = Path(tempfile.mkdtemp(prefix="bench_ppo_"))
    raw, queries, special = build_model_dir(work / "model", args.hidden_size, args.n_layer, args.vocab_size)
    spec = {"model_dir": str(work / "model"), "queries": queries[: args.rollouts], "rollouts": args.rollouts,
            "chunk_size": args.chunk_size, "mini_batch_size": args.mini_batch_size, "ppo_epochs": args.ppo_epochs,
            "new_tokens": args.new_tokens, "learning_rate": args.learning_rate, "iterations": args.iterations,
            "seed": args.seed, "special_tokens": special}
    settings = parse_unfrozen(args.num_layers_unfrozen, args.n_layer)
    runners = {}
    for n in settings:
        trl_spec = {**spec, "num_shared_layers": args.n_layer - n if n > 0 else None}
        runners[("project", n)] = lambda n=n: run_project(work / "model", raw, args, n)
        runners[("trl_0_11", n)] = lambda s=trl_spec: run_trl(target, s)
    runners[("grpo", -1)] = lambda: run_trl_group(work / "model", queries, args, "grpo")
    runners[("rloo", -1)] = lambda: run_trl_group(work / "model", queries, args, "rloo")
    order = [(name, n) for n in settings for name in variants if (name, n) in runners]  # grpo/rloo: -1 only
    runs, load = time_alternating(runners, order, args)
    result = {
        "model": {"hidden_size": args.hidden_size, "n_layer": args.n_layer, "vocab_size": args.vocab_size},
        "rollouts": args.rollouts, "new_tokens": args.new_tokens, "mini_batch_size": args.mini_batch_size,
        "ppo_epochs": args.ppo_epochs, "repeats": args.repeats, "iterations_per_repeat": args.iterations,
        "threads": torch.get_num_threads(), "load_avg_1min_during": statistics.median(load),
        "memory": memory_comparison(work / "model", raw, args, runs), "by_num_layers_unfrozen": {},
    }
    for n in settings:  # the first setting is also reported at the top level, as before the option existed
        medians = {name: summarize(r) for (name, m), r in runs.items() if m == n and r}
        ratios = {name: medians[name]["total"] / medians["project"]["total"] for name in medians}
        result["by_num_layers_unfrozen"][str(n)] = {"median_iteration_seconds": medians, "time_over_project": ratios}
    result.update({"runs": {name: r for (name, m), r in runs.items() if m == settings[0]},
                   **result["by_num_layers_unfrozen"][str(settings[0])]})
    if ("trl_0_11", settings[0]) in runs:
        result["trl_versions"] = runs[("trl_0_11", settings[0])][0]["versions"]
    return result


def time_alternating(runners: dict, order: list, args) -> tuple[dict, list]:
    """Run each (trainer, num_layers_unfrozen) ``repeats`` times, rotating the order; (runs, load averages)."""
    import torch

    runs = {key: [] for key in order}
    load = []
    for rep in range(args.repeats):
        for key in order[rep % len(order):] + order[:rep % len(order)]:
            load.append(os.getloadavg()[0])
            torch.manual_seed(args.seed + rep)
            result = runners[key]()
            runs[key].append(result)
            print(f"[rep {rep}] {key[0]} (num_layers_unfrozen {key[1]}): "
                  f"{[round(i['total'], 2) for i in result['iterations']]} s", file=sys.stderr, flush=True)
    return runs, load


def memory_comparison(model_dir: Path, raw: list[str], args, runs: dict) -> dict:
    """Trainer memory with the top third training (shared trunk) against -1 (full reference copy)."""
    third = max(1, args.n_layer // 3)
    one_iteration = argparse.Namespace(**{**vars(args), "iterations": 1})

    def measured(n: int) -> dict:
        done = runs.get(("project", n))
        return done[0] if done else run_project(model_dir, raw, one_iteration, n)

    full, shared = measured(-1), measured(third)
    return {"full_reference_copy": full["memory_bytes"], f"num_layers_unfrozen_{third}": shared["memory_bytes"],
            "ratio": shared["memory_bytes"]["total"] / full["memory_bytes"]["total"],
            "trunk_cache_bytes": shared["trunk_cache_bytes"]}


def parse_unfrozen(text: str, n_layer: int) -> list[int]:
    """``--num_layers_unfrozen`` values: -1 (all train) or 1..n_layer top layers; ``third`` = n_layer // 3."""
    values = []
    for item in str(text).split(","):
        value = max(1, n_layer // 3) if item.strip() == "third" else int(item)
        if value != -1 and not 0 < value <= n_layer:
            raise ValueError(f"--num_layers_unfrozen={text!r}: each value must be -1 or 1..{n_layer} (--n_layer), "
                             "or 'third'.")
        values.append(value)
    return values


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--_trl_worker"]:  # inside the subprocess: trl 0.11 is first on sys.path
        print(json.dumps(trl_worker(json.loads(Path(argv[1]).read_text()))))
        return 0
    sys.path.insert(0, str(HERE.parents[1]))
    from benchmarks.results import emit_result

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden_size", type=int, default=256)
    parser.add_argument("--n_layer", type=int, default=6)
    parser.add_argument("--vocab_size", type=int, default=2048)
    parser.add_argument("--rollouts", type=int, default=64)
    parser.add_argument("--chunk_size", type=int, default=16)
    parser.add_argument("--mini_batch_size", type=int, default=16)
    parser.add_argument("--ppo_epochs", type=int, default=4)
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=1e-5)
    parser.add_argument("--iterations", type=int, default=3, help="PPO iterations per repetition (first: warm-up).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trl_target", default=str(Path(tempfile.gettempdir()) / "easynlp_bp_trl011"),
                        help="Directory trl 0.11 is pip-installed into (kept between runs).")
    parser.add_argument("--num_generations", type=int, default=4, help="Completions per prompt for grpo/rloo.")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="Trainers to time, comma-separated; trl_0_11 needs the install into --trl_target.")
    parser.add_argument("--num_layers_unfrozen", default="-1",
                        help="Comma-separated settings timed side by side: -1 (all layers train, full reference "
                             "copy), N top layers (trl 0.11: num_shared_layers = n_layer - N), or 'third'. "
                             "grpo/rloo run at -1 only.")
    parser.add_argument("--output", help="Also write the result JSON here.")
    args = parser.parse_args(argv)
    result = run_benchmark(args)
    return emit_result(result, args.output)


if __name__ == "__main__":
    sys.exit(main())
