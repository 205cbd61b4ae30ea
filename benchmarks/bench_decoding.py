"""Decoding before/after in one process: the sampler of another checkout (``--before``, e.g. a git worktree of the
previous commit) against this checkout's, alternating, on the same model and inputs, and the tokens compared.

``ppo``: rollout sampling on ``bench_ppo``'s shape (BLOOM hidden 256 × 6 layers, vocabulary 2,048, 64 prompts ×
64 new tokens, top_k 0 / top_p 1, chunks of 16, the trunk recorded at layer 4 as with the top third training).
``predict``: decode tokens/s on ``bench_predict``'s BLOOM-560m shape (16 prompts × 5 returns, top_k 50,
top_p 0.95, repetition penalty 1.2; prefill excluded: 1+steps new tokens minus 1) against its roofline.
CPU seconds (``time.process_time``) are reported beside wall seconds: with one thread they are what the work
itself cost on a machine that other processes share.

    git worktree add /tmp/before <commit>
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_decoding.py ppo --before /tmp/before
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_decoding.py predict --before /tmp/before

``--tiny`` runs both on a small model (the smoke test's shapes): the same code paths, numbers of no interest.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_sampling(checkout: Path):
    """``easynlp_bp/prompting/sampling.py`` of ``checkout`` as its own module (its project imports resolved there)."""
    sys.path.insert(0, str(checkout))
    try:
        spec = importlib.util.spec_from_file_location(f"sampling_{abs(hash(str(checkout)))}",
                                                      checkout / "easynlp_bp" / "prompting" / "sampling.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(checkout))
    return module


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


# (hidden, layers, prompts, new tokens, chunk) of the PPO rollouts; the predict shape is bench_predict's
PPO_SHAPES = {"paper": (256, 6, 64, 64, 16), "tiny": (32, 3, 8, 6, 4)}


def bench_ppo(samplers: dict, repeats: int, shape: str = "paper") -> dict:
    from benchmarks.random_bloom import random_bloom
    from easynlp_bp.models.kernels import use_fused_kernels
    from easynlp_bp.ppo.rollout import generate_responses
    from easynlp_bp.prompting import sampling

    hidden, layers, n_prompts, new_tokens, chunk = PPO_SHAPES[shape]
    model, tokenizer, pairs = random_bloom(hidden, layers)
    model.eval()
    use_fused_kernels(model)  # as the PPO trainer prepares its policy
    raw = [p["raw_prompt"] for p in pairs[:n_prompts]]

    def run():
        torch.manual_seed(0)
        return generate_responses(model, tokenizer, raw, chunk_size=chunk, max_new_tokens=new_tokens,
                                  temperature=1.0, top_k=0, top_p=1.0, device=torch.device("cpu"),
                                  trunk_layer=model.transformer.h[layers * 2 // 3 - 1])

    own = sampling.sample_sequences
    times, tokens = {name: [] for name in samplers}, {}
    for rep in range(repeats + 1):  # the first round warms up
        for name, module in samplers.items():
            sampling.sample_sequences = module.sample_sequences  # what chunk_sampler imports at call time
            try:
                batch, wall, cpu = timed(run)
            finally:
                sampling.sample_sequences = own
            tokens[name] = batch.response_ids
            if rep:
                times[name].append((wall, cpu))
    return {"times": times, "same_tokens": all(torch.equal(t, tokens["before"]) for t in tokens.values())}


def bench_predict(samplers: dict, repeats: int, steps: int = 6, shape: str = "bloom-560m") -> dict:
    from benchmarks.bench_predict import build_model, machine_roofline
    from easynlp_bp.text.template import build_prompt

    model, tokenizer, pool = build_model(shape)
    batch = tokenizer([build_prompt(p) for p in pool[:16]], return_tensors="pt", padding=True)
    times, tokens = {name: [] for name in samplers}, {}
    for rep in range(repeats):
        for name, module in samplers.items():
            def run(n):
                settings = module.SamplingSettings(
                    max_new_tokens=n, min_new_tokens=n, num_return_sequences=5, top_k=50, top_p=0.95,
                    repetition_penalty=1.2, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
                torch.manual_seed(rep)
                return module.sample_sequences(model, batch["input_ids"], batch["attention_mask"], settings)
            _, wall_1, cpu_1 = timed(lambda: run(1))
            out, wall_n, cpu_n = timed(lambda: run(1 + steps))
            times[name].append((wall_n - wall_1, cpu_n - cpu_1, wall_1, cpu_1))
            print(f"[rep {rep}] {name}: prefill {wall_1:.2f} s ({cpu_1:.2f} CPU), {steps} decode steps "
                  f"{wall_n - wall_1:.2f} s ({cpu_n - cpu_1:.2f} CPU)", file=sys.stderr, flush=True)
            tokens.setdefault(rep, {})[name] = out
    rows = 80
    weights_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    roof = machine_roofline()
    roofline_tps = rows / max(weights_bytes / (roof["read_gb_per_s"] * 1e9),
                              2 * model.num_parameters() * rows / (roof["matmul_gflop_per_s"] * 1e9))
    # the fastest of the repetitions: on a shared machine the other processes only ever add time
    decode = {name: {"tokens_per_s_wall": rows * steps / min(t[0] for t in ts),
                     "tokens_per_s_cpu": rows * steps / min(t[1] for t in ts),
                     "prefill_s_wall": min(t[2] for t in ts),
                     "prefill_s_cpu": min(t[3] for t in ts)} for name, ts in times.items()}
    for d in decode.values():
        d["roofline_fraction_wall"] = d["tokens_per_s_wall"] / roofline_tps
    same = all(torch.equal(by_name[n], by_name["before"]) for by_name in tokens.values() for n in by_name)
    return {"times": times, "decode": decode, "machine": roof, "roofline_tokens_per_s": roofline_tps,
            "same_tokens": same}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("ppo", "predict"))
    parser.add_argument("--before", required=True, help="A checkout (git worktree) whose sampler is 'before'.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="A small model: checks the bench runs, measures nothing.")
    args = parser.parse_args(argv)
    samplers = {"before": load_sampling(Path(args.before)), "after": load_sampling(ROOT)}
    load = [os.getloadavg()[0]]
    if args.what == "ppo":
        result = bench_ppo(samplers, args.repeats, shape="tiny" if args.tiny else "paper")
    else:
        result = bench_predict(samplers, args.repeats, shape="tiny" if args.tiny else "bloom-560m")
    load.append(os.getloadavg()[0])
    result.update({"threads": torch.get_num_threads(), "load_avg_1min": load})
    if args.what == "ppo":
        result["median_s"] = {n: {"wall": statistics.median(t[0] for t in ts), "cpu": statistics.median(t[1] for t in ts)}
                              for n, ts in result["times"].items()}
        result["min_s"] = {n: {"wall": min(t[0] for t in ts), "cpu": min(t[1] for t in ts)}
                           for n, ts in result["times"].items()}
    import json

    print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
