"""Pydantic request/response models of the HTTP API (they are also the OpenAPI schema at /docs).

Requests are strict: unknown fields, wrong JSON types and out-of-range values are HTTP 422 naming the
field. Limits that depend on the server's config (prompt count, prompt length) are checked in api.py.
"""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

Decoding = Literal["sample", "greedy", "beam"]


class BeautifyRequest(BaseModel):
    """``POST /v1/beautify``: one raw prompt or a list, and options (unset: the server's defaults)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompts: Union[str, list[str]] = Field(description="A raw prompt or a list of raw prompts, e.g. '1 girl'.")
    num_return_sequences: Optional[int] = Field(None, ge=1, le=16, description="Beautified prompts per input.")
    seed: Optional[int] = Field(None, ge=0, le=2**32 - 1, description="Same seed, same output.")
    temperature: Optional[float] = Field(None, gt=0, le=5, description="Sampling temperature.")
    top_p: Optional[float] = Field(None, gt=0, le=1, description="Nucleus sampling mass.")
    top_k: Optional[int] = Field(None, ge=0, le=1000, description="Top-k sampling (0: off).")
    max_new_tokens: Optional[int] = Field(None, ge=1, description="Cap on generated tokens.")
    decoding: Optional[Decoding] = Field(None, description="sample, greedy (one output) or beam.")
    repetition_penalty: Optional[float] = Field(None, ge=1, le=2, description="Repetition penalty (1.0: off).")
    penalize_prompt: Optional[bool] = Field(
        None, description="Also penalise the raw prompt's own tokens (HF generate's way); off keeps the user's "
                          "words free."
    )
    banned_words: list[str] = Field(default_factory=list, max_length=64, description="Words never to output.")
    max_clip_tokens: Optional[int] = Field(
        None, ge=3, le=1024, description="Cut each output to fit this many CLIP tokens (77: SD's window)."
    )
    keep_input: Optional[bool] = Field(
        None, description="Start each output with the raw prompt (servers whose /health lists keep_input)."
    )

    @field_validator("prompts")
    @classmethod
    def _as_list(cls, value: Union[str, list[str]]) -> list[str]:
        prompts = [value] if isinstance(value, str) else value
        if not prompts:
            raise ValueError("give at least one raw prompt")
        for index, text in enumerate(prompts):
            if not text.strip():
                raise ValueError(f"prompt {index} is empty; write a short description such as '1 girl'")
        return prompts

    @field_validator("banned_words")
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        for index, word in enumerate(value):
            if not word.strip() or len(word) > 64:
                raise ValueError(f"banned word {index} must be 1 to 64 characters, got {word!r}")
        return value

    def overrides(self) -> dict:
        """The predictor options this request sets (unset ones keep the server's defaults)."""
        options = self.model_dump(exclude={"prompts"}, exclude_none=True)
        if not options.get("banned_words"):
            options.pop("banned_words", None)
        return options


class BeautifyResult(BaseModel):
    raw_prompt: str
    prompts: list[str] = Field(description="Beautified prompts, best first for beam search.")


class BeautifyResponse(BaseModel):
    results: list[BeautifyResult]
    options: dict = Field(description="The options used (request values over server defaults).")
    elapsed_ms: float


class ImagesRequest(BaseModel):
    """``POST /v1/images``: images of a beautified prompt and, for comparison, of the raw prompt."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, description="The beautified prompt (cut to the encoder's window).")
    raw_prompt: Optional[str] = Field(None, min_length=1, description="Also render this raw prompt.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Same seed for both images.")


class ImagesResponse(BaseModel):
    prompt_used: str = Field(description="The prompt as rendered, after cutting to the token window.")
    image: str = Field(description="PNG as a data URL.")
    raw_image: Optional[str] = Field(None, description="PNG of the raw prompt as a data URL.")


class ErrorBody(BaseModel):
    type: str = Field(description="validation_error, limit_exceeded, queue_full, timeout, unauthorized, ...")
    message: str
    field: Optional[str] = None
    limit: Optional[str] = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ClipTokensRequest(BaseModel):
    """``POST /v1/clip_tokens``: texts to count in CLIP tokens (the demo's count per output)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    texts: list[str] = Field(min_length=1, max_length=256, description="Texts to count (BOS and EOS included).")


class ClipTokensResponse(BaseModel):
    counts: list[int] = Field(description="CLIP tokens per text, BOS and EOS included (SD reads 77).")
    limit: int = Field(description="The window the counts are compared with: max_clip_tokens if set, else 77.")
    tokenizer: str = Field(description="What counted: the predictor's clip_tokenizer or instant-clip-tokenizer.")
