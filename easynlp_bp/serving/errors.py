"""Error mapping of the HTTP API: one ``APIError`` type, pydantic errors -> one 422 naming the field, and the
handlers that render both as JSON.

Native routes answer ``{"error": {"type", "message", "field", "limit"}}``; the OpenAI-compatible routes answer
OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` so that OpenAI clients show the message.
"""
from __future__ import annotations

from typing import Optional

# Tags pydantic puts in error locations for union members and validators; not field names.
_LOCATION_TAGS = ("str", "list[str]", "int", "float")
# Paths answered in OpenAI's error shape.
OPENAI_PATHS = ("/v1/models", "/v1/chat/completions", "/v1/completions")


class APIError(Exception):
    """An error answered as JSON with ``status`` (raised by the endpoints, rendered by one handler)."""

    def __init__(self, status: int, type: str, message: str, field: Optional[str] = None,
                 limit: Optional[str] = None):
        super().__init__(message)
        self.status, self.type, self.message, self.field, self.limit = status, type, message, field, limit

    def body(self) -> dict:
        """The native error body."""
        error = {"type": self.type, "message": self.message}
        error.update({k: v for k, v in (("field", self.field), ("limit", self.limit)) if v is not None})
        return {"error": error}

    def openai_body(self) -> dict:
        """OpenAI's error body: ``param`` is the field, ``code`` the limit or the error type."""
        return {"error": {"message": self.message, "type": self.type, "param": self.field,
                          "code": self.limit or self.type}}

    def body_for(self, path: str) -> dict:
        """The body in the shape the route at ``path`` speaks."""
        return self.openai_body() if path.startswith(OPENAI_PATHS) else self.body()


def field_name(location: tuple) -> str:
    """("body", "prompts", 2) -> "prompts[2]"; union tags and validator names are left out."""
    name = ""
    for part in location[1:] if location and location[0] == "body" else location:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part not in _LOCATION_TAGS and "[" not in str(part):
            name += f".{part}" if name else str(part)
    return name or "body"


def validation_error(errors: list[dict]) -> APIError:
    """One 422 naming the first bad field; the message lists every problem."""
    problems = []
    for error in errors:
        field = field_name(tuple(error.get("loc", ())))
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


def routing_error(status: int, method: str, path: str, allowed: Optional[str], detail: str) -> APIError:
    """The :class:`APIError` for an HTTP error raised outside our endpoints (routing: 404 unknown path, 405 wrong
    method), so that every answer has the same envelope."""
    if status == 404:
        return APIError(404, "not_found", f"no route {path}; the API is listed at /docs (OpenAI clients: "
                        "base_url ending in /v1).", field="path")
    if status == 405:
        return APIError(405, "method_not_allowed", f"{method} is not allowed on {path}; use {allowed or 'another'}.",
                        field="method")
    return APIError(status, "http_error", detail)


def install_error_handlers(app) -> None:
    """Render :class:`APIError` and request validation errors as JSON on ``app``."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    async def api_error(request, err: APIError):
        return JSONResponse(err.body_for(request.url.path), status_code=err.status)

    async def invalid(request, err: RequestValidationError):
        error = validation_error(list(err.errors()))
        return JSONResponse(error.body_for(request.url.path), status_code=error.status)

    async def http_error(request, err: StarletteHTTPException):
        if err.status_code == 400:  # a body Starlette could not parse
            error = APIError(400, "bad_request", _http_message(err), field="body")
        else:
            error = routing_error(err.status_code, request.method, request.url.path,
                                  (err.headers or {}).get("Allow"), str(err.detail))
        return JSONResponse(error.body_for(request.url.path), status_code=error.status, headers=err.headers)

    app.add_exception_handler(APIError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)  # routing's 404/405 and unparsable bodies


def _http_message(err) -> str:
    if "parsing the body" in str(err.detail):
        return ('the body could not be parsed as JSON (not UTF-8, or nested too deeply); send UTF-8 JSON such as '
                '{"prompts": ["1 girl"]}.')
    return str(err.detail)
