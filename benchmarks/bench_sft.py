"""SFT throughput: the project's batching against the reference collator (every batch padded to max length).

All variants run the HF Trainer on the same model initialisation, the same pairs and the same number of
optimizer steps; only batching and the kernels differ: ``reference`` (pad to ``--sequence_length``, random
batches), ``dynamic`` (pad to the batch's longest), ``padded`` (dynamic + the app's BLOOM kernels,
:func:`easynlp_bp.models.kernels.use_fused_kernels`: fused GeLU and SDPA attention), ``project`` (the app's
kernels + the batch's pairs packed into shared rows, :mod:`easynlp_bp.sft.packing`: what
``beautiful_prompt --mode=train`` runs) and ``grouped`` (padded + the app's ``group_by_length=true``). Reports
target tokens/s (labels that are not -100) and the held-out loss after training; repetitions are interleaved,
each with its own seed (so the loss spread is the noise).

    .venv/bin/python benchmarks/bench_sft.py --data ../shared/data/podvodka --steps 12 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.results import emit_result  # noqa: E402  (after the checkout is on sys.path)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VARIANTS = ("reference", "dynamic", "padded", "project", "grouped")
APP_KERNELS = ("padded", "project", "grouped")


def load_pairs(folder: str, limit: int) -> list[dict]:
    """(raw_prompt, prompt) rows from podvodka's ``{"simple", "detailed"}`` pairs (first ``limit``)."""
    path = Path(folder) / "podvodka_pairs.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; pass --data=<folder with podvodka_pairs.jsonl>.")
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("simple", "").strip() and record.get("detailed", "").strip():
                rows.append({"raw_prompt": record["simple"], "prompt": record["detailed"]})
            if len(rows) >= limit:
                break
    return rows


def collate_to_max_length(examples, pad_token_id: int, max_length: int) -> dict[str, torch.Tensor]:
    """The reference collator: every batch padded to ``max_length`` (padding='max_length')."""
    from easynlp_bp.sft.data import collate_left_padded

    return collate_left_padded(examples, pad_token_id, pad_to=max_length)


def build_model(tokenizer, hidden_size: int, n_layer: int, seed: int):
    from transformers import BloomConfig, BloomForCausalLM

    config = BloomConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, n_layer=n_layer, n_head=8,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id)
    torch.manual_seed(seed)
    return BloomForCausalLM(config)


@torch.no_grad()
def held_out_loss(model, dataset, pad_token_id: int) -> float:
    """Mean per-target-token loss on ``dataset`` (batches padded to their longest)."""
    from easynlp_bp.sft.data import collate_left_padded

    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(dataset), 32):
        batch = collate_left_padded([dataset[i] for i in range(start, min(start + 32, len(dataset)))], pad_token_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                   ignore_index=-100, reduction="sum").item()
        count += int((labels != -100).sum())
    return total / count


def train_once(variant: str, train_set, dev_set, tokenizer, args, seed: int) -> dict:
    """One Trainer run of ``args.steps`` optimizer steps; returns time, target tokens seen, held-out loss."""
    from transformers import Trainer, TrainingArguments

    from easynlp_bp.sft.data import IGNORE_INDEX, collate_left_padded
    from easynlp_bp.sft.packing import collate_packed

    pad = tokenizer.pad_token_id
    per_batch = []  # (target tokens, padded tokens); the dataloader may prefetch one batch more than it trains on

    def collate(examples):
        batch = (collate_to_max_length(examples, pad, args.sequence_length) if variant == "reference"
                 else collate_packed(examples, pad) if variant == "project" else collate_left_padded(examples, pad))
        targets = batch.get("shift_labels", batch["labels"])
        per_batch.append((int((targets != IGNORE_INDEX).sum()), batch["input_ids"].numel()))
        return batch

    model = build_model(tokenizer, args.hidden_size, args.n_layer, seed=0)  # same initialisation everywhere
    if variant in APP_KERNELS:
        from easynlp_bp.models.kernels import use_fused_kernels

        use_fused_kernels(model)
    with tempfile.TemporaryDirectory() as out:
        training_args = TrainingArguments(
            output_dir=out, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
            learning_rate=args.learning_rate, weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.95,
            lr_scheduler_type="cosine", warmup_steps=0.03, logging_steps=args.steps, save_strategy="no",
            report_to=[], seed=seed, data_seed=seed, remove_unused_columns=False, dataloader_num_workers=0,
            disable_tqdm=True, use_cpu=True, bf16=args.bf16,
            train_sampling_strategy="group_by_length" if variant == "grouped" else "random",
        )
        trainer = Trainer(model=model, args=training_args, train_dataset=train_set, data_collator=collate)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    trained = per_batch[: args.steps]
    counted = {"target_tokens": sum(t for t, _ in trained), "padded_tokens": sum(p for _, p in trained)}
    return {"seconds": seconds, **counted, "target_tokens_per_s": counted["target_tokens"] / seconds,
            "held_out_loss": held_out_loss(model, dev_set, pad)}


def run_benchmark(args) -> dict:
    from easynlp_bp.sft.data import BeautifulPromptDataset
    from easynlp_bp.text.template import INSTRUCTION_TEMPLATE
    from easynlp_bp.default.tokenizer import train_bpe_tokenizer

    rows = load_pairs(args.data, args.pairs + args.dev_pairs)
    dev_rows, train_rows = rows[:args.dev_pairs], rows[args.dev_pairs:]
    tokenizer = train_bpe_tokenizer([INSTRUCTION_TEMPLATE] + [f"{r['raw_prompt']}\n{r['prompt']}" for r in rows],
                                    vocab_size=args.vocab_size)
    train_set = BeautifulPromptDataset(train_rows, tokenizer, args.sequence_length)
    dev_set = BeautifulPromptDataset(dev_rows, tokenizer, args.sequence_length)
    lengths = sorted(len(ex["input_ids"]) for ex in train_set.examples)
    runs = {name: [] for name in args.variants}
    load = []
    for rep in range(args.repeats):
        order = args.variants[rep % len(args.variants):] + args.variants[:rep % len(args.variants)]
        for name in order:
            load.append(os.getloadavg()[0])
            runs[name].append(train_once(name, train_set, dev_set, tokenizer, args, seed=rep))
            print(f"[rep {rep}] {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
    median = lambda name, key: statistics.median(r[key] for r in runs[name])  # noqa: E731
    result = {
        "pairs": len(train_rows), "dev_pairs": len(dev_rows), "steps": args.steps, "batch_size": args.batch_size,
        "sequence_length": args.sequence_length, "model": {"hidden_size": args.hidden_size, "n_layer": args.n_layer,
                                                            "vocab_size": len(tokenizer)},
        "example_tokens": {"min": lengths[0], "median": lengths[len(lengths) // 2], "max": lengths[-1]},
        "repeats": args.repeats, "bf16": args.bf16, "threads": torch.get_num_threads(),
        "load_avg_1min_during": statistics.median(load),
        "runs": runs,
        "median_target_tokens_per_s": {n: median(n, "target_tokens_per_s") for n in runs},
        "median_held_out_loss": {n: median(n, "held_out_loss") for n in runs},
        "held_out_loss_range": {n: [min(r["held_out_loss"] for r in runs[n]), max(r["held_out_loss"] for r in runs[n])]
                                for n in runs},
    }
    if "reference" in runs:
        # per-repetition ratios (same seed, adjacent in time), then their median
        result["speedup_vs_reference"] = {
            n: statistics.median(r["target_tokens_per_s"] / ref["target_tokens_per_s"]
                                 for r, ref in zip(runs[n], runs["reference"])) for n in runs}
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="Folder holding podvodka_pairs.jsonl (../shared/data/podvodka).")
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--dev_pairs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--sequence_length", type=int, default=384, help="The reference's max length (paper: 384).")
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--hidden_size", type=int, default=256)
    parser.add_argument("--n_layer", type=int, default=4)
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--bf16", action="store_true",
                        help="bf16 autocast, as the app trains on a CPU with native bf16 (training_arguments.py).")
    parser.add_argument("--output", help="Also write the result JSON here.")
    args = parser.parse_args(argv)
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants {unknown} unknown; choose from {', '.join(VARIANTS)}.")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    result = run_benchmark(args)
    return emit_result(result, args.output)


if __name__ == "__main__":
    sys.exit(main())
