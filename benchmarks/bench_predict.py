"""Batch prediction: the Predictor against the seed snippet's loop (one ``generate`` per prompt), side by side.

Three variants on the same prompts, same sampling settings (top_k 50, top_p 0.95, repetition penalty 1.2,
5 return sequences) and the same number of new tokens (forced: ``min_new_tokens = max_new_tokens``):
``naive`` (the seed snippet in a loop), ``batched_generate`` (the Predictor before the fast sampler: left-padded
batches through HF ``generate``) and ``predictor``. Repetitions are interleaved (the machine is shared) and
the median is reported, with decode tokens/s against the memory roofline. Peak memory is measured in a fresh
process per variant (``--_memory_probe``): in the timing process the allocator keeps what earlier variants
freed, so a later variant's growth would read as zero. ``tiny`` is the embedded default's shape
(``modelzoo/tiny-bloom-bp``); ``bloom-560m`` is bigscience/bloom-560m's shape with its 250,880-token vocabulary.

    .venv/bin/python benchmarks/bench_predict.py --model bloom-560m --prompts 64 --new_tokens 8 --repeats 3
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.random_bloom import random_bloom  # noqa: E402  (after the checkout is on sys.path)
from benchmarks.results import emit_result  # noqa: E402
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SAMPLING = {"do_sample": True, "temperature": 1.0, "top_k": 50, "top_p": 0.95, "repetition_penalty": 1.2}
_TINY = json.loads((ROOT / "modelzoo" / "tiny-bloom-bp" / "config.json").read_text())
MODEL_SHAPES = {  # BloomConfig kwargs; vocab_size None: the project tokenizer's size
    "tiny": {"hidden_size": _TINY["hidden_size"], "n_layer": _TINY["n_layer"], "n_head": _TINY["n_head"],
             "vocab_size": None},
    "bloom-560m": {"hidden_size": 1024, "n_layer": 24, "n_head": 16, "vocab_size": 250880},
}


class PeakRSS:
    """Peak resident memory growth (bytes) of the process while the block runs, sampled every 5 ms."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _watch(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.growth = self.peak - self.base


def build_model(shape: str, seed: int = 0):
    """A random BLOOM of ``shape`` (eval mode), the project's BPE tokenizer (left padding), the raw prompts."""
    model, tokenizer, pairs = random_bloom(**MODEL_SHAPES[shape], seed=seed)
    tokenizer.padding_side = "left"
    return model.eval(), tokenizer, [p["raw_prompt"] for p in pairs]


def decode(tokenizer, ids: torch.Tensor) -> list[str]:
    vocab = len(tokenizer)
    return tokenizer.batch_decode([[t for t in row if t < vocab] for row in ids.tolist()], skip_special_tokens=True)


def run_naive(model, tokenizer, prompts, new_tokens, returns):
    """The seed snippet, one prompt at a time."""
    from easynlp_bp.text.template import build_prompt

    outputs = []
    for raw in prompts:
        input_ids = tokenizer(build_prompt(raw), return_tensors="pt").input_ids
        out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, num_return_sequences=returns,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **SAMPLING)
        outputs.append(decode(tokenizer, out[:, input_ids.shape[1]:]))
    return outputs


def run_batched_generate(model, tokenizer, prompts, new_tokens, returns, batch_size):
    """The Predictor's batching before the fast sampler: sorted, left-padded batches through HF generate."""
    from easynlp_bp.text.template import build_prompt

    encoded = [tokenizer(build_prompt(raw), add_special_tokens=False).input_ids for raw in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    outputs = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in index]}, padding=True, return_tensors="pt")
        out = model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, num_return_sequences=returns,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **SAMPLING)
        texts = decode(tokenizer, out[:, batch["input_ids"].shape[1]:])
        for position, original in enumerate(index):
            outputs[original] = texts[position * returns:(position + 1) * returns]
    return outputs


def make_predictor(model, tokenizer, new_tokens, returns, batch_size):
    from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

    params = PredictorParams(max_new_tokens=new_tokens, num_return_sequences=returns, batch_size=batch_size,
                             device="cpu", temperature=SAMPLING["temperature"], top_k=SAMPLING["top_k"],
                             top_p=SAMPLING["top_p"], repetition_penalty=SAMPLING["repetition_penalty"])
    return BeautifulPromptPredictor(None, params, model=model, tokenizer=tokenizer)


def machine_roofline(size_mb: int = 512) -> dict:
    """Measured read bandwidth (GB/s, a sum over a large tensor) and fp32 matmul GFLOP/s on this machine."""
    x = torch.ones(size_mb * 2**20 // 4)
    x.sum()
    times = []
    for _ in range(5):
        start = time.perf_counter(); x.sum(); times.append(time.perf_counter() - start)
    a = torch.randn(1024, 1024); b = torch.randn(1024, 1024)
    a @ b
    mm = []
    for _ in range(5):
        start = time.perf_counter(); a @ b; mm.append(time.perf_counter() - start)
    return {"read_gb_per_s": x.numel() * 4 / min(times) / 1e9, "matmul_gflop_per_s": 2 * 1024**3 / min(mm) / 1e9}


def measure_decode(model, tokenizer, prompts, batch_size: int, returns: int, steps: int = 6,
                   decoders: Sequence[str] = ("fast_sampler", "hf_generate")) -> dict:
    """Decode tokens/s (prefill excluded) at ``batch_size * returns`` sequences: fast sampler and HF generate."""
    from easynlp_bp.prompting import sampling
    from easynlp_bp.text.template import build_prompt

    batch = tokenizer([build_prompt(p) for p in prompts[:batch_size]], return_tensors="pt", padding=True)
    settings = lambda n: sampling.SamplingSettings(  # noqa: E731
        max_new_tokens=n, min_new_tokens=n, num_return_sequences=returns, top_k=50, top_p=0.95, repetition_penalty=1.2,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    runners = {
        "fast_sampler": lambda n: sampling.sample_sequences(model, batch["input_ids"], batch["attention_mask"], settings(n)),
        "hf_generate": lambda n: model.generate(**batch, max_new_tokens=n, min_new_tokens=n, num_return_sequences=returns,
                                                pad_token_id=tokenizer.pad_token_id,
                                                eos_token_id=tokenizer.eos_token_id, **SAMPLING),
    }
    tokens_per_s = {}
    for name in decoders:  # (1 + steps) new tokens minus 1 new token: the decode steps only
        run = runners[name]
        timings = {}
        for n in (1, 1 + steps):
            start = time.perf_counter()
            run(n)
            timings[n] = time.perf_counter() - start
        tokens_per_s[name] = batch_size * returns * steps / max(timings[1 + steps] - timings[1], 1e-9)
    return tokens_per_s


def make_runners(model, tokenizer, pool, n_prompts: int, new_tokens: int, returns: int, batch_size: int,
                 predictor_copy: bool = True) -> dict:
    """The three variants as zero-argument callables over the same ``n_prompts`` prompts.

    The Predictor fuses BLOOM's GeLU in place (easynlp_bp/models/fused_gelu.py); the loops a user writes run the model as
    transformers loads it, so the Predictor gets its own copy of the weights unless ``predictor_copy`` is False.
    """
    prompts = (pool * (n_prompts // len(pool) + 1))[:n_prompts]
    predictor = make_predictor(copy.deepcopy(model) if predictor_copy else model, tokenizer, new_tokens, returns,
                               batch_size)
    predictor.model.generation_config.min_new_tokens = new_tokens  # the same fixed budget for the Predictor
    return {
        "naive": lambda: run_naive(model, tokenizer, prompts, new_tokens, returns),
        "batched_generate": lambda: run_batched_generate(model, tokenizer, prompts, new_tokens, returns, batch_size),
        "predictor": lambda: predictor.predict(prompts),
    }


def memory_probe(spec: dict) -> dict:
    """In a fresh process: resident memory with the model loaded, and the peak while ``variant`` runs once."""
    model, tokenizer, pool = build_model(spec["model"])
    run = make_runners(model, tokenizer, pool, spec["prompts"], spec["new_tokens"], spec["returns"],
                       spec["batch_size"], predictor_copy=False)[spec["variant"]]  # one model resident
    with PeakRSS() as rss, torch.no_grad():
        run()
    return {"model_loaded_mb": rss.base / 2**20, "peak_mb": rss.peak / 2**20, "growth_mb": rss.growth / 2**20}


def measure_peak_memory(model_shape: str, variant: str, n_prompts: int, new_tokens: int, returns: int,
                        batch_size: int) -> dict:
    spec = {"model": model_shape, "variant": variant, "prompts": n_prompts, "new_tokens": new_tokens,
            "returns": returns, "batch_size": batch_size}
    out = subprocess.run([sys.executable, str(HERE), "--_memory_probe", json.dumps(spec)], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory probe for {variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_benchmark(model_shape: str, n_prompts: int, new_tokens: int, repeats: int, returns: int = 5,
                  batch_size: int = 16, variants: Sequence[str] = ("naive", "batched_generate", "predictor")) -> dict:
    torch.set_num_threads(torch.get_num_threads())
    model, tokenizer, pool = build_model(model_shape)
    runners = make_runners(model, tokenizer, pool, n_prompts, new_tokens, returns, batch_size)
    with torch.no_grad():
        runners["predictor"]()  # warm-up (allocator, thread pools); not timed
    seconds = {name: [] for name in variants}
    load = []
    for rep in range(repeats):
        order = list(variants[rep % len(variants):]) + list(variants[:rep % len(variants)])  # rotate the order
        for name in order:
            load.append(os.getloadavg()[0])
            torch.manual_seed(rep)
            with torch.no_grad():
                start = time.perf_counter()
                outputs = runners[name]()
                seconds[name].append(time.perf_counter() - start)
            assert len(outputs) == n_prompts and all(len(o) == returns for o in outputs)
            print(f"[rep {rep}] {name}: {seconds[name][-1]:.2f} s", file=sys.stderr, flush=True)
    # one batch of prompts is enough for memory: the naive loop's calls are independent, the Predictor's batches too
    memory = {name: measure_peak_memory(model_shape, name, min(n_prompts, batch_size), new_tokens, returns, batch_size)
              for name in variants}
    weights_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    roof = machine_roofline()
    rows = batch_size * returns
    with torch.no_grad():
        decode_tps = measure_decode(model, tokenizer, pool, batch_size, returns)
    step_seconds_memory = weights_bytes / (roof["read_gb_per_s"] * 1e9)
    step_seconds_compute = 2 * model.num_parameters() * rows / (roof["matmul_gflop_per_s"] * 1e9)
    roofline_tps = rows / max(step_seconds_memory, step_seconds_compute)
    result = {
        "model": model_shape, "parameters": model.num_parameters(), "weights_bytes": weights_bytes,
        "prompts": n_prompts, "new_tokens": new_tokens, "num_return_sequences": returns, "batch_size": batch_size,
        "repeats": repeats, "threads": torch.get_num_threads(), "load_avg_1min_during": statistics.median(load),
        "seconds": seconds, "median_seconds": {k: statistics.median(v) for k, v in seconds.items()},
        "prompts_per_s": {k: n_prompts / statistics.median(v) for k, v in seconds.items()},
        "peak_memory": memory,
        "machine": roof, "decode_rows": rows, "decode_tokens_per_s": decode_tps,
        "roofline_tokens_per_s": roofline_tps,
        "roofline_fraction": {k: v / roofline_tps for k, v in decode_tps.items()},
    }
    if "naive" in seconds:
        result["speedup_vs_naive"] = {k: result["median_seconds"]["naive"] / m
                                      for k, m in result["median_seconds"].items()}
    return result


def run_decode_only(model_shape: str, batch_size: int, returns: int, decoders: Sequence[str]) -> dict:
    """Only the roofline and decode tokens/s (no prompt loop): the cheap part of :func:`run_benchmark`."""
    model, tokenizer, pool = build_model(model_shape)
    weights_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    roof = machine_roofline()
    rows = batch_size * returns
    with torch.no_grad():
        decode_tps = measure_decode(model, tokenizer, pool, batch_size, returns, decoders=decoders)
    roofline_tps = rows / max(weights_bytes / (roof["read_gb_per_s"] * 1e9),
                              2 * model.num_parameters() * rows / (roof["matmul_gflop_per_s"] * 1e9))
    return {"model": model_shape, "weights_bytes": weights_bytes, "machine": roof, "decode_rows": rows,
            "load_avg_1min": os.getloadavg()[0], "decode_tokens_per_s": decode_tps,
            "roofline_tokens_per_s": roofline_tps,
            "roofline_fraction": {k: v / roofline_tps for k, v in decode_tps.items()}}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODEL_SHAPES), default="tiny")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--new_tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--variants", default="naive,batched_generate,predictor")
    parser.add_argument("--decode_only", default="", help="Only measure decode tok/s of these decoders "
                        "(fast_sampler,hf_generate) against the roofline, skipping the prompt loop.")
    parser.add_argument("--output", help="Also write the result JSON here.")
    parser.add_argument("--_memory_probe", help=argparse.SUPPRESS)  # internal: one variant in a fresh process
    args = parser.parse_args(argv)
    if args._memory_probe:
        print(json.dumps(memory_probe(json.loads(args._memory_probe))))
        return 0
    if args.decode_only:
        result = run_decode_only(args.model, args.batch_size, 5, [d for d in args.decode_only.split(",") if d])
    else:
        result = run_benchmark(args.model, args.prompts, args.new_tokens, args.repeats, batch_size=args.batch_size,
                               variants=[v for v in args.variants.split(",") if v])
    return emit_result(result, args.output)


if __name__ == "__main__":
    sys.exit(main())
