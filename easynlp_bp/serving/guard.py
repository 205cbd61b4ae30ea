"""The ASGI middleware in front of every route: API key first, then the request body under a byte limit and a
deadline, and the request metrics.

Order matters for hostile clients: the key is checked on the headers alone, so a keyless request gets 401 before
a byte of its body is read (not 422 or 413); the body is then read chunk by chunk and counted, so a chunked body
with no Content-Length cannot grow past ``max_body_bytes``; and a client that sends less than it announced (or
drips bytes) gets 408 after ``body_timeout_s``. A POST whose Content-Type is not JSON gets 415. Every request
is logged once (method, path, status, milliseconds) on the ``easynlp_bp.serving.access`` logger. Every early answer closes the connection (``Connection: close``).
Hand-written because FastAPI reads the body before any dependency runs, and Starlette has no body-size limit.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import time
from typing import Optional

from easynlp_bp.serving.errors import APIError

PROTECTED_PREFIXES = ("/v1/", "/metrics")
# A body announced (Content-Length) above max_body_bytes but below this is read and dropped before the 413: closing
# a connection with unread bytes resets it, and the client never sees the answer. Larger ones are answered at once.
MAX_DISCARDED_BYTES = 64 << 20
# Far deeper than any request of this API (3 levels) and far below Python's recursion limit.
MAX_JSON_DEPTH = 32
# One line per request (method, path, status, milliseconds); uvicorn's own access log is off.
access_logger = logging.getLogger("easynlp_bp.serving.access")


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or a ``+json`` type, with or without parameters (``; charset=utf-8``)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def given_key(headers: dict[bytes, bytes]) -> str:
    """The key a client sent: ``Authorization: Bearer KEY`` (as OpenAI clients send it) or ``X-API-Key``."""
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return headers.get(b"x-api-key", b"").decode("latin-1")


class RequestGuard:
    """Pure ASGI middleware; ``app.state.metrics`` records /v1/ requests (status and latency), rejections too."""

    def __init__(self, app, api_key: Optional[str], max_body_bytes: int, body_timeout_s: float, metrics=None):
        self.app, self.api_key, self.metrics = app, api_key, metrics
        self.max_body_bytes, self.body_timeout_s = max_body_bytes, body_timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, path, status = time.perf_counter(), scope["path"], {}

        def finished() -> None:
            if status.pop("open", False):
                elapsed_ms = (time.perf_counter() - start) * 1000
                if self.metrics is not None and path.startswith("/v1/") and "code" in status:
                    self.metrics.record_request(status["code"], elapsed_ms)
                access_logger.info("%s %s %s %.0f ms", scope["method"], path, status.get("code", "-"), elapsed_ms)

        async def send_recording(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished()  # before the last bytes leave, so a client never sees the answer before its log line
            await send(message)

        status["open"] = True
        try:
            receive = await self._checked(scope, receive)
        except APIError as err:
            await _reject(err, scope, receive, send_recording)
        else:
            if receive is not None:  # None: the client went away while sending
                await self.app(scope, receive, send_recording)
        finished()  # no response was sent (the client went away)

    async def _checked(self, scope, receive):
        """A ``receive`` that replays the whole (bounded) body; raises :class:`APIError` for 401/413/408/400."""
        headers = dict(scope["headers"])
        if self.api_key is not None and scope["path"].startswith(PROTECTED_PREFIXES):
            if not hmac.compare_digest(given_key(headers).encode(), self.api_key.encode()):
                raise APIError(401, "unauthorized", "missing or wrong API key; send 'Authorization: Bearer KEY'.")
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if scope["method"] == "POST" and content_type and not is_json_media_type(content_type):
            raise APIError(415, "unsupported_media_type", f"Content-Type {content_type[:60]!r} is not JSON; send "
                           "the body as JSON with 'Content-Type: application/json'.", field="content-type")
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise APIError(400, "bad_request", f"Content-Length {declared[:20]!r} is not a number.",
                               field="content-length")
            if int(declared) > self.max_body_bytes:
                if int(declared) <= MAX_DISCARDED_BYTES:  # read and drop it, so the client can read the 413
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(_discard_body(receive), self.body_timeout_s)
                raise _too_large(self.max_body_bytes)
        try:
            body = await asyncio.wait_for(self._read_body(receive), self.body_timeout_s)
        except asyncio.TimeoutError as err:
            raise APIError(408, "timeout", f"the request body did not arrive within body_timeout_s="
                           f"{self.body_timeout_s}; send the whole body at once.", field="body",
                           limit="body_timeout_s") from err
        if body is not None and _is_json(headers):
            check_json_body(body)
        return None if body is None else _replay(body, receive)

    async def _read_body(self, receive) -> Optional[bytes]:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:  # counted as it streams: chunked bodies have no Content-Length
                raise _too_large(self.max_body_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _discard_body(receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return


def _is_json(headers: dict[bytes, bytes]) -> bool:
    return headers.get(b"content-type", b"application/json").split(b";")[0].strip().endswith(b"json")


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def check_json_body(body: bytes) -> None:
    """``APIError`` 400 naming the problem when a JSON body is not UTF-8 or nests deeper than
    :data:`MAX_JSON_DEPTH` (Python's parser would fail with a RecursionError on 50,000 brackets)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise APIError(400, "bad_request", f"the body is not valid UTF-8 (byte {err.start}: "
                       f"{body[err.start:err.start + 4]!r}); send UTF-8 JSON.", field="body") from err
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return  # cannot nest deeper (the common case: no scan)
    depth = deepest = 0
    for byte in _JSON_STRING.sub(b"", body):  # brackets inside strings do not nest
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    if deepest > MAX_JSON_DEPTH:
        raise APIError(400, "bad_request", f"the JSON body nests {deepest} levels deep; the limit is "
                       f"{MAX_JSON_DEPTH}.", field="body", limit="max_json_depth")


def _too_large(limit: int) -> APIError:
    return APIError(413, "limit_exceeded", f"the body is larger than {limit} bytes; send fewer or shorter "
                    "prompts.", field="body", limit="max_body_bytes")


def _replay(body: bytes, receive):
    """A ``receive`` that gives ``body`` once, then defers to the server (for ``http.disconnect``)."""
    given = False

    async def replay():
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _reject(err: APIError, scope, receive, send) -> None:
    from fastapi.responses import JSONResponse

    response = JSONResponse(err.body_for(scope["path"]), status_code=err.status, headers={"connection": "close"})
    await response(scope, receive, send)
