"""The int8 CPU path (``quantize=int8``) against fp32, side by side: speed, memory, and how much outputs move.

Per model shape (random weights: ``tiny``, ``bloom-560m``, ``bloom-1b1``, both BLOOM shapes with the real
250,880-token vocabulary) one fp32 model and its int8 copy, quantized by the Predictor itself
(``PredictorParams(quantize="int8")``), are measured in one run:

* decode tokens/s of batch prediction: the Predictor's fast sampler at ``batch_size * returns`` rows, prefill
  excluded, per wall second and per CPU second of the process, repetitions interleaved, median kept;
* peak resident memory: in a fresh process per variant (the allocator of the timing process keeps what it
  freed), after loading (and quantizing) and while one batch is predicted;
* drift on a fixed prompt set: greedy outputs of both (``new_tokens`` forced), the share that are identical,
  and mean |Δ log p| of the fp32 greedy tokens scored by both models (teacher forcing).

``--model_dir``: the drift measures also on a trained model (random weights say little about greedy margins).

    .venv/bin/python benchmarks/bench_int8.py --shapes bloom-560m,bloom-1b1 --model_dir /tmp/qs/beautiful_prompt
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.bench_predict import MODEL_SHAPES as PREDICT_SHAPES, PeakRSS  # noqa: E402
from benchmarks.random_bloom import random_bloom  # noqa: E402
from benchmarks.results import emit_result  # noqa: E402
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL_SHAPES = {**PREDICT_SHAPES, "bloom-1b1": {"hidden_size": 1536, "n_layer": 24, "n_head": 16, "vocab_size": 250880}}
VARIANTS = ("fp32", "int8")
MEASURES = ("decode", "drift", "memory")
QUICK = {"shapes": ["tiny"], "batch_size": 2, "returns": 2, "steps": 2, "repeats": 1, "drift_prompts": 4,
         "new_tokens": 3}


def build_variant(shape: str, variant: str, seed: int = 0):
    """(predictor, raw prompts) of a random BLOOM of ``shape``, int8 through ``PredictorParams(quantize=...)``."""
    model, tokenizer, pairs = random_bloom(**MODEL_SHAPES[shape], seed=seed)
    return predictor_of(model.eval(), tokenizer, variant), [p["raw_prompt"] for p in pairs]


def predictor_of(model, tokenizer, variant: str):
    """A CPU Predictor of ``model`` (quantized in place for ``int8``): the path ``quantize=int8`` takes."""
    from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

    params = PredictorParams(device="cpu", quantize="int8" if variant == "int8" else "none")
    return BeautifulPromptPredictor(None, params, model=model, tokenizer=tokenizer)


@torch.no_grad()
def measure_decode(model, tokenizer, prompts: Sequence[str], batch_size: int, returns: int, steps: int) -> dict:
    """Decode tokens/s of the Predictor's fast sampler at ``batch_size * returns`` rows, prefill excluded (a run
    of 1 + ``steps`` new tokens minus a run of 1): per wall second, and per CPU second of this process (the
    figure that other processes on a shared machine disturb least)."""
    from easynlp_bp.prompting import sampling
    from easynlp_bp.text.template import build_prompt

    batch = tokenizer([build_prompt(p) for p in prompts[:batch_size]], return_tensors="pt", padding=True,
                      add_special_tokens=False)
    wall, cpu = {}, {}
    for n in (1, 1 + steps):
        settings = sampling.SamplingSettings(
            max_new_tokens=n, min_new_tokens=n, num_return_sequences=returns, top_k=50, top_p=0.95,
            repetition_penalty=1.2, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        sampling.sample_sequences(model, batch["input_ids"], batch["attention_mask"], settings)
        wall[n], cpu[n] = time.perf_counter() - wall_start, time.process_time() - cpu_start
    tokens = batch_size * returns * steps
    return {"wall": tokens / max(wall[1 + steps] - wall[1], 1e-9), "cpu": tokens / max(cpu[1 + steps] - cpu[1], 1e-9)}


@torch.no_grad()
def token_logprobs(model, ids: torch.Tensor, mask: torch.Tensor, start: int) -> torch.Tensor:
    """(B, T - start): log p of ``ids[:, start:]`` under ``model``, each given the tokens before it."""
    logits = model(input_ids=ids, attention_mask=mask).logits[:, start - 1:-1].float()  # (B, T - start, V)
    return logits.log_softmax(-1).gather(-1, ids[:, start:, None]).squeeze(-1)


@torch.no_grad()
def greedy_drift(reference, quantized, tokenizer, prompts: Sequence[str], new_tokens: int,
                 batch_size: int = 16) -> dict:
    """How far ``quantized`` moves from ``reference`` on ``prompts``: greedy outputs (exactly ``new_tokens``, by
    HF ``generate``) and the log-probs of the reference's greedy tokens under both models."""
    from easynlp_bp.text.template import build_prompt

    identical, agree, drifts, ref_logprobs = 0, 0, [], []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer([build_prompt(p) for p in prompts[start:start + batch_size]], return_tensors="pt",
                          padding=True, add_special_tokens=False)
        width = batch["input_ids"].shape[1]
        kwargs = {"do_sample": False, "num_beams": 1, "max_new_tokens": new_tokens, "min_new_tokens": new_tokens,
                  "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
        ref_ids = reference.generate(**batch, **kwargs)  # (B, width + new_tokens)
        q_ids = quantized.generate(**batch, **kwargs)
        identical += int((ref_ids[:, width:] == q_ids[:, width:]).all(1).sum())
        agree += int((ref_ids[:, width:] == q_ids[:, width:]).sum())
        mask = torch.cat([batch["attention_mask"], torch.ones_like(ref_ids[:, width:])], dim=1)
        ref_lp = token_logprobs(reference, ref_ids, mask, width)
        drifts.append((ref_lp - token_logprobs(quantized, ref_ids, mask, width)).abs().flatten())
        ref_logprobs.append(ref_lp.flatten())
    drift, ref_lp = torch.cat(drifts), torch.cat(ref_logprobs)
    return {"prompts": len(prompts), "new_tokens": new_tokens, "identical_greedy_share": identical / len(prompts),
            "greedy_token_agreement": agree / (len(prompts) * new_tokens),
            "mean_abs_logprob_drift": float(drift.mean()), "max_abs_logprob_drift": float(drift.max()),
            "mean_fp32_greedy_logprob": float(ref_lp.mean())}


def memory_probe(spec: dict) -> dict:
    """In a fresh process: resident memory after building (and quantizing) one variant, and the peak while it
    samples one batch (``batch_size`` prompts x ``returns``, ``new_tokens`` forced)."""
    predictor, prompts = build_variant(spec["shape"], spec["variant"])
    predictor.model.generation_config.min_new_tokens = spec["new_tokens"]
    gc.collect()
    overrides = {"max_new_tokens": spec["new_tokens"], "num_return_sequences": spec["returns"], "guard": False}
    with PeakRSS() as rss:
        predictor.predict(prompts[:spec["batch_size"]], overrides)
    return {"model_loaded_mb": rss.base / 2**20, "peak_mb": rss.peak / 2**20}


def measure_memory(shape: str, variant: str, batch_size: int, returns: int, new_tokens: int) -> dict:
    spec = {"shape": shape, "variant": variant, "batch_size": batch_size, "returns": returns, "new_tokens": new_tokens}
    out = subprocess.run([sys.executable, str(HERE), "--_memory_probe", json.dumps(spec)], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory probe of {shape} {variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def weights_mb(model) -> float:
    """MiB of the model's distinct weight tensors (int8 packed weights included; a tied LM head counted once)."""
    tensors = {}
    for value in model.state_dict().values():
        for tensor in value if isinstance(value, tuple) else (value,):  # int8 Linear: (weight, bias)
            if isinstance(tensor, torch.Tensor):
                key = tensor.data_ptr() if tensor.is_quantized else tensor.untyped_storage().data_ptr()
                tensors[key] = tensor
    return sum(t.numel() * t.element_size() for t in tensors.values()) / 2**20


def bench_shape(shape: str, batch_size: int, returns: int, steps: int, repeats: int, drift_prompts: int,
                new_tokens: int, measures: Sequence[str] = MEASURES) -> dict:
    """fp32 and int8 of one random model shape: decode tokens/s, memory and drift (those in ``measures``)."""
    model, tokenizer, pairs = random_bloom(**MODEL_SHAPES[shape], seed=0)
    prompts = [p["raw_prompt"] for p in pairs]
    predictors = {"fp32": predictor_of(model.eval(), tokenizer, "fp32")}
    predictors["int8"] = predictor_of(copy.deepcopy(predictors["fp32"].model), tokenizer, "int8")
    models = {name: p.model for name, p in predictors.items()}
    result = {"shape": shape, "parameters": model.num_parameters(), "decode_rows": batch_size * returns,
              "decode_steps": steps, "weights_mb": {name: weights_mb(m) for name, m in models.items()}}
    if "decode" in measures:
        result.update(compare_decode(shape, models, tokenizer, prompts, batch_size, returns, steps, repeats))
    if "drift" in measures:
        result["drift"] = greedy_drift(models["fp32"], models["int8"], tokenizer, prompts[:drift_prompts], new_tokens)
    if "memory" in measures:
        del predictors, models, model  # the probes' fresh processes must not share the machine with these
        gc.collect()
        memory = {name: measure_memory(shape, name, batch_size, returns, steps + 1) for name in VARIANTS}
        result.update(peak_memory=memory, int8_memory_ratio=memory["int8"]["peak_mb"] / memory["fp32"]["peak_mb"])
    return result


def compare_decode(shape: str, models: dict, tokenizer, prompts, batch_size: int, returns: int, steps: int,
                   repeats: int) -> dict:
    """Decode tokens/s of both variants, repetitions alternating which goes first; medians and int8/fp32."""
    runs, load = {name: [] for name in VARIANTS}, []
    for rep in range(repeats):
        for name in VARIANTS[rep % 2:] + VARIANTS[:rep % 2]:
            load.append(os.getloadavg()[0])
            runs[name].append(measure_decode(models[name], tokenizer, prompts, batch_size, returns, steps))
            print(f"[{shape} rep {rep}] {name}: {runs[name][-1]['wall']:.1f} tokens/s, "
                  f"{runs[name][-1]['cpu']:.1f} per CPU second", file=sys.stderr, flush=True)
    median = {clock: {name: statistics.median(r[clock] for r in runs[name]) for name in VARIANTS}
              for clock in ("wall", "cpu")}
    return {"decode_tokens_per_s": runs, "median_decode_tokens_per_s": median,
            "int8_speedup": {clock: m["int8"] / m["fp32"] for clock, m in median.items()},
            "load_avg_1min_during": statistics.median(load)}


def trained_drift(model_dir: str, drift_prompts: int, new_tokens: int) -> dict:
    """The drift measures of a trained model directory (read only) on the same fixed prompts."""
    from easynlp_bp.default.pairs import make_pairs
    from easynlp_bp.models.causal_lm import BeautifulPromptModel

    loaded = BeautifulPromptModel.from_pretrained(model_dir)
    reference = predictor_of(loaded.model, loaded.tokenizer, "fp32")
    quantized = predictor_of(copy.deepcopy(reference.model), loaded.tokenizer, "int8")
    prompts = [p["raw_prompt"] for p in make_pairs(drift_prompts, seed=7)]  # not the random models' prompts
    return {"model_dir": model_dir, **greedy_drift(reference.model, quantized.model, loaded.tokenizer, prompts,
                                                   new_tokens)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="bloom-560m,bloom-1b1", help=f"Comma separated: {', '.join(MODEL_SHAPES)}.")
    parser.add_argument("--batch_size", type=int, default=8, help="Prompts per decode batch.")
    parser.add_argument("--returns", type=int, default=5, help="Sequences per prompt (rows = batch_size x returns).")
    parser.add_argument("--steps", type=int, default=6, help="Timed decode steps per measurement.")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--drift_prompts", type=int, default=32)
    parser.add_argument("--new_tokens", type=int, default=16, help="Greedy tokens per prompt for the drift.")
    parser.add_argument("--measures", default=",".join(MEASURES), help="Comma separated: decode, drift, memory.")
    parser.add_argument("--model_dir", help="A trained model directory: drift measures on it too (read only).")
    parser.add_argument("--quick", action="store_true", help="Tiny shape, a few prompts: checks the script runs.")
    parser.add_argument("--output", help="Also write the result JSON here.")
    parser.add_argument("--_memory_probe", help=argparse.SUPPRESS)  # internal: one variant in a fresh process
    args = parser.parse_args(argv)
    if args._memory_probe:
        print(json.dumps(memory_probe(json.loads(args._memory_probe))))
        return 0
    settings = {"shapes": [s for s in args.shapes.split(",") if s], "batch_size": args.batch_size,
                "returns": args.returns, "steps": args.steps, "repeats": args.repeats,
                "drift_prompts": args.drift_prompts, "new_tokens": args.new_tokens,
                "measures": [m for m in args.measures.split(",") if m]}
    if args.quick:
        settings.update(QUICK)
    for flag, given, known in (("--shapes", settings["shapes"], MODEL_SHAPES), ("--measures", settings["measures"],
                                                                             MEASURES)):
        unknown = sorted(set(given) - set(known))
        if unknown:
            parser.error(f"{flag}: unknown {', '.join(unknown)}; choose from {', '.join(known)}.")
    started = time.time()
    result = {"threads": torch.get_num_threads(), "engine": torch.backends.quantized.engine, "settings": settings,
              "load_avg_1min_start": os.getloadavg()[0],
              "shapes": [bench_shape(shape, *(settings[k] for k in ("batch_size", "returns", "steps", "repeats",
                                                                    "drift_prompts", "new_tokens", "measures")))
                         for shape in settings["shapes"]]}
    if args.model_dir and "drift" in settings["measures"]:
        result["trained"] = trained_drift(args.model_dir, settings["drift_prompts"], settings["new_tokens"])
    result["seconds"] = time.time() - started
    return emit_result(result, args.output)


if __name__ == "__main__":
    sys.exit(main())
