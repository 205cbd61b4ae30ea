"""BeautifulPromptPredictor: batched prompt beautification with the seed snippet's sampling defaults.

Prompts are sorted by length and left-padded into batches, generated with ``model.generate`` (or, for top-k
sampling, the equivalent and faster ``sampling.sample_sequences``), and the output is the decoded *new* tokens only (no string stripping, so "focus" stays "focus"). Optionally each
output is cut at a comma or word boundary to fit the CLIP text encoder's 77-token window. Banned words are
blocked in ``generate`` (``bad_words_ids``) and checked again on the decoded text, since a byte-level BPE can
spell a word with other tokens than the ones banned.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from easynlp_bp.prompting.sampling import SamplingSettings, sample_sequences, supports_fast_sampling
from easynlp_bp.devices import resolve_device
from easynlp_bp.prompting.banned_words import BannedWords
from easynlp_bp.prompting.clip_cap import ClipLengthCap
from easynlp_bp.prompting.template import build_prompt
from easynlp_bp.fused_gelu import fuse_bloom_gelu
from easynlp_bp.components import COMPONENTS

logger = logging.getLogger(__name__)

DECODING_MODES = ("sample", "greedy", "beam")


@dataclass(frozen=True)
class PredictorParams:
    """Generation options (``user_defined_parameters`` keys of predict and evaluate)."""

    num_return_sequences: Optional[int] = field(default=None, metadata={
        "help": "Beautified prompts per input (default 5; 1 with decoding=greedy, which has only one output)."})
    decoding: str = field(default="sample", metadata={"help": "sample (seed snippet), greedy or beam."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    top_k: int = field(default=50, metadata={"help": "Top-k sampling (0: off)."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling."})
    repetition_penalty: float = field(default=1.2, metadata={"help": "Repetition penalty (1.0: off)."})
    num_beams: int = field(default=5, metadata={"help": "Beams for decoding=beam."})
    max_length: int = field(default=384, metadata={"help": "Longest prompt + output in tokens."})
    max_new_tokens: Optional[int] = field(default=None, metadata={"help": "Cap on new tokens (overrides max_length)."})
    seed: Optional[int] = field(default=None, metadata={"help": "Seed that makes sampled output reproducible."})
    batch_size: int = field(default=16, metadata={"help": "Prompts per generate call."})
    max_clip_tokens: Optional[int] = field(
        default=None, metadata={"help": "Cut outputs to fit this many CLIP tokens (77: SD's window)."}
    )
    clip_tokenizer: str = field(
        default="openai/clip-vit-large-patch14", metadata={"help": "CLIP tokenizer (dir or hub id) for max_clip_tokens."}
    )
    max_input_chars: int = field(default=2000, metadata={"help": "Longer raw prompts are rejected."})
    banned_words: list[str] = field(
        default_factory=list, metadata={"help": "Comma separated words never to output (whole words, any case)."}
    )
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N or auto."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the model dir."})

    def __post_init__(self) -> None:
        if self.decoding not in DECODING_MODES:
            raise ValueError(f"decoding={self.decoding!r} is not one of {', '.join(DECODING_MODES)}.")
        if self.num_return_sequences is None:  # unset: the decoding's natural count (frozen: set once here)
            object.__setattr__(self, "num_return_sequences", 1 if self.decoding == "greedy" else 5)
        if self.decoding == "greedy" and self.num_return_sequences != 1:
            raise ValueError(
                f"decoding=greedy has one output, but num_return_sequences={self.num_return_sequences}; "
                "use num_return_sequences=1, decoding=beam for n distinct beams, or decoding=sample."
            )
        if self.num_return_sequences < 1 or self.batch_size < 1:
            raise ValueError("num_return_sequences and batch_size must be at least 1.")
        if self.decoding == "beam" and self.num_beams < self.num_return_sequences:
            raise ValueError(
                f"num_beams={self.num_beams} must be at least num_return_sequences={self.num_return_sequences}."
            )
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be positive; use decoding=greedy instead.")
        if self.max_clip_tokens is not None and self.max_clip_tokens < 3:
            raise ValueError(f"max_clip_tokens={self.max_clip_tokens} must be at least 3.")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens} must be at least 1.")
        if any(not isinstance(w, str) or not w.strip() for w in self.banned_words):
            raise ValueError(f"banned_words={self.banned_words!r} must be non-empty words.")


@COMPONENTS.register("BeautifulPromptPredictor")
class BeautifulPromptPredictor:
    """Turn simple descriptions into detailed Stable Diffusion prompts.

    Example:
        >>> predictor = BeautifulPromptPredictor("outputs/beautiful_prompt", PredictorParams(seed=42))
        >>> predictor.predict(["1 girl"])          # [[five prompts]]
        >>> predictor.run([{"raw_prompt": "1 girl"}])  # rows with "predictions" and "beams"
    """

    def __init__(self, model_dir: str, params: Optional[PredictorParams] = None, *, model=None, tokenizer=None):
        from easynlp_bp.sft.model import BeautifulPromptModel

        self.params = params or PredictorParams()
        self.device = resolve_device(self.params.device)
        if model is None:
            loaded = BeautifulPromptModel.from_pretrained(model_dir, trust_remote_code=self.params.trust_remote_code)
            model, tokenizer = loaded.model, loaded.tokenizer
        fuse_bloom_gelu(model)  # in place, same function (easynlp_bp/fused_gelu.py); weights untouched
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        self._clip_tokenizers: dict[str, object] = {}
        self.clip_cap = None
        if self.params.max_clip_tokens is not None:
            self.clip_cap = self.clip_cap_for(self.params)

    def clip_cap_for(self, params: PredictorParams) -> Optional[ClipLengthCap]:
        """The CLIP length cap of ``params`` (tokenizers are loaded once per name and kept)."""
        if params.max_clip_tokens is None:
            return None
        if params.clip_tokenizer not in self._clip_tokenizers:
            from transformers import AutoTokenizer

            self._clip_tokenizers[params.clip_tokenizer] = AutoTokenizer.from_pretrained(params.clip_tokenizer)
        return ClipLengthCap(self._clip_tokenizers[params.clip_tokenizer], params.max_clip_tokens)

    def resolve_params(self, overrides: Optional[dict] = None) -> PredictorParams:
        """This predictor's params with ``overrides`` applied (validated; unknown names raise ValueError)."""
        if not overrides:
            return self.params
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(PredictorParams)})
        if unknown:
            raise ValueError(f"Unknown predictor option(s) {', '.join(unknown)}.")
        if "device" in overrides or "trust_remote_code" in overrides:
            raise ValueError("device and trust_remote_code are fixed when the predictor is built.")
        if "decoding" in overrides and "num_return_sequences" not in overrides:
            overrides = {**overrides, "num_return_sequences": None}  # the new decoding's own default count
        return dataclasses.replace(self.params, **overrides)

    def _generation_kwargs(self, prompt_length: int, params: Optional[PredictorParams] = None) -> dict:
        p = params or self.params
        max_new = p.max_new_tokens if p.max_new_tokens is not None else max(1, p.max_length - prompt_length)
        kwargs = {
            "max_new_tokens": max_new,
            "num_return_sequences": p.num_return_sequences,
            "repetition_penalty": p.repetition_penalty,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
        }
        if p.decoding == "sample":
            kwargs.update(do_sample=True, temperature=p.temperature, top_k=p.top_k, top_p=p.top_p)
        elif p.decoding == "greedy":
            kwargs.update(do_sample=False, num_beams=1)
        else:
            kwargs.update(do_sample=False, num_beams=p.num_beams)
        return kwargs

    def _generate_new_tokens(self, batch, params: PredictorParams, extra_kwargs: dict) -> torch.Tensor:
        """New tokens of one left-padded batch: the fast sampler for top-k sampling, else HF ``generate``."""
        prompt_length = batch["input_ids"].shape[1]
        kwargs = {**self._generation_kwargs(prompt_length, params), **extra_kwargs}
        if params.decoding == "sample" and params.top_k > 0 and supports_fast_sampling(self.model):
            processors = None
            if "bad_words_ids" in kwargs:
                from transformers import LogitsProcessorList
                from transformers.generation.logits_process import NoBadWordsLogitsProcessor

                processors = LogitsProcessorList(
                    [NoBadWordsLogitsProcessor(kwargs["bad_words_ids"], self.tokenizer.eos_token_id)]
                )
            settings = SamplingSettings(
                max_new_tokens=kwargs["max_new_tokens"], top_k=params.top_k, top_p=params.top_p,
                temperature=params.temperature, repetition_penalty=params.repetition_penalty,
                num_return_sequences=params.num_return_sequences,
                # a model's generation_config.min_new_tokens is honoured, as generate would
                min_new_tokens=getattr(self.model.generation_config, "min_new_tokens", None) or 0,
                pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id,
            )
            return sample_sequences(self.model, batch["input_ids"], batch["attention_mask"], settings, processors)
        output = self.model.generate(**batch, **kwargs)
        return output[:, prompt_length:]

    @torch.no_grad()
    def predict(self, raw_prompts: Sequence[str], overrides: Optional[dict] = None) -> list[list[str]]:
        """Beautify each raw prompt; returns one list of outputs per input, in input order.

        ``overrides`` (e.g. ``{"seed": 1, "temperature": 0.7, "banned_words": ["blood"]}``) replace
        :class:`PredictorParams` fields for this call only.
        """
        params = self.resolve_params(overrides)
        raw_prompts = list(raw_prompts)
        for index, text in enumerate(raw_prompts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"raw prompt {index} is empty or not text: {text!r}.")
            if len(text) > params.max_input_chars:
                raise ValueError(
                    f"raw prompt {index} has {len(text)} characters, more than max_input_chars="
                    f"{params.max_input_chars}."
                )
        clip_cap = self.clip_cap if params is self.params else self.clip_cap_for(params)
        banned = BannedWords(params.banned_words)
        generation_kwargs = {}
        if banned.words:
            generation_kwargs["bad_words_ids"] = banned.token_ids(self.tokenizer)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        encoded = [self.tokenizer(build_prompt(t), add_special_tokens=False).input_ids for t in raw_prompts]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: list[list[str]] = [[] for _ in raw_prompts]
        for start in range(0, len(order), params.batch_size):
            batch_index = order[start : start + params.batch_size]
            batch = self.tokenizer.pad(
                {"input_ids": [encoded[i] for i in batch_index]}, padding=True, return_tensors="pt"
            ).to(self.device)
            new_tokens = self._generate_new_tokens(batch, params, generation_kwargs)  # (B * num_return, new)
            texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            per_input = len(texts) // len(batch_index)
            for position, original in enumerate(batch_index):
                outputs = [banned.remove(t.strip()) for t in texts[position * per_input : (position + 1) * per_input]]
                results[original] = [clip_cap(t) for t in outputs] if clip_cap else outputs
        return results

    def run(self, rows: Sequence[dict], first_sequence: str = "raw_prompt") -> list[dict]:
        """EasyNLP-style: rows in, rows out with ``predictions`` (first output) and ``beams`` (all)."""
        outputs = self.predict([row[first_sequence] for row in rows])
        return [{**row, "predictions": out[0], "beams": out} for row, out in zip(rows, outputs)]
