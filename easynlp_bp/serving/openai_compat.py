"""OpenAI-compatible routes, so that OpenAI clients (the ``openai`` package, ComfyUI/A1111 LLM nodes, Open WebUI)
can use the beautifier: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions``.

The last user message (chat) or the prompt (completions) is the raw prompt; each choice is one beautified prompt.
The options declared with an OpenAI name in ``PredictorParams`` (``n``, ``seed``, ``max_tokens``, ``temperature``
(0: greedy), ``top_p``) map to the predictor's options; ``n`` defaults to 1, as OpenAI's. The
requests go through the same limits, API key and dynamic batcher as ``/v1/beautify``; errors are in OpenAI's
shape. ``stream=true`` (chat front-ends and most SDK examples stream by default) answers the same choices as
server-sent events in OpenAI's chunk shape, ending with ``data: [DONE]``; each beautified prompt comes whole in
one chunk, since the guard checks an output before anyone sees it.
(No ``from __future__ import annotations`` here: FastAPI reads the endpoint annotations at runtime.)
"""

import json
import re
import time
import typing
import uuid
from typing import Any, Optional, Union

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from easynlp_bp.options import options_where, spec_of
from easynlp_bp.prompting.params import PredictorParams
from easynlp_bp.serving.schemas import pydantic_field

from easynlp_bp.serving.errors import APIError
from easynlp_bp.serving.routes import ERRORS, ServingContext, context_of, generate, served_model_name


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: Optional[str] = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, ...: accepted, not used

    role: str
    content: Union[str, list[ContentPart], None] = None


def _openai_fields() -> dict[str, tuple[Any, Any]]:
    """Request fields for the options declared with an OpenAI name (``PredictorParams``, ``openai=...``), with
    the declared bounds; ``temperature`` also takes 0, which OpenAI clients send for greedy decoding."""
    hints = typing.get_type_hints(PredictorParams)
    fields = {}
    for f in options_where(PredictorParams):
        spec = spec_of(f)
        if spec.openai:
            greedy_zero = {"gt": None, "ge": 0, "description": "0: greedy decoding."}
            fields[spec.openai] = pydantic_field(f, hints, **(greedy_zero if spec.openai == "temperature" else {}))
    return fields


# The OpenAI parameter of each predictor option (as declared), for ``param`` in error bodies.
OPENAI_NAMES = {f.name: spec_of(f).openai for f in options_where(PredictorParams) if spec_of(f).openai}


class _SamplingBase(BaseModel):
    """The OpenAI options that map to predictor options (generated from their declaration, see
    :func:`_openai_fields`); the other common ones are accepted and ignored."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: Optional[str] = Field(None, description="Any name; this server serves one model.")
    max_completion_tokens: Optional[int] = Field(None, ge=1, description="Newer name of max_tokens.")
    stream: Optional[bool] = None
    # Sent by many clients; no meaning for a prompt beautifier.
    user: Optional[str] = None
    stop: Union[str, list[str], None] = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    logit_bias: Optional[dict] = None
    stream_options: Optional[dict] = None

    def overrides(self) -> dict:
        """Predictor options of this request (unset: the server's defaults, except ``n``: 1, as OpenAI's)."""
        options: dict[str, Any] = {name: getattr(self, openai) for name, openai in OPENAI_NAMES.items()}
        options["max_new_tokens"] = self.max_completion_tokens or options.get("max_new_tokens")
        if options.get("num_return_sequences") is None:
            options["num_return_sequences"] = 1  # OpenAI's default n
        if self.temperature == 0:
            if options["num_return_sequences"] > 1:
                raise APIError(422, "validation_error", f"temperature=0 (greedy decoding) has one output, but n="
                               f"{options['num_return_sequences']}; use n=1, or a temperature above 0 for n different "
                               "prompts.", field="temperature")
            options.pop("temperature")
            options["decoding"] = "greedy"
        return {k: v for k, v in options.items() if v is not None}


_Sampling = create_model("_Sampling", __base__=_SamplingBase, **_openai_fields())


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1, description="The last user message is the raw prompt.")

    def raw_prompt(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user":
                text = message.content if isinstance(message.content, str) else " ".join(
                    part.text for part in message.content or [] if part.type == "text" and part.text)
                if text.strip():
                    return text
                break
        raise APIError(422, "validation_error", "no user message with text; send "
                       '{"role": "user", "content": "1 girl"} as the last user message.', field="messages")


class CompletionRequest(_Sampling):
    prompt: Union[str, list[str]] = Field(description="A raw prompt or a list of raw prompts.")

    def raw_prompts(self) -> list[str]:
        prompts = [self.prompt] if isinstance(self.prompt, str) else self.prompt
        for index, text in enumerate(prompts or [""]):
            if not text.strip():
                raise APIError(422, "validation_error", f"prompt {index} is empty; give a raw prompt such as "
                               "'1 girl'.", field="prompt")
        return prompts


# Predictor option -> the OpenAI parameter a client sent, for ``param`` in error bodies.
_OPENAI_PARAMS = {**OPENAI_NAMES, "decoding": "temperature"}


async def generate_openai(ctx: ServingContext, prompts: list[str], overrides: dict, prompt_param: str):
    """:func:`generate`, with errors naming the OpenAI parameters (``max_tokens``, ``n``, ``prompt``)."""
    try:
        return (await generate(ctx, prompts, overrides))[0]
    except APIError as err:
        if err.field and err.field.startswith("prompts"):
            err.field = prompt_param
        err.field = _OPENAI_PARAMS.get(err.field, err.field)
        err.message = in_client_names(err.message)
        raise


def in_client_names(message: str) -> str:
    """``message`` with the predictor's option names replaced by the OpenAI parameters a client sent
    (``num_return_sequences`` -> ``n``, ``max_new_tokens`` -> ``max_tokens``)."""
    for name, openai_name in OPENAI_NAMES.items():
        if name != openai_name:
            message = re.sub(rf"\b{name}\b", openai_name, message)
    return message


def model_id(ctx: ServingContext) -> str:
    """The served model's name: its directory's name (as OpenAI clients list it)."""
    return served_model_name(ctx.predictor)


def _usage(ctx: ServingContext, prompts: list[str], results: list) -> dict:
    count = lambda text: len(ctx.predictor.tokenizer(text).input_ids)  # noqa: E731
    prompt_tokens = sum(count(text) for text in prompts)
    completion_tokens = sum(count(text) for result in results for text in result.outputs)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


router = APIRouter()


@router.get("/v1/models")
async def list_models(request: Request) -> dict:
    """The one served model, in OpenAI's list shape."""
    return {"object": "list", "data": [{"id": model_id(context_of(request)), "object": "model", "created": 0,
                                        "owned_by": "easynlp_bp"}]}


def _event_stream(chunks: list[dict], done: bool = True):
    """Server-sent events of ``chunks`` (one ``data:`` line each), then ``data: [DONE]``."""
    async def events():
        for chunk in chunks:
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
        if done:
            yield "data: [DONE]\n\n"
    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _streamed(answer: dict, body: _SamplingBase, chunk_object: str) -> StreamingResponse:
    """``answer`` as OpenAI's stream: per choice, its text in one chunk and a closing chunk with the finish
    reason; with ``stream_options.include_usage`` a last chunk carries the usage (and no choices)."""
    head = {key: answer[key] for key in ("id", "created", "model")}
    chunks = []
    for choice in answer["choices"]:
        if chunk_object == "chat.completion.chunk":
            text = choice["message"]["content"]
            opening = {"index": choice["index"], "delta": {"role": "assistant", "content": text},
                       "finish_reason": None, "logprobs": None, "guard_status": choice["guard_status"]}
            closing = {"index": choice["index"], "delta": {}, "finish_reason": "stop", "logprobs": None}
        else:
            opening = {**choice, "finish_reason": None}
            closing = {"index": choice["index"], "text": "", "finish_reason": "stop", "logprobs": None}
        chunks += [{**head, "object": chunk_object, "choices": [part]} for part in (opening, closing)]
    if (body.stream_options or {}).get("include_usage"):
        chunks.append({**head, "object": chunk_object, "choices": [], "usage": answer["usage"]})
    if answer.get("warnings") and chunks:
        chunks[0]["warnings"] = answer["warnings"]
    return _event_stream(chunks)


@router.post("/v1/chat/completions", responses=ERRORS, response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Union[dict, StreamingResponse]:
    """Beautify the last user message; each choice is one beautified prompt (``stream=true``: as events)."""
    ctx = context_of(request)
    raw = body.raw_prompt()
    results = await generate_openai(ctx, [raw], body.overrides(), "messages")
    choices = [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                "logprobs": None, "guard_status": status}
               for i, (text, status) in enumerate(zip(results[0].outputs, results[0].statuses))]
    answer = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
              "model": model_id(ctx), "choices": choices, "usage": _usage(ctx, [raw], results),
              "warnings": results[0].warnings}
    return _streamed(answer, body, "chat.completion.chunk") if body.stream else answer


@router.post("/v1/completions", responses=ERRORS, response_model=None)
async def completions(body: CompletionRequest, request: Request) -> Union[dict, StreamingResponse]:
    """Beautify each prompt; choices are ``n`` per prompt, in prompt order (OpenAI's layout)."""
    ctx = context_of(request)
    prompts = body.raw_prompts()
    results = await generate_openai(ctx, prompts, body.overrides(), "prompt")
    pairs = [pair for r in results for pair in zip(r.outputs, r.statuses)]
    choices = [{"index": i, "text": text, "finish_reason": "stop", "logprobs": None, "guard_status": status}
               for i, (text, status) in enumerate(pairs)]
    answer = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
              "model": model_id(ctx), "choices": choices, "usage": _usage(ctx, prompts, results),
              "warnings": [w for r in results for w in r.warnings]}
    return _streamed(answer, body, "text_completion") if body.stream else answer
