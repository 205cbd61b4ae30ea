"""RM training data: tokenised (raw prompt, prompt) -> normalised label examples, and their collator."""
from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import Dataset

from easynlp_bp.components import COMPONENTS


@COMPONENTS.register("RewardDataset")
class RewardDataset(Dataset):
    """Rows formatted with the RM's input format, cut from the left, labels normalised.

    Example:
        >>> ds = RewardDataset(rm, [{"prompt": "a cat, 8k", "aesthetic_score": 5.2}], label_name="aesthetic_score")
        >>> ds[0]["input_ids"][-1] == rm.tokenizer.eos_token_id
        True
    """

    def __init__(self, reward_model, rows: Sequence[dict], label_name: str,
                 raw_field: str = "raw_prompt", prompt_field: str = "prompt"):
        self.rows, self.label_name = list(rows), label_name  # kept for evaluators (label units)
        texts = reward_model.format_inputs([r.get(raw_field, "") for r in rows], [r[prompt_field] for r in rows])
        encoded = reward_model.encode(texts)
        labels = reward_model.normalize(torch.tensor([float(r[label_name]) for r in rows], dtype=torch.float32))
        self.examples = [
            {"input_ids": ids, "attention_mask": mask, "labels": float(label)}
            for ids, mask, label in zip(encoded["input_ids"], encoded["attention_mask"], labels.tolist())
        ]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        return self.examples[index]


def collate_reward_batch(examples: Sequence[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Left-pad to the longest example; ``labels`` is a float ``(B,)`` tensor (regression)."""
    longest = max(len(ex["input_ids"]) for ex in examples)
    input_ids = [[pad_token_id] * (longest - len(ex["input_ids"])) + ex["input_ids"] for ex in examples]
    attention_mask = [[0] * (longest - len(ex["input_ids"])) + ex["attention_mask"] for ex in examples]
    return {
        "input_ids": torch.tensor(input_ids, dtype=torch.long),  # (B, T)
        "attention_mask": torch.tensor(attention_mask, dtype=torch.long),  # (B, T)
        "labels": torch.tensor([ex["labels"] for ex in examples], dtype=torch.float32),  # (B,)
    }
