"""Pydantic request/response models of the HTTP API (they are also the OpenAPI schema at /docs).

Requests are strict: unknown fields, wrong JSON types and out-of-range values are HTTP 422 naming the
field. The option fields are derived from ``PredictorParams`` (declared once there). Limits that depend on the
server's config (prompt count, prompt length) are checked in routes.py.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from easynlp_bp.options import options_where, spec_of
from easynlp_bp.prompting.params import PredictorParams

class _BeautifyRequestBase(BaseModel):
    """``POST /v1/beautify``: one raw prompt or a list, and options (unset: the server's defaults).

    The option fields are generated from :class:`~easynlp_bp.prompting.params.PredictorParams` (those declared
    ``http=True``), with the same bounds, choices and help; see :func:`request_option_fields`.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    prompts: Union[str, list[str]] = Field(description="A raw prompt or a list of raw prompts, e.g. '1 girl'.")

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

    @field_validator("banned_words", check_fields=False)
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


def pydantic_field(f: dataclasses.Field, hints: dict, **changes: Any) -> tuple[Any, Any]:
    """``(annotation, FieldInfo)`` of one declared option, for ``pydantic.create_model``: optional (unset: the
    server's default), with the declaration's bounds, choices and help (``changes`` replace some of them)."""
    spec = spec_of(f)
    annotation = hints[f.name]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is Union and len(args) == 1:
        annotation = args[0]
    if spec.choices:
        annotation = Literal[spec.choices]  # type: ignore[valid-type]
    info: dict[str, Any] = {"description": f.metadata.get("help", ""), **spec.bounds(), **changes}
    if typing.get_origin(annotation) is list:
        return annotation, Field(default_factory=list, max_length=spec.max_items, **info)
    return Optional[annotation], Field(None, **info)


def request_option_fields(params_cls: type = PredictorParams) -> dict[str, tuple[Any, Any]]:
    """The per-request option fields: every ``http=True`` option of ``params_cls``, in declaration order."""
    hints = typing.get_type_hints(params_cls)
    return {f.name: pydantic_field(f, hints) for f in options_where(params_cls, http=True)}


BeautifyRequest = create_model("BeautifyRequest", __base__=_BeautifyRequestBase, **request_option_fields())
BeautifyRequest.__doc__ = _BeautifyRequestBase.__doc__


class BeautifyResult(BaseModel):
    raw_prompt: str
    prompts: list[str] = Field(description="Beautified prompts, best first for beam search.")
    statuses: list[str] = Field(default_factory=list, description=(
        "Per prompt, what the faithfulness guard did: ok, resampled, kept_input (the input verbatim continued "
        "by the model), too_long (the input returned as given), unchecked (guard off)."))
    warnings: list[str] = Field(default_factory=list, description="Notes on this input (language, length).")
    scores: list[float] = Field(default_factory=list, description="With rerank: each prompt's score, best first.")
    reason: Optional[str] = Field(None, description="Why there are no (or fewer) prompts, if so.")


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
