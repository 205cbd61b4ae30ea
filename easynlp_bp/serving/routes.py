"""The native routes (``/v1/beautify``, ``/v1/images``, ``/health``, ``/metrics``, the demo) and ``generate``,
the one path from a request to the dynamic batcher that the OpenAI-compatible routes share.

(No ``from __future__ import annotations`` here: FastAPI reads the endpoint annotations at runtime.)
"""

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from easynlp_bp.serving.batcher import DynamicBatcher, QueueFullError
from easynlp_bp.serving.config import ServeConfig
from easynlp_bp.serving.errors import APIError
from easynlp_bp.serving.metrics import ServerMetrics
from easynlp_bp.serving.schemas import (
    BeautifyRequest, BeautifyResponse, ErrorResponse, ImagesRequest, ImagesResponse,
)

logger = logging.getLogger(__name__)

# Options a response reports back (request values over the server's defaults): the per-request options.
REPORTED_OPTIONS = tuple(name for name in BeautifyRequest.model_fields if name != "prompts")
_UNPROBED = object()


@dataclass
class ServingContext:
    """What every route needs: the predictor, its batcher, the limits, the counters, an optional pipeline."""

    predictor: Any
    config: ServeConfig
    batcher: DynamicBatcher
    metrics: ServerMetrics
    pipeline: Any = None
    api_key_required: bool = False
    clip_cap_error: Any = field(default=_UNPROBED)  # None, or why max_clip_tokens cannot be served
    clip_counter: Any = None  # (count function or None, source or why not), loaded on first use
    stand_in_warning: Optional[str] = None  # the model card's warning when the model is the embedded default


def served_model_dir(predictor) -> str:
    """The folder (or hub id) the served model was loaded from."""
    return str(getattr(predictor.model, "name_or_path", "") or "beautiful_prompt")


def served_model_name(predictor) -> str:
    """The served model's name: its folder's name (what OpenAI clients list and the demo shows)."""
    return Path(served_model_dir(predictor)).name or "beautiful_prompt"


def stand_in_warning_of(predictor) -> Optional[str]:
    """The model card's stand-in warning, as plain text, when the served model is the embedded default."""
    from easynlp_bp.models.finished_checkpoint import STAND_IN_WARNING, is_stand_in_checkpoint

    folder = served_model_dir(predictor)
    return STAND_IN_WARNING.replace("**", "").replace("`", "").replace("*", "") \
        if Path(folder).is_dir() and is_stand_in_checkpoint(folder) else None


def context_of(request: Request) -> ServingContext:
    return request.app.state.serving


def check_limits(prompts: list[str], overrides: dict, config: ServeConfig) -> None:
    """413 for too many or too long prompts, 422 for ``max_new_tokens`` above the server's limit."""
    if len(prompts) > config.max_prompts_per_request:
        raise APIError(413, "limit_exceeded", f"{len(prompts)} prompts in one request; the limit is "
                       f"{config.max_prompts_per_request}. Split the request.", field="prompts",
                       limit="max_prompts_per_request")
    for index, text in enumerate(prompts):
        if len(text) > config.max_input_chars:
            raise APIError(413, "limit_exceeded", f"prompt {index} has {len(text)} characters; the limit is "
                           f"{config.max_input_chars}.", field=f"prompts[{index}]", limit="max_input_chars")
    max_new = overrides.get("max_new_tokens")
    if max_new is not None and max_new > config.max_new_tokens_limit:
        raise APIError(422, "limit_exceeded", f"max_new_tokens={max_new} is above this server's limit of "
                       f"{config.max_new_tokens_limit}.", field="max_new_tokens", limit="max_new_tokens_limit")


def probe_clip_cap(predictor) -> Optional[str]:
    """None if ``max_clip_tokens`` can be served (the CLIP tokenizer loads), else why not."""
    try:
        predictor.clip_cap_for(predictor.resolve_params({"max_clip_tokens": 77}))
    except (OSError, ValueError) as err:
        name = predictor.params.clip_tokenizer
        logger.warning("max_clip_tokens is unavailable: CLIP tokenizer %r did not load (%s).", name, err)
        return (f"max_clip_tokens needs a CLIP tokenizer, and clip_tokenizer={name!r} could not be loaded on "
                "this server; start it with clip_tokenizer=<local dir>.")
    return None


async def ensure_clip_cap(ctx: ServingContext) -> None:
    """Load the CLIP tokenizer once (on the model thread); 422 if it cannot be loaded."""
    if ctx.clip_cap_error is _UNPROBED:
        ctx.clip_cap_error = await ctx.batcher.run_exclusive(lambda: probe_clip_cap(ctx.predictor))
    if ctx.clip_cap_error:
        raise APIError(422, "not_configured", ctx.clip_cap_error, field="max_clip_tokens", limit="clip_tokenizer")


async def within_timeout(awaitable, config: ServeConfig):
    try:
        return await asyncio.wait_for(awaitable, config.request_timeout_s)
    except asyncio.TimeoutError as err:
        raise APIError(504, "timeout", f"not answered within request_timeout_s={config.request_timeout_s}.",
                       limit="request_timeout_s") from err


async def generate(ctx: ServingContext, prompts: list[str], overrides: dict):
    """(one ``PromptResult`` per raw prompt, resolved params) through the limits and the dynamic batcher."""
    check_limits(prompts, overrides, ctx.config)
    if "max_clip_tokens" in overrides:
        await ensure_clip_cap(ctx)
    try:
        resolved = ctx.predictor.resolve_params(overrides)  # option combinations, before any queueing
    except ValueError as err:
        named = re.match(r"(\w+)=", str(err))  # predictor messages start with the option, e.g. "num_beams=5 ..."
        raise APIError(422, "validation_error", str(err), field=named.group(1) if named else None) from err
    try:
        outputs = await within_timeout(ctx.batcher.submit(prompts, overrides), ctx.config)
    except QueueFullError as err:
        raise APIError(429, "queue_full", f"{err} Retry shortly.", limit="max_queue_size") from err
    except APIError:  # the 504 from within_timeout
        raise
    except ValueError as err:
        raise APIError(422, "validation_error", str(err)) from err
    except Exception as err:  # noqa: BLE001 - logged by the batcher; the client gets JSON, not a stack trace
        raise APIError(500, "internal_error", f"generation failed: {type(err).__name__}") from err
    return outputs, resolved


ERRORS = {code: {"model": ErrorResponse} for code in (401, 408, 413, 422, 429, 504)}
router = APIRouter()


@router.post("/v1/beautify", response_model=BeautifyResponse, responses=ERRORS)
async def beautify(body: BeautifyRequest, request: Request) -> BeautifyResponse:
    """Beautify one or many raw prompts; requests arriving together share one generate call."""
    start = time.perf_counter()
    outputs, resolved = await generate(context_of(request), body.prompts, body.overrides())
    return BeautifyResponse(
        results=[{"raw_prompt": raw, "prompts": r.outputs, "statuses": r.statuses, "warnings": r.warnings,
                  "scores": r.scores, "reason": r.reason} for raw, r in zip(body.prompts, outputs)],
        options={name: getattr(resolved, name) for name in REPORTED_OPTIONS},
        elapsed_ms=(time.perf_counter() - start) * 1000,
    )


@router.post("/v1/images", response_model=ImagesResponse, responses={404: {"model": ErrorResponse}, **ERRORS})
async def images(body: ImagesRequest, request: Request) -> ImagesResponse:
    """Render the beautified prompt (cut to the text encoder's window) and optionally the raw prompt."""
    ctx = context_of(request)
    if ctx.pipeline is None:
        raise APIError(404, "not_configured", "no diffusers pipeline is configured; start the server with "
                       "diffusers_pipeline=<dir or hub id>.", limit="diffusers_pipeline")
    from easynlp_bp.serving.diffusers_integration import compare_images, image_to_data_url

    def render():
        return compare_images(ctx.pipeline, body.prompt, raw_prompt=body.raw_prompt, seed=body.seed,
                              num_inference_steps=ctx.config.image_steps, height=ctx.config.image_size,
                              width=ctx.config.image_size)

    comparison = await within_timeout(ctx.batcher.run_exclusive(render), ctx.config)
    return ImagesResponse(
        prompt_used=comparison.prompt, image=image_to_data_url(comparison.image),
        raw_image=image_to_data_url(comparison.raw_image) if comparison.raw_image is not None else None,
    )


@router.get("/health")
async def health(request: Request) -> dict:
    """Liveness and what the demo needs to know (no API key required)."""
    ctx = context_of(request)
    return {"status": "ok", "model": served_model_name(ctx.predictor), "stand_in_warning": ctx.stand_in_warning,
            "images": ctx.pipeline is not None, "api_key_required": ctx.api_key_required,
            "clip_cap": None if ctx.clip_cap_error is _UNPROBED else ctx.clip_cap_error is None,
            "queue_depth": ctx.batcher.queue_depth, "in_flight": ctx.batcher.in_flight,
            "quantize": getattr(ctx.predictor.params, "quantize", "none"),
            "defaults": {name: getattr(ctx.predictor.params, name) for name in REPORTED_OPTIONS},
            "options": accepted_options()}


def accepted_options() -> list[str]:
    """Request options this server accepts (the ``http=True`` options of ``PredictorParams``)."""
    return list(REPORTED_OPTIONS)


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus_metrics(request: Request) -> PlainTextResponse:
    """Prometheus text format (requests by status, latency and batch-size histograms, queue depth)."""
    text, content_type = context_of(request).metrics.prometheus_text()
    return PlainTextResponse(text, media_type=content_type)


@router.get("/metrics.json")
async def json_metrics(request: Request) -> dict:
    """Requests by status, batch sizes (prompts per generate call), queue depth, latency p50/p99, as JSON."""
    ctx = context_of(request)
    return {**ctx.metrics.snapshot(ctx.batcher.queue_depth), "in_flight": ctx.batcher.in_flight,
            "config": {"max_batch_size": ctx.config.max_batch_size, "max_wait_ms": ctx.config.max_wait_ms}}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def demo() -> str:
    from easynlp_bp.serving.demo import demo_page

    return demo_page()
