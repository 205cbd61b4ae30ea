"""RewardModel: a text-only regression model (one score per text) on a causal-LM backbone.

The network is a plain ``AutoModelForSequenceClassification(num_labels=1)`` (for BLOOM: a linear head on
the last non-pad token, trained with MSE), so a trained RM is an ordinary Hugging Face model directory;
``reward_config.json`` beside it records the reward type and the label mean/std used for normalisation,
so :meth:`RewardModel.score` returns scores in the original label units.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Optional, Sequence

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from easynlp_bp.models.causal_lm import BeautifulPromptModel, check_pad_token
from easynlp_bp.text.reward_formats import (
    DEFAULT_LABEL_NAME,
    check_reward_type,
    format_reward_input,
)
from easynlp_bp.models.modelzoo import resolve_model_source
from easynlp_bp.components import COMPONENTS
from easynlp_bp.models.folder_checks import check_model_dir
from easynlp_bp.models.kernels import use_fused_kernels

logger = logging.getLogger(__name__)

REWARD_CONFIG_FILE = "reward_config.json"


@dataclass
class RewardConfig:
    """What a trained RM needs besides its weights: which score it predicts and in which units.

    The network predicts ``(label - label_mean) / label_std``; scores are mapped back to label units.
    """

    reward_type: str = "aesthetic"
    label_name: str = ""
    label_mean: float = 0.0
    label_std: float = 1.0
    max_length: int = 384

    def __post_init__(self) -> None:
        check_reward_type(self.reward_type)
        self.label_name = self.label_name or DEFAULT_LABEL_NAME[self.reward_type]
        if not self.label_std > 0:
            raise ValueError(
                f"label_std={self.label_std} must be positive: the labels of a reward model must vary."
            )
        if self.max_length < 2:
            raise ValueError(f"max_length={self.max_length} must be at least 2 tokens (text + EOS).")

    def save(self, directory: str) -> None:
        path = Path(directory) / REWARD_CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: str) -> "RewardConfig":
        """Read ``reward_config.json``; a torn file or an unknown key raises ``ValueError`` naming it."""
        path = Path(directory) / REWARD_CONFIG_FILE
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not valid JSON ({err}); save the reward model again.") from err
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(valid)) if isinstance(values, dict) else []
        if not isinstance(values, dict) or unknown:
            raise ValueError(f"{path}: unknown key(s) {', '.join(unknown) or type(values).__name__}; "
                             f"valid keys: {', '.join(valid)}. Was it written by another version?")
        return cls(**values)


@COMPONENTS.register("RewardModel")
class RewardModel:
    """A regression model and its own tokenizer that score (raw prompt, prompt) pairs.

    Example:
        >>> rm = RewardModel.from_pretrained("outputs/reward_aesthetic")
        >>> rm.score(["1 girl"], ["1 girl, masterpiece, 8k"])        # label units, shape (1,)
        tensor([5.93])
        >>> rm.format_inputs(["1 girl"], ["1 girl, 8k"])
        ['1 girl, 8k</s>']
    """

    def __init__(self, model: PreTrainedModel, tokenizer, config: RewardConfig):
        if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
            raise ValueError(
                "The reward tokenizer pads with the EOS token (pad == eos); the score is read at the last "
                "non-pad token, which would skip the real EOS. Give the tokenizer a distinct pad token."
            )
        self.model = model
        use_fused_kernels(model)  # a no-op when the loader patched it
        self.tokenizer = tokenizer
        self.config = config
        # Left truncation keeps the end of long inputs (the prompt's tail and the EOS the score is read at);
        # left padding matches the policy's batches.
        self.tokenizer.truncation_side = "left"
        self.tokenizer.padding_side = "left"
        self.model.config.pad_token_id = tokenizer.pad_token_id

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: Optional[str] = None,
        *,
        reward_type: Optional[str] = None,
        train_texts: Optional[Iterable[str]] = None,
        max_length: int = 384,
        trust_remote_code: bool = False,
        seed: int = 42,
        dtype: Optional[torch.dtype] = None,
    ) -> "RewardModel":
        """Load a trained RM directory, or start a new RM from a backbone.

        Args:
            name_or_path: a trained RM directory (has ``reward_config.json``), or a backbone: modelzoo name,
                local dir or hub id (``None``: the embedded default ``tiny-bloom-bp``).
            reward_type: ``aesthetic`` or ``pickscore``; required for a new RM, checked against a trained one.
            train_texts: texts to train a tokenizer on when the backbone is a bare config.
            max_length: longest input in tokens (longer inputs lose their beginning).
            trust_remote_code: passed to transformers; off unless the user asks.
            seed: seed of the random initialisation (head, and the backbone of a config-only model).
            dtype: weights dtype (``None``: as saved).

        Raises:
            ValueError: unknown or mismatching ``reward_type``.
        """
        if name_or_path is not None and (Path(name_or_path) / REWARD_CONFIG_FILE).is_file():
            check_model_dir(name_or_path)
            config = RewardConfig.load(name_or_path)
            if reward_type is not None and check_reward_type(reward_type) != config.reward_type:
                raise ValueError(
                    f"{name_or_path} is a {config.reward_type} reward model, not {reward_type}; "
                    "check the directory you pass."
                )
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
            model = AutoModelForSequenceClassification.from_pretrained(
                name_or_path, num_labels=1, trust_remote_code=trust_remote_code, dtype=dtype
            )
            return cls(model.eval(), tokenizer, config)
        if reward_type is None:
            raise ValueError(
                f"{name_or_path or 'the default backbone'} is not a trained reward model (no "
                f"{REWARD_CONFIG_FILE}); pass reward_type=aesthetic or pickscore to start a new one."
            )
        config = RewardConfig(reward_type=check_reward_type(reward_type), max_length=max_length)
        source = resolve_model_source(name_or_path)
        if source.is_from_scratch:
            model, tokenizer = _sequence_model_from_config(name_or_path, train_texts, seed, trust_remote_code)
        else:
            check_model_dir(source.location, flag="pretrain_model_name_or_path")
            tokenizer = AutoTokenizer.from_pretrained(source.location, trust_remote_code=trust_remote_code)
            check_pad_token(tokenizer, source.location)
            torch.manual_seed(seed)
            model = AutoModelForSequenceClassification.from_pretrained(
                source.location, num_labels=1, trust_remote_code=trust_remote_code, dtype=dtype,
                pad_token_id=tokenizer.pad_token_id,
            )
        model.config.problem_type = "regression"
        return cls(model, tokenizer, config)

    def save_pretrained(self, output_dir: str, save_model: bool = True) -> None:
        """Write the model (safetensors), tokenizer and ``reward_config.json`` as a HF model directory."""
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        if save_model:
            self.model.save_pretrained(output_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(output_dir)
        self.config.save(output_dir)

    # ------------------------------------------------------------------ inputs
    def format_inputs(self, raw_prompts: Sequence[str], prompts: Sequence[str]) -> list[str]:
        """The RM's input texts (see :mod:`formats`) with this tokenizer's EOS token."""
        if len(raw_prompts) != len(prompts):
            raise ValueError(f"Got {len(raw_prompts)} raw prompts but {len(prompts)} prompts; pass one each.")
        eos = self.tokenizer.eos_token
        return [format_reward_input(self.config.reward_type, r, p, eos) for r, p in zip(raw_prompts, prompts)]

    def encode(self, texts: Sequence[str]) -> dict[str, list[int]]:
        """Token ids of already formatted texts, cut from the left to ``max_length`` (no padding)."""
        return self.tokenizer(
            list(texts), add_special_tokens=False, truncation=True, max_length=self.config.max_length
        )

    # ------------------------------------------------------------------ scoring
    def normalize(self, labels: torch.Tensor) -> torch.Tensor:
        return (labels - self.config.label_mean) / self.config.label_std

    def denormalize(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs * self.config.label_std + self.config.label_mean

    @torch.no_grad()
    def score(self, raw_prompts: Sequence[str], prompts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
        """Scores in label units, float32 on CPU, shape ``(B,)``; no grad, eval mode, batched.

        ``raw_prompts`` is only read by the pickscore RM; pass ``prompts`` twice for an aesthetic one.
        """
        texts = self.format_inputs(raw_prompts, prompts)
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        scores = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                texts[start : start + batch_size], add_special_tokens=False, truncation=True,
                max_length=self.config.max_length, padding=True, return_tensors="pt",
            ).to(device)
            logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            scores.append(logits[:, 0].float().cpu())  # (b,)
        self.model.train(was_training)
        if not scores:
            return torch.zeros(0, dtype=torch.float32)
        return self.denormalize(torch.cat(scores))

    def to(self, device: str | torch.device) -> "RewardModel":
        self.model.to(device)
        return self


# EasyNLP's text_classify output columns, as a one-label regression has them (see score_columns).
EASYNLP_SCORE_COLUMNS = ("predictions", "logits", "probabilities", "output")


def score_columns(score: float, config: RewardConfig) -> dict:
    """The predict columns of one score: ``score`` / the label name / ``predictions`` (label units),
    ``logits`` (the network's raw output, ``(score - label_mean) / label_std``), ``output`` (both as
    JSON) and ``probabilities`` (empty: a regression has no classes; kept so EasyNLP column positions hold).
    """
    logit = (score - config.label_mean) / config.label_std
    return {
        "score": score, config.label_name: score, "predictions": score, "logits": logit, "probabilities": "",
        "output": json.dumps({"score": score, "logits": logit}),
    }



def score_rows(rm: "RewardModel", rows: Sequence[dict], raw_field: str, prompt_field: str,
               batch_size: int = 32) -> list[dict]:
    """``rows``, each with its :func:`score_columns` added (the raw prompt is read by the pickscore RM only)."""
    scores = rm.score([r.get(raw_field, "") for r in rows], [r[prompt_field] for r in rows],
                      batch_size=batch_size).tolist()
    return [{**row, **score_columns(score, rm.config)} for row, score in zip(rows, scores)]

def _sequence_model_from_config(name_or_path, train_texts, seed: int, trust_remote_code: bool):
    """A random sequence-regression model of the config's architecture, with a project-trained tokenizer.

    Reuses the SFT app's from-config builder (tokenizer training, vocabulary size, special ids, seed), then
    moves its backbone under a regression head, so both stages build the tiny default the same way.
    """
    lm = BeautifulPromptModel.from_pretrained(
        name_or_path, train_texts=train_texts, trust_remote_code=trust_remote_code, seed=seed
    )
    lm.model.config.num_labels = 1
    model = AutoModelForSequenceClassification.from_config(lm.model.config)
    model.base_model.load_state_dict(lm.model.base_model.state_dict())
    return model, lm.tokenizer
