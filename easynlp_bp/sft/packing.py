"""Padding-free SFT batches: a batch's pairs packed into rows no longer than its longest pair, each pair attending
only to itself.

Why this exists: the embedded default's pairs vary tenfold in length, so padding each pair of a random batch
to the batch's longest makes nearly half of the tokens a step computes padding (1.85× the real tokens on the
default's 3,800 training pairs in batches of 8). Batches of similar lengths (``group_by_length``) pad little but
change which pairs share a step, and the from-scratch model then never learns to copy (docs/consistency.md).
Packing keeps every step's pairs, and so its loss and gradient up to float rounding, and drops most padding.
transformers' own padding-free collator (``DataCollatorWithFlattening``) separates pairs through
``position_ids``, which only flash-attention kernels read and BLOOM does not take; hence this one.

Rows are filled first-fit, longest pair first, up to the batch's longest pair: no row is longer than a padded
batch's rows (attention costs the square of a row's length), and short pairs share rows. A 4D additive mask
lets each token see only the earlier tokens of its own pair, and BLOOM's ALiBi bias takes each key's position
within its pair (:mod:`easynlp_bp.models.bloom_sdpa` builds it from the 4D mask), so a packed pair's logits are
those it has alone. Models with absolute position embeddings would see shifted positions:
``bloom_sdpa.takes_packed_rows`` says which models may be packed.
"""
from __future__ import annotations

from typing import Sequence

import torch

from easynlp_bp.sft.data import IGNORE_INDEX


def rows_first_fit(lengths: Sequence[int]) -> list[list[int]]:
    """Indices of the examples grouped into rows of at most ``max(lengths)`` tokens: longest first, each into the
    first row it fits (first-fit decreasing)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, left in enumerate(room) if left >= lengths[index]), None)
        if row is None:
            rows.append([])
            room.append(max(lengths))
            row = len(rows) - 1
        rows[row].append(index)
        room[row] -= lengths[index]
    return rows


def collate_packed(examples: Sequence[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pack ``examples`` (:func:`~easynlp_bp.sft.data.encode_pair` outputs) into left-padded rows
    (:func:`rows_first_fit`).

    Returns ``input_ids`` (R, T); ``attention_mask`` (R, 1, T, T), 0 where a token may attend and the dtype's
    minimum elsewhere (causal, within its own pair, never padding); ``logits_to_keep``, the columns whose next
    token is labelled in some row; ``shift_labels`` (R, K), the label each kept column predicts; and
    ``labels``, the same tensor (the model computes a loss only when ``labels`` is given).
    """
    rows = rows_first_fit([len(ex["input_ids"]) for ex in examples])
    width = max(sum(len(examples[i]["input_ids"]) for i in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    segment = torch.zeros((len(rows), width), dtype=torch.long)  # 0: padding; 1, 2, ...: the row's pairs
    for r, row in enumerate(rows):
        end = width
        for s, i in enumerate(reversed(row), start=1):
            ids = examples[i]["input_ids"]
            start = end - len(ids)
            input_ids[r, start:end] = torch.tensor(ids)
            labels[r, start:end] = torch.tensor(examples[i]["labels"])
            segment[r, start:end] = s
            end = start
    same_pair = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] > 0)
    allowed = same_pair & torch.ones(width, width, dtype=torch.bool).tril()
    allowed |= torch.eye(width, dtype=torch.bool)  # a padding query sees itself (its row is ignored): no NaN
    mask = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)[:, None]
    predicts_label = (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero().flatten()
    shift_labels = labels[:, predicts_label + 1]
    return {"input_ids": input_ids, "attention_mask": mask, "logits_to_keep": predicts_label,
            "shift_labels": shift_labels, "labels": shift_labels}
