"""BeautifulPromptModel: the causal LM and its tokenizer, loaded from a modelzoo name, a dir or a hub id.

The model itself is a plain ``AutoModelForCausalLM`` so that a saved checkpoint is an ordinary Hugging
Face model directory, usable with the seed snippet (AutoTokenizer + AutoModelForCausalLM + generate).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from easynlp_bp.text.template import INSTRUCTION_TEMPLATE
from easynlp_bp.models.kernels import use_fused_kernels
from easynlp_bp.models.modelzoo import ModelSource, resolve_model_source
from easynlp_bp.components import COMPONENTS
from easynlp_bp.models.folder_checks import check_causal_lm, check_model_dir

logger = logging.getLogger(__name__)


def check_pad_token(tokenizer, source: str) -> None:
    """Give the tokenizer a pad token distinct from EOS, or fail if that cannot be done.

    If pad == eos, masks built from ``ids != pad`` drop the real EOS and the model never learns to stop.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError(f"The tokenizer of {source} has no EOS token; set one (e.g. '</s>') before training.")
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        if tokenizer.unk_token_id is not None and tokenizer.unk_token_id != tokenizer.eos_token_id:
            logger.warning("%s: pad token is missing or equals EOS; using the UNK token for padding.", source)
            tokenizer.pad_token = tokenizer.unk_token
        else:
            raise ValueError(
                f"The tokenizer of {source} uses the EOS token for padding (pad == eos) and has no UNK token "
                "to pad with. Add a pad token: tokenizer.add_special_tokens({'pad_token': '<pad>'}) and "
                "resize the model's embeddings."
            )
    tokenizer.padding_side = "left"


@COMPONENTS.register("BeautifulPromptModel")
@dataclass
class BeautifulPromptModel:
    """A causal LM + tokenizer pair.

    Example:
        >>> bp = BeautifulPromptModel.from_pretrained("tiny-bloom-bp", train_texts=["a cat, 8k"] * 50)
        >>> bp.save_pretrained("/tmp/bp")  # an ordinary HF model directory
    """

    model: PreTrainedModel
    tokenizer: object
    source: ModelSource

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: Optional[str] = None,
        *,
        train_texts: Optional[Iterable[str]] = None,
        trust_remote_code: bool = False,
        seed: int = 42,
        dtype: Optional[torch.dtype] = None,
    ) -> "BeautifulPromptModel":
        """Load (or, for a config-only source, build at random) the model and its tokenizer.

        BLOOM's GeLU and attention run as torch's fused kernels of the same functions
        (:func:`easynlp_bp.models.kernels.use_fused_kernels`); weights and the saved config are untouched.

        Args:
            name_or_path: modelzoo name, local directory or hub id (``None``: the embedded default).
            train_texts: texts to train a BPE tokenizer on, needed when the source is a bare config.
            trust_remote_code: passed to transformers; off unless the user asks.
            seed: seed for the random initialisation of a config-only model.
            dtype: weights dtype for pretrained loading (``None``: as saved).
        """
        source = resolve_model_source(name_or_path)
        if source.is_from_scratch:
            model, tokenizer = _build_from_config(source, train_texts, seed)
        else:
            model, tokenizer = load_causal_lm(source.location, trust_remote_code=trust_remote_code, dtype=dtype)
        check_pad_token(tokenizer, source.location)
        model.config.pad_token_id = tokenizer.pad_token_id
        model.config.eos_token_id = tokenizer.eos_token_id
        if model.generation_config is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
            model.generation_config.eos_token_id = tokenizer.eos_token_id
        return cls(model=model, tokenizer=tokenizer, source=source)

    def save_pretrained(self, output_dir: str) -> None:
        """Write the model (safetensors) and tokenizer as a HF model directory."""
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(output_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(output_dir)


def load_causal_lm(location: str, *, trust_remote_code: bool = False, dtype: Optional[torch.dtype] = None,
                   flag: str = "--checkpoint_dir"):
    """``(model, tokenizer)`` of a pretrained causal LM in a local folder or on the hub, BLOOM's kernels fused.

    A local folder is checked first (:func:`check_model_dir`, :func:`check_causal_lm`) so that a broken copy or a
    reward model gives one clear error naming ``flag``. The tokenizer is returned as saved (no pad-token fix).
    """
    check_model_dir(location, flag)
    if Path(location).is_dir():
        check_causal_lm(location, flag)
    tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(location, trust_remote_code=trust_remote_code, dtype=dtype)
    use_fused_kernels(model)
    return model, tokenizer


def _build_from_config(source: ModelSource, train_texts: Optional[Iterable[str]], seed: int):
    from easynlp_bp.default.tokenizer import distinct_phrases, train_bpe_tokenizer

    if train_texts is None:
        raise ValueError(
            f"Model {source.name!r} is built from a config and needs training texts to train its tokenizer; "
            "it can only be used with --mode=train (then predict from the trained --checkpoint_dir)."
        )
    config = AutoConfig.from_pretrained(source.location)
    template_text = INSTRUCTION_TEMPLATE.format(raw_prompt="")
    # merges from what users write, not from modifiers repeated in every target (easynlp_bp/default/tokenizer.py)
    tokenizer = train_bpe_tokenizer([template_text, *distinct_phrases(train_texts)], vocab_size=config.vocab_size)
    config.vocab_size = len(tokenizer)
    config.pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.bos_token_id = tokenizer.bos_token_id
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    use_fused_kernels(model)
    logger.info(
        "Built %s from %s at random: %.2fM parameters, vocabulary %d.",
        config.model_type, source.location, model.num_parameters() / 1e6, len(tokenizer),
    )
    return model, tokenizer
