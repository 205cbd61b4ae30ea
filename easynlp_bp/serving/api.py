"""The FastAPI app: ``POST /v1/beautify``, ``POST /v1/images``, ``GET /health``, ``GET /metrics`` and the demo page.

Every error is JSON ``{"error": {"type", "message", "field", "limit"}}``: 401 bad API key, 413 a request
limit (prompt count or length), 422 bad JSON / wrong types / unknown fields or values (naming the field),
429 queue full, 504 request timeout, 404 images without a configured pipeline.
(No ``from __future__ import annotations`` here: FastAPI reads the endpoint annotations at runtime.)
"""

import asyncio
import hmac
import logging
import re
import time
from contextlib import asynccontextmanager
from typing import Any, Optional

from easynlp_bp.serving.batcher import DynamicBatcher, QueueFullError
from easynlp_bp.serving.config import ServeConfig
from easynlp_bp.serving.metrics import ServerMetrics

logger = logging.getLogger(__name__)

# Options a response reports back (request values over the server's defaults).
REPORTED_OPTIONS = ("num_return_sequences", "decoding", "seed", "temperature", "top_p", "top_k",
                    "max_new_tokens", "banned_words", "max_clip_tokens")
# Tags pydantic puts in error locations for union members and validators; not field names.
_LOCATION_TAGS = ("str", "list[str]", "int", "float")


class APIError(Exception):
    """An error answered as JSON with ``status`` (raised by the endpoints, rendered by one handler)."""

    def __init__(self, status: int, type: str, message: str, field: Optional[str] = None,
                 limit: Optional[str] = None):
        super().__init__(message)
        self.status, self.type, self.message, self.field, self.limit = status, type, message, field, limit

    def body(self) -> dict:
        error = {"type": self.type, "message": self.message}
        error.update({k: v for k, v in (("field", self.field), ("limit", self.limit)) if v is not None})
        return {"error": error}


def _field_name(location: tuple) -> str:
    """("body", "prompts", 2) -> "prompts[2]"; union tags and validator names are left out."""
    name = ""
    for part in location[1:] if location and location[0] == "body" else location:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part not in _LOCATION_TAGS and "[" not in str(part):
            name += f".{part}" if name else str(part)
    return name or "body"


def _validation_error(errors: list[dict]) -> APIError:
    """One 422 naming the first bad field; the message lists every problem."""
    problems = []
    for error in errors:
        field = _field_name(tuple(error.get("loc", ())))
        message = error.get("msg", "invalid")
        if error.get("type") == "json_invalid":
            field, message = "body", f"the body is not valid JSON ({error.get('ctx', {}).get('error', message)})"
        elif error.get("type") == "extra_forbidden":
            message = "unknown field; see the schema at /docs"
        elif error.get("type") == "missing" and field == "body":
            message = 'the body is missing; send JSON such as {"prompts": ["1 girl"]}'
        problems.append((field, message))
    text = "; ".join(f"{field}: {message}" for field, message in dict.fromkeys(problems))
    return APIError(422, "validation_error", text, field=problems[0][0] if problems else "body")


def _check_limits(prompts: list[str], overrides: dict, config: ServeConfig) -> None:
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


def _probe_clip_cap(predictor) -> Optional[str]:
    """None if ``max_clip_tokens`` can be served (the CLIP tokenizer loads), else why not."""
    try:
        predictor.clip_cap_for(predictor.resolve_params({"max_clip_tokens": 77}))
    except (OSError, ValueError) as err:
        name = predictor.params.clip_tokenizer
        logger.warning("max_clip_tokens is unavailable: CLIP tokenizer %r did not load (%s).", name, err)
        return (f"max_clip_tokens needs a CLIP tokenizer, and clip_tokenizer={name!r} could not be loaded on "
                "this server; start it with clip_tokenizer=<local dir>.")
    return None


def create_app(predictor, config: ServeConfig, pipeline: Any = None):
    """Build the FastAPI app serving ``predictor`` (and ``pipeline``, a DiffusionPipeline, for images).

    Example:
        >>> app = create_app(BeautifulPromptPredictor("outputs/beautiful_prompt"), ServeConfig())
        >>> # uvicorn.run(app) -- or easynlp_bp.serving.server.run_server(predictor, config)
    """
    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse

    from easynlp_bp.serving.demo import demo_page
    from easynlp_bp.serving.schemas import (
        BeautifyRequest, BeautifyResponse, ErrorResponse, ImagesRequest, ImagesResponse,
    )

    metrics = ServerMetrics()
    clip_cap_state: dict = {}  # "error": None or why max_clip_tokens cannot be served; probed on first use
    batcher = DynamicBatcher(predictor, config.max_batch_size, config.max_wait_ms, config.max_queue_size, metrics)
    max_body_bytes = config.max_prompts_per_request * config.max_input_chars * 4 + 65536

    @asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="BeautifulPrompt", version="1", lifespan=lifespan,
                  description="Turn simple image descriptions into detailed Stable Diffusion prompts.")
    app.state.batcher, app.state.metrics, app.state.config = batcher, metrics, config
    errors = {code: {"model": ErrorResponse} for code in (401, 413, 422, 429, 504)}

    @app.exception_handler(APIError)
    async def _api_error(_request, err: APIError):
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, err: RequestValidationError):
        error = _validation_error(list(err.errors()))
        return JSONResponse(error.body(), status_code=error.status)

    @app.middleware("http")
    async def _measure(request: Request, call_next):
        start = time.perf_counter()
        if int(request.headers.get("content-length") or 0) > max_body_bytes:
            response = JSONResponse(APIError(413, "limit_exceeded", f"the body is larger than {max_body_bytes} "
                                             "bytes", field="body", limit="max_body_bytes").body(), status_code=413)
        else:
            response = await call_next(request)
        if request.url.path.startswith("/v1/"):
            metrics.record_request(response.status_code, (time.perf_counter() - start) * 1000)
        return response

    def require_key(request: Request) -> None:
        if config.api_key is None:
            return
        given = request.headers.get("x-api-key") or ""
        authorization = request.headers.get("authorization") or ""
        if authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        if not hmac.compare_digest(given.encode(), config.api_key.encode()):
            raise APIError(401, "unauthorized", "missing or wrong API key; send 'Authorization: Bearer KEY'.")

    async def within_timeout(awaitable):
        try:
            return await asyncio.wait_for(awaitable, config.request_timeout_s)
        except asyncio.TimeoutError as err:
            raise APIError(504, "timeout", f"not answered within request_timeout_s={config.request_timeout_s}.",
                           limit="request_timeout_s") from err

    @app.post("/v1/beautify", response_model=BeautifyResponse, responses=errors, dependencies=[Depends(require_key)])
    async def beautify(body: BeautifyRequest) -> BeautifyResponse:
        """Beautify one or many raw prompts; requests arriving together share one generate call."""
        start = time.perf_counter()
        prompts, overrides = body.prompts, body.overrides()
        _check_limits(prompts, overrides, config)
        if "max_clip_tokens" in overrides:
            if "error" not in clip_cap_state:  # load the CLIP tokenizer once, on the model thread
                clip_cap_state["error"] = await batcher.run_exclusive(lambda: _probe_clip_cap(predictor))
            if clip_cap_state["error"]:
                raise APIError(422, "not_configured", clip_cap_state["error"], field="max_clip_tokens",
                               limit="clip_tokenizer")
        try:
            resolved = predictor.resolve_params(overrides)  # option combinations, before any queueing
        except ValueError as err:
            named = re.match(r"(\w+)=", str(err))  # predictor messages start with the option, e.g. "num_beams=5 ..."
            raise APIError(422, "validation_error", str(err), field=named.group(1) if named else None) from err
        try:
            outputs = await within_timeout(batcher.submit(prompts, overrides))
        except QueueFullError as err:
            raise APIError(429, "queue_full", f"{err} Retry shortly.", limit="max_queue_size") from err
        except APIError:  # the 504 from within_timeout
            raise
        except ValueError as err:
            raise APIError(422, "validation_error", str(err)) from err
        except Exception as err:  # noqa: BLE001 - logged by the batcher; the client gets JSON, not a stack trace
            raise APIError(500, "internal_error", f"generation failed: {type(err).__name__}") from err
        return BeautifyResponse(
            results=[{"raw_prompt": raw, "prompts": out} for raw, out in zip(prompts, outputs)],
            options={name: getattr(resolved, name) for name in REPORTED_OPTIONS},
            elapsed_ms=(time.perf_counter() - start) * 1000,
        )

    @app.post("/v1/images", response_model=ImagesResponse, responses={404: {"model": ErrorResponse}, **errors},
              dependencies=[Depends(require_key)])
    async def images(body: ImagesRequest) -> ImagesResponse:
        """Render the beautified prompt (cut to the text encoder's window) and optionally the raw prompt."""
        if pipeline is None:
            raise APIError(404, "not_configured", "no diffusers pipeline is configured; start the server with "
                           "diffusers_pipeline=<dir or hub id>.", limit="diffusers_pipeline")
        from easynlp_bp.serving.diffusers_integration import compare_images, image_to_data_url

        def render():
            return compare_images(pipeline, body.prompt, raw_prompt=body.raw_prompt, seed=body.seed,
                                  num_inference_steps=config.image_steps, height=config.image_size,
                                  width=config.image_size)

        comparison = await within_timeout(batcher.run_exclusive(render))
        return ImagesResponse(
            prompt_used=comparison.prompt, image=image_to_data_url(comparison.image),
            raw_image=image_to_data_url(comparison.raw_image) if comparison.raw_image is not None else None,
        )

    @app.get("/health")
    async def health() -> dict:
        """Liveness and what the demo needs to know (no API key required)."""
        return {"status": "ok", "images": pipeline is not None, "api_key_required": config.api_key is not None,
                "clip_cap": None if "error" not in clip_cap_state else clip_cap_state["error"] is None,
                "queue_depth": batcher.queue_depth, "in_flight": batcher.in_flight,
                "defaults": {name: getattr(predictor.params, name) for name in REPORTED_OPTIONS}}

    @app.get("/metrics", dependencies=[Depends(require_key)])
    async def get_metrics() -> dict:
        """Requests by status, batch sizes (prompts per generate call), queue depth, latency p50/p99."""
        return {**metrics.snapshot(batcher.queue_depth), "in_flight": batcher.in_flight,
                "config": {"max_batch_size": config.max_batch_size, "max_wait_ms": config.max_wait_ms}}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def demo() -> str:
        return demo_page()

    return app
