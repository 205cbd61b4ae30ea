"""BeautifulPromptEvaluator: held-out loss / perplexity on target tokens, and statistics of generations."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from easynlp_bp.components import COMPONENTS
from easynlp_bp.text.statistics import text_statistics
from easynlp_bp.sft.data import collate_left_padded


@COMPONENTS.register("BeautifulPromptEvaluator")
class BeautifulPromptEvaluator:
    """Evaluate a Predictor's model on a held-out pair dataset.

    Example:
        >>> evaluator = BeautifulPromptEvaluator(dev_set, batch_size=16)
        >>> evaluator.evaluate(predictor, sample_rows)["perplexity"]
    """

    def __init__(self, valid_dataset, batch_size: int = 16):
        self.valid_dataset = valid_dataset
        self.batch_size = batch_size

    @torch.no_grad()
    def held_out_loss(self, model, pad_token_id: int, device) -> float:
        """Mean cross-entropy per target token (labels -100 on the instruction are ignored)."""
        total_loss, total_tokens = 0.0, 0
        dataset = self.valid_dataset
        for start in range(0, len(dataset), self.batch_size):
            examples = [dataset[i] for i in range(start, min(start + self.batch_size, len(dataset)))]
            batch = {k: v.to(device) for k, v in collate_left_padded(examples, pad_token_id).items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"][:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                ignore_index=-100, reduction="sum")
            total_loss += loss.item()
            total_tokens += int((labels != -100).sum())
        return total_loss / max(total_tokens, 1)

    def evaluate(self, predictor, samples: Sequence[tuple[str, str]]) -> dict:
        """Loss and perplexity on the dataset; statistics of greedy outputs for ``samples`` (raw, reference)."""
        mean_loss = self.held_out_loss(predictor.model, predictor.tokenizer.pad_token_id, predictor.device)
        generations = [out[0] for out in predictor.predict([raw for raw, _ in samples])]
        return {
            "eval_loss": mean_loss, "perplexity": math.exp(min(mean_loss, 50)),
            "generated": text_statistics(generations, predictor.tokenizer),
            "reference": text_statistics([reference for _, reference in samples], predictor.tokenizer),
            "samples": [{"raw_prompt": raw, "generated": g} for (raw, _), g in zip(samples[:5], generations)],
        }
