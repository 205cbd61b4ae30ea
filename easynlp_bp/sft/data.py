"""SFT data: the reference's pair filters and ``BeautifulPromptDataset`` (prompt tokens labelled -100).

Each example is ``build_prompt(raw) + build_target(prompt, eos)`` tokenised; the loss covers the target
tokens only. Long examples are cut from the right of the target (the instruction is never cut).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from torch.utils.data import Dataset

from easynlp_bp.finite_numbers import finite_or_nan
from easynlp_bp.text.template import build_prompt, build_target
from easynlp_bp.components import COMPONENTS

IGNORE_INDEX = -100


@dataclass
class PairFilterConfig:
    """The reference SFT data filter; each rule applies only where its field exists."""

    min_pick_score: Optional[float] = 18.5
    min_target_tokens: int = 25
    short_target_tokens: int = 35
    short_target_drop: float = 0.3
    seed: int = 42


@dataclass
class FilterReport:
    """Which rows the filter dropped and why (so that no row disappears silently)."""

    kept: list[int] = field(default_factory=list)
    dropped: list[tuple[int, str]] = field(default_factory=list)


def filter_pairs(rows: Sequence[dict], tokenizer, config: PairFilterConfig, target_field: str = "prompt") -> FilterReport:
    """Apply the reference filters: ``pick_score`` below the threshold, short targets, random drop."""
    rng = random.Random(config.seed)
    report = FilterReport()
    for index, row in enumerate(rows):
        score = row.get("pick_score")
        if config.min_pick_score is not None and "pick_score" in row:  # the table has the column
            if score in (None, ""):
                report.dropped.append((index, f"pick_score is empty; min_pick_score={config.min_pick_score} needs "
                                              "a score (or set min_pick_score=none)"))
                continue
            score_value = finite_or_nan(score)
            if not score_value >= config.min_pick_score:  # NaN (not a finite number) fails too
                report.dropped.append((index, f"pick_score {score} < {config.min_pick_score}"))
                continue
        n_tokens = len(tokenizer(row[target_field], add_special_tokens=False).input_ids)
        if n_tokens < config.min_target_tokens:
            report.dropped.append((index, f"target has {n_tokens} tokens < {config.min_target_tokens}"))
            continue
        if n_tokens < config.short_target_tokens and rng.random() < config.short_target_drop:
            report.dropped.append(
                (index, f"randomly dropped ({config.short_target_drop:.0%}) short target of {n_tokens} tokens")
            )
            continue
        report.kept.append(index)
    return report


def too_long_rows(rows: Sequence[dict], tokenizer, max_length: int,
                  first_sequence: str = "raw_prompt") -> list[tuple[int, str]]:
    """(index, reason) of the rows whose instruction alone fills ``max_length`` tokens (:func:`encode_pair`
    would refuse them): apps reject these rows one by one, with their file row, instead of aborting."""
    too_long = []
    for index, row in enumerate(rows):
        n_tokens = len(tokenizer(build_prompt(row[first_sequence]), add_special_tokens=False).input_ids)
        if n_tokens >= max_length:
            too_long.append((index, f"the instruction has {n_tokens} tokens, not fewer than "
                                    f"--sequence_length={max_length}; shorten the row or raise --sequence_length"))
    return too_long


def encode_pair(raw_prompt: str, prompt: str, tokenizer, max_length: int) -> dict:
    """Token ids and labels for one pair; labels are -100 on the instruction part.

    Returns ``{"input_ids": list[int], "attention_mask": list[int], "labels": list[int]}``.
    """
    prompt_ids = tokenizer(build_prompt(raw_prompt), add_special_tokens=False).input_ids
    target_ids = tokenizer(build_target(prompt, tokenizer.eos_token), add_special_tokens=False).input_ids
    if len(prompt_ids) >= max_length:
        raise ValueError(
            f"The instruction for {raw_prompt[:40]!r} has {len(prompt_ids)} tokens, not fewer than "
            f"--sequence_length={max_length}; raise --sequence_length."
        )
    target_ids = target_ids[: max_length - len(prompt_ids)]
    input_ids = prompt_ids + target_ids
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": [IGNORE_INDEX] * len(prompt_ids) + target_ids,
    }


@COMPONENTS.register("BeautifulPromptDataset")
class BeautifulPromptDataset(Dataset):
    """Tokenised (raw_prompt -> prompt) pairs for SFT.

    Example:
        >>> ds = BeautifulPromptDataset([{"raw_prompt": "a cat", "prompt": "a cat, 8k"}], tokenizer, 384)
        >>> ds[0]["labels"][:3]   # the instruction is not learned
        [-100, -100, -100]
    """

    def __init__(
        self,
        rows: Sequence[dict],
        tokenizer,
        max_length: int,
        first_sequence: str = "raw_prompt",
        second_sequence: str = "prompt",
    ):
        self.examples = [
            encode_pair(row[first_sequence], row[second_sequence], tokenizer, max_length) for row in rows
        ]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        return self.examples[index]

    def target_token_count(self) -> int:
        return sum(sum(1 for label in ex["labels"] if label != IGNORE_INDEX) for ex in self.examples)


def collate_left_padded(examples: Sequence[dict], pad_token_id: int,
                        pad_to: Optional[int] = None) -> dict[str, torch.Tensor]:
    """Pad to the longest example of the batch (not to the maximum length), on the left.

    ``pad_to`` pads to that fixed length instead (what the reference collator does; the benchmarks use it).

    Left padding matches generation and PPO scoring; BLOOM's ALiBi positions follow the attention mask.
    """
    longest = pad_to or max(len(ex["input_ids"]) for ex in examples)
    batch = {"input_ids": [], "attention_mask": [], "labels": []}
    for ex in examples:
        pad = longest - len(ex["input_ids"])
        batch["input_ids"].append([pad_token_id] * pad + ex["input_ids"])
        batch["attention_mask"].append([0] * pad + ex["attention_mask"])
        batch["labels"].append([IGNORE_INDEX] * pad + ex["labels"])
    return {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}


def collate_for_training(examples: Sequence[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """:func:`collate_left_padded`, plus ``logits_to_keep``: the model projects onto the vocabulary only the
    last positions that predict a labelled token, and ``labels`` are cut to those positions.

    Left padding puts every target at the end of its row, so the positions from the earliest target's
    predecessor to the end cover every labelled token; the instruction before them (about half of a row) needs
    no logits. The loss is the same as over the full sequence (the labels cut off are all ignored), at about
    half the vocabulary projection's cost, the largest matmul of a small model's step.
    """
    batch = collate_left_padded(examples, pad_token_id)
    labelled = (batch["labels"] != IGNORE_INDEX).any(dim=0).nonzero()
    if len(labelled) == 0:  # nothing to learn in this batch: keep everything, the loss is what the model says
        return batch
    keep = min(batch["labels"].shape[1] - int(labelled[0]) + 1, batch["labels"].shape[1])  # +1: the predecessor
    batch["labels"] = batch["labels"][:, -keep:]
    batch["logits_to_keep"] = keep
    return batch
