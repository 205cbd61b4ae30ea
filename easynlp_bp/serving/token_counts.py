"""``POST /v1/clip_tokens``: CLIP token counts for the demo, with the tokenizer the predictor's ClipLengthCap
uses, or, when that cannot be loaded (a hub id offline), instant-clip-tokenizer's packaged vocabulary (the same
BPE as OpenAI's CLIP), so that the demo shows counts offline.

(No ``from __future__ import annotations`` here: FastAPI reads the endpoint annotations at runtime.)
"""

import asyncio
import logging
from typing import Callable, Optional

from fastapi import APIRouter, Request

from easynlp_bp.serving.errors import APIError
from easynlp_bp.serving.routes import ERRORS, ServingContext, context_of
from easynlp_bp.serving.schemas import ClipTokensRequest, ClipTokensResponse

logger = logging.getLogger(__name__)
SD_WINDOW = 77


def load_clip_counter(predictor) -> tuple[Optional[Callable[[str], int]], str]:
    """(count function, what counts) or (None, why not): the predictor's CLIP tokenizer, else instant-clip."""
    try:
        cap = predictor.clip_cap_for(predictor.resolve_params({"max_clip_tokens": SD_WINDOW}))
        return cap.count, f"clip_tokenizer={predictor.params.clip_tokenizer}"
    except (OSError, ValueError) as err:
        logger.info("CLIP counts use instant-clip-tokenizer: %r did not load (%s).",
                    predictor.params.clip_tokenizer, err)
    try:
        from easynlp_bp.text.metrics import clip_token_counter

        return clip_token_counter(), "instant-clip-tokenizer"
    except ImportError as err:
        return None, (f"CLIP token counts need clip_tokenizer=<local dir> or instant-clip-tokenizer "
                      f"(pip install -e '.[consistency]'); {err}")


async def clip_counter(ctx: ServingContext) -> tuple[Callable[[str], int], str]:
    """The counter, loaded once per server off the event loop; 422 if none can be loaded."""
    if ctx.clip_counter is None:
        ctx.clip_counter = await asyncio.to_thread(load_clip_counter, ctx.predictor)
    count, source = ctx.clip_counter
    if count is None:
        raise APIError(422, "not_configured", source, field="texts", limit="clip_tokenizer")
    return count, source


router = APIRouter()


@router.post("/v1/clip_tokens", response_model=ClipTokensResponse, responses=ERRORS)
async def clip_tokens(body: ClipTokensRequest, request: Request) -> ClipTokensResponse:
    """CLIP token counts of ``texts`` (BOS and EOS included), and the window they are compared with."""
    ctx = context_of(request)
    for index, text in enumerate(body.texts):
        if len(text) > 8 * ctx.config.max_input_chars:
            raise APIError(413, "limit_exceeded", f"text {index} has {len(text)} characters; the limit is "
                           f"{8 * ctx.config.max_input_chars}.", field=f"texts[{index}]", limit="max_input_chars")
    count, source = await clip_counter(ctx)
    limit = ctx.predictor.params.max_clip_tokens or SD_WINDOW
    return ClipTokensResponse(counts=[count(text) for text in body.texts], limit=limit, tokenizer=source)
