"""GPU benchmark (one CUDA GPU, bf16): a BLOOM-1b1-shaped model built from config (random weights, real vocabulary).

Measures SFT target tokens/s and model FLOPs utilisation (MFU), generation tokens/s (the Predictor's fast
sampler and HF ``generate`` on the same batch), and PPO iteration time with its phase split (generate /
score / reference+value forwards / update), to compare with the DeepSpeed-Chat anchor: OPT-1.3B actor +
350M critic, 256 prompt + 256 generated tokens, about 3.1 PPO samples/s on one A100-80G. ``--shape tiny
--device cpu`` runs the same code on a tiny model (the smoke test).

    .venv/bin/python benchmarks/bench_gpu.py --output gpu.json            # on a machine with a GPU
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.random_bloom import random_bloom  # noqa: E402  (after the checkout is on sys.path)
from benchmarks.results import emit_result  # noqa: E402
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHAPES = {  # BloomConfig kwargs
    "bloom-1b1": {"hidden_size": 1536, "n_layer": 24, "n_head": 16, "vocab_size": 250880},
    "tiny": {"hidden_size": 64, "n_layer": 3, "n_head": 4, "vocab_size": None},
}
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}  # dense, no sparsity


def peak_tflops(device: torch.device, override: Optional[float]) -> Optional[float]:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(shape: str, device: torch.device, dtype: torch.dtype):
    """Random BLOOM of ``shape`` + the project's BPE tokenizer; the pairs its tokenizer was trained on."""
    model, tokenizer, pairs = random_bloom(**SHAPES[shape], tokenizer_vocab=4096, n_pairs=2000)
    tokenizer.padding_side = "left"
    return model.to(device=device, dtype=dtype), tokenizer, pairs


def bench_sft(model, tokenizer, pairs, device, steps: int, batch_size: int, peak: Optional[float]) -> dict:
    """AdamW steps on the project's SFT batches (pad to the batch's longest): target tokens/s and MFU."""
    from easynlp_bp.sft.data import BeautifulPromptDataset, collate_left_padded

    dataset = BeautifulPromptDataset(pairs, tokenizer, 384)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95))
    model.train()
    n_params = model.num_parameters()
    times, tokens, targets = [], 0, 0
    for step in range(steps + 1):  # step 0: warm-up, not timed
        index = range(step * batch_size % len(dataset), step * batch_size % len(dataset) + batch_size)
        batch = collate_left_padded([dataset[i % len(dataset)] for i in index], tokenizer.pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        synchronize(device)
        start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        if step:
            times.append(time.perf_counter() - start)
            tokens += int(batch["attention_mask"].sum())
            targets += int((batch["labels"] != -100).sum())
    seconds = sum(times)
    flops = 6 * n_params * tokens  # weights' FLOPs (attention's are small at these lengths)
    result = {"steps": steps, "batch_size": batch_size, "target_tokens_per_s": targets / seconds,
              "tokens_per_s": tokens / seconds, "model_tflops_per_s": flops / seconds / 1e12}
    if peak:
        result["mfu"] = result["model_tflops_per_s"] / peak
    model.eval()
    del optimizer
    return result


@torch.no_grad()
def bench_generate(model, tokenizer, pairs, device, batch_size: int, returns: int, new_tokens: int) -> dict:
    """Decode tokens/s of the fast sampler and of HF generate, same batch, same forced length."""
    from easynlp_bp.prompting import sampling
    from easynlp_bp.text.template import build_prompt

    batch = tokenizer([build_prompt(p["raw_prompt"]) for p in pairs[:batch_size]], return_tensors="pt",
                      padding=True).to(device)
    settings = sampling.SamplingSettings(max_new_tokens=new_tokens, min_new_tokens=new_tokens, top_k=50, top_p=0.95,
                                         repetition_penalty=1.2, num_return_sequences=returns,
                                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    runs = {
        "fast_sampler": lambda: sampling.sample_sequences(model, batch["input_ids"], batch["attention_mask"], settings),
        "hf_generate": lambda: model.generate(**batch, do_sample=True, top_k=50, top_p=0.95, repetition_penalty=1.2,
                                              num_return_sequences=returns, max_new_tokens=new_tokens,
                                              min_new_tokens=new_tokens, pad_token_id=tokenizer.pad_token_id,
                                              eos_token_id=tokenizer.eos_token_id),
    }
    result = {"rows": batch_size * returns, "new_tokens": new_tokens}
    for name, run in runs.items():
        run()  # warm-up
        times = []
        for _ in range(3):
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            times.append(time.perf_counter() - start)
        result[f"{name}_tokens_per_s"] = batch_size * returns * new_tokens / statistics.median(times)
    return result


def bench_ppo(model, tokenizer, device, iterations: int, rollouts: int, prompt_tokens: int, new_tokens: int,
              mini_batch_size: int, ppo_epochs: int, num_layers_unfrozen: Optional[int] = None) -> dict:
    """PPO iterations of the project's trainer (value head on the policy, shared-trunk reference).

    ``num_layers_unfrozen`` None: the paper's 8 where the model has that many layers, else -1 (all train).
    """
    from accelerate import Accelerator

    from easynlp_bp.ppo.config import PPOConfig
    from easynlp_bp.ppo.trainer import PPOTrainer
    from easynlp_bp.text.template import build_prompt

    # raw prompts long enough that the instruction prompt has ``prompt_tokens`` tokens, as in the anchor
    filler = ("a castle on a hill, detailed, dramatic light, " * 200).split()
    rows = []
    for i in range(rollouts):
        words = [f"p{i}"]
        while len(tokenizer(build_prompt(" ".join(words)), add_special_tokens=False).input_ids) < prompt_tokens:
            words.append(filler[len(words) % len(filler)])
        rows.append({"raw_prompt": " ".join(words[:-1])})
    config = PPOConfig(num_rollouts=rollouts, chunk_size=min(rollouts, 32), mini_batch_size=mini_batch_size,
                       forward_batch_size=min(rollouts, 16), ppo_epochs=ppo_epochs, max_new_tokens=new_tokens,
                       learning_rate=5e-6, num_layers_unfrozen=num_layers_unfrozen or (8 if model.config.n_layer >= 8 else -1))
    reward = lambda raw, prompts, refs: torch.tensor([min(p.count(","), 8) / 8 for p in prompts])  # noqa: E731
    accelerator = Accelerator(mixed_precision="no", cpu=device.type != "cuda")
    trainer = PPOTrainer(model, None, reward, tokenizer, config, accelerator=accelerator)
    stats = [trainer.step(rows) for _ in range(iterations + 1)][1:]  # first iteration: warm-up
    phases = ("generate", "score", "forward_ref_value", "update")
    median = {p: statistics.median(s[f"time/{p}"] for s in stats) for p in phases}
    total = sum(median.values())
    return {"iterations": iterations, "rollouts": rollouts, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens,
            "ppo_epochs": ppo_epochs, "median_phase_seconds": median, "iteration_seconds": total,
            "samples_per_s": rollouts / total, "deepspeed_chat_anchor_samples_per_s": 3.1,
            "response_length": statistics.median(s["rollout/response_length"] for s in stats),
            "num_layers_unfrozen": config.num_layers_unfrozen,
            "trunk_cache_bytes": stats[-1]["memory/trunk_cache_bytes"]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="bloom-1b1")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--peak_tflops", type=float, help="Peak bf16 TFLOP/s for MFU (default: by GPU name).")
    parser.add_argument("--sft_steps", type=int, default=20)
    parser.add_argument("--sft_batch_size", type=int, default=16)
    parser.add_argument("--gen_batch_size", type=int, default=16)
    parser.add_argument("--gen_new_tokens", type=int, default=128)
    parser.add_argument("--ppo_iterations", type=int, default=2)
    parser.add_argument("--ppo_rollouts", type=int, default=64)
    parser.add_argument("--ppo_prompt_tokens", type=int, default=256)
    parser.add_argument("--ppo_new_tokens", type=int, default=256)
    parser.add_argument("--ppo_mini_batch_size", type=int, default=16)
    parser.add_argument("--ppo_epochs", type=int, default=1, help="DeepSpeed-Chat's default is 1.")
    parser.add_argument("--num_layers_unfrozen", type=int,
                        help="PPO: top layers that train (-1: all); default 8 (the paper's) where the model has 8.")
    parser.add_argument("--skip", default="", help="Comma separated parts to skip: sft,generate,ppo.")
    parser.add_argument("--output", help="Also write the result JSON here.")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device=cuda but no CUDA GPU is visible; run on a GPU machine or pass --device cpu.")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    skip = {s for s in args.skip.split(",") if s}
    model, tokenizer, pairs = build(args.shape, device, dtype)
    result = {"shape": args.shape, "parameters": model.num_parameters(), "dtype": str(dtype), "device":
              torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "torch": torch.__version__}
    peak = peak_tflops(device, args.peak_tflops)
    result["peak_tflops"] = peak
    if "sft" not in skip:
        result["sft"] = bench_sft(model, tokenizer, pairs, device, args.sft_steps, args.sft_batch_size, peak)
    if "generate" not in skip:
        result["generate"] = bench_generate(model, tokenizer, pairs, device, args.gen_batch_size, 5, args.gen_new_tokens)
    if "ppo" not in skip:
        result["ppo"] = bench_ppo(model, tokenizer, device, args.ppo_iterations, args.ppo_rollouts,
                                  args.ppo_prompt_tokens, args.ppo_new_tokens, args.ppo_mini_batch_size, args.ppo_epochs,
                                  args.num_layers_unfrozen)
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return emit_result(result, args.output)


if __name__ == "__main__":
    sys.exit(main())
