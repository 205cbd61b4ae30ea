"""The FastAPI app: assembly of the guard, the error handlers and the routes around one dynamic batcher.

Routes: ``POST /v1/beautify``, ``POST /v1/images``, the OpenAI-compatible ``GET /v1/models``,
``POST /v1/chat/completions`` and ``POST /v1/completions``, ``POST /v1/clip_tokens``, ``GET /health``,
``GET /metrics`` (Prometheus), ``GET /metrics.json`` and the demo page at ``/``.
Every error is JSON ``{"error": {"type", "message", "field", "limit"}}`` (OpenAI's shape on its routes):
400 bad Content-Length, 401 bad API key (checked before the body is read), 408 body too slow, 413 a request
limit (body size, prompt count or length), 422 bad JSON / wrong types / unknown fields or values (naming the
field), 429 queue full, 504 request timeout, 404 images without a configured pipeline.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

from easynlp_bp.serving.batcher import DynamicBatcher
from easynlp_bp.serving.config import ServeConfig
from easynlp_bp.serving.metrics import ServerMetrics


def create_app(predictor, config: ServeConfig, pipeline: Any = None):
    """Build the FastAPI app serving ``predictor`` (and ``pipeline``, a DiffusionPipeline, for images).

    Example:
        >>> app = create_app(BeautifulPromptPredictor("outputs/beautiful_prompt"), ServeConfig())
        >>> # uvicorn.run(app) -- or easynlp_bp.serving.server.run_server(predictor, config)
    """
    from fastapi import FastAPI

    from easynlp_bp.serving import openai_compat, routes, token_counts
    from easynlp_bp.serving.errors import install_error_handlers
    from easynlp_bp.serving.guard import RequestGuard

    api_key = config.resolved_api_key()
    metrics = ServerMetrics()
    batcher = DynamicBatcher(predictor, config.max_batch_size, config.max_wait_ms, config.max_queue_size, metrics)
    metrics.enable_prometheus(lambda: batcher.queue_depth, lambda: batcher.in_flight)

    @asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="BeautifulPrompt", version="1", lifespan=lifespan,
                  description="Turn simple image descriptions into detailed Stable Diffusion prompts.")
    app.state.serving = routes.ServingContext(predictor, config, batcher, metrics, pipeline,
                                              api_key_required=api_key is not None,
                                              stand_in_warning=routes.stand_in_warning_of(predictor))
    app.state.batcher, app.state.metrics, app.state.config = batcher, metrics, config
    install_error_handlers(app)
    app.add_middleware(RequestGuard, api_key=api_key, max_body_bytes=config.max_body_bytes,
                       body_timeout_s=config.body_timeout_s, metrics=metrics)
    app.include_router(routes.router)
    app.include_router(openai_compat.router)
    app.include_router(token_counts.router)
    return app
