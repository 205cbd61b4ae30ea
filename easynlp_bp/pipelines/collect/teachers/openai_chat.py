"""A teacher behind any OpenAI-compatible ``/chat/completions`` endpoint (hosted APIs, vLLM, llama.cpp).

Requests run on a thread pool (``concurrency``), spaced by a shared rate limiter, retried with
exponential backoff on 429, 5xx, timeouts and connection errors (``Retry-After`` is honoured), and a
reply without a usable ``choices[0].message.content`` becomes a reject with its reason, never an exception.
"""
from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Optional, Sequence

from easynlp_bp.pipelines.collect.teachers.base import TEACHERS, Messages, OnReply, TeacherReply

logger = logging.getLogger(__name__)


@dataclass
class OpenAIChatConfig:
    """Endpoint, model, sampling and the client's resilience settings."""

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: Optional[str] = "OPENAI_API_KEY"
    temperature: float = 0.7
    max_tokens: int = 256
    concurrency: int = 4
    requests_per_minute: float = 0.0  # 0 means no limit
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    extra_body: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"teacher_base_url={self.base_url!r} must start with http:// or https://.")
        if not self.model:
            raise ValueError("teacher_model is empty; name the model the endpoint serves.")
        if self.concurrency < 1:
            raise ValueError(f"teacher_concurrency={self.concurrency} must be at least 1.")
        if self.requests_per_minute < 0 or self.timeout_s <= 0:
            raise ValueError(
                f"teacher_requests_per_minute={self.requests_per_minute} must be >= 0 (0: no limit) and "
                f"teacher_timeout_s={self.timeout_s} > 0."
            )
        if self.max_retries < 0 or self.backoff_s < 0 or self.max_backoff_s < self.backoff_s:
            raise ValueError(
                f"teacher_max_retries={self.max_retries} and teacher_backoff_s={self.backoff_s} must be >= 0, "
                f"and the backoff cap {self.max_backoff_s} at least teacher_backoff_s."
            )


class RateLimiter:
    """Spaces calls at least ``60 / requests_per_minute`` seconds apart across threads (0: no limit)."""

    def __init__(self, requests_per_minute: float):
        self.interval = 60.0 / requests_per_minute if requests_per_minute > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


def parse_chat_reply(body: bytes) -> tuple[Optional[str], Optional[str]]:
    """``(content, None)`` from a chat-completions body, or ``(None, reason)`` when it is malformed."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"malformed reply: body is not JSON ({err.__class__.__name__}: {str(err)[:80]})"
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None, f"malformed reply: no choices[0].message.content in {json.dumps(data)[:120]}"
    if not isinstance(content, str):
        return None, f"malformed reply: content is {type(content).__name__}, not text"
    if not content.strip():
        return None, "empty reply"
    return content.strip(), None


@TEACHERS.register("openai")
class OpenAIChatTeacher:
    """Chat-completions client with concurrency, rate limiting, retries and malformed-reply rejects.

    Example:
        >>> teacher = OpenAIChatTeacher(OpenAIChatConfig(base_url="http://127.0.0.1:8000/v1", model="qwen"))
        >>> [reply.text for reply in teacher.complete([[{"role": "user", "content": "Hi"}]])]
    """

    def __init__(self, config: OpenAIChatConfig):
        import httpx

        self.config = config
        self.identity = f"openai:{config.model}:t={config.temperature}:max={config.max_tokens}"
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(config.api_key_env) if config.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif config.api_key_env and "api.openai.com" in config.base_url:
            raise ValueError(
                f"Environment variable {config.api_key_env} is not set; export your API key there "
                "(or set teacher_api_key_env to the variable that holds it)."
            )
        self._client = httpx.Client(
            base_url=config.base_url.rstrip("/"), headers=headers, timeout=httpx.Timeout(config.timeout_s),
            limits=httpx.Limits(max_connections=config.concurrency),
        )
        self._limiter = RateLimiter(config.requests_per_minute)
        self.retries = 0  # transient failures retried, over the teacher's lifetime (for the report)

    def close(self) -> None:
        self._client.close()

    def _backoff(self, attempt: int, retry_after: Optional[str]) -> float:
        delay = min(self.config.max_backoff_s, self.config.backoff_s * 2 ** (attempt - 1))
        delay *= 1.0 + 0.25 * random.random()  # jitter so that parallel workers do not retry in lockstep
        try:
            delay = max(delay, min(float(retry_after), self.config.max_backoff_s)) if retry_after else delay
        except ValueError:
            pass
        return delay

    def ask(self, messages: Messages) -> TeacherReply:
        """One request with retries; never raises for server or network trouble."""
        import httpx

        payload = {"model": self.config.model, "messages": messages, "temperature": self.config.temperature,
                   "max_tokens": self.config.max_tokens, **self.config.extra_body}
        last_problem = ""
        for attempt in range(1, self.config.max_retries + 2):
            self._limiter.acquire()
            retry_after = None
            try:
                response = self._client.post("/chat/completions", json=payload)
            except httpx.TimeoutException:
                last_problem = f"timed out after {self.config.timeout_s}s"
            except httpx.TransportError as err:
                last_problem = f"connection error: {err.__class__.__name__}: {err}"
            else:
                status = response.status_code
                if status == 429 or status >= 500:
                    last_problem = f"HTTP {status}: {response.text[:120]}"
                    retry_after = response.headers.get("Retry-After")
                elif status >= 400:
                    return TeacherReply(error=f"HTTP {status} (not retried): {response.text[:200]}", attempts=attempt)
                else:
                    text, problem = parse_chat_reply(response.content)
                    return TeacherReply(text=text, error=problem, attempts=attempt)
            if attempt <= self.config.max_retries:
                self.retries += 1
                delay = self._backoff(attempt, retry_after)
                logger.debug("Teacher request failed (%s); retry %d in %.2fs.", last_problem, attempt, delay)
                time.sleep(delay)
        return TeacherReply(error=f"gave up after {self.config.max_retries + 1} attempts: {last_problem}",
                            attempts=self.config.max_retries + 1)

    def complete(self, requests: Sequence[Messages], on_reply: Optional[OnReply] = None,
                 progress_desc: str = "teacher", progress: bool = True) -> list[TeacherReply]:
        """Ask all ``requests`` concurrently; replies come back in request order."""
        from tqdm.auto import tqdm

        replies: list[Optional[TeacherReply]] = [None] * len(requests)
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool, \
                tqdm(total=len(requests), desc=progress_desc, unit="req", disable=not progress) as bar:
            futures = {pool.submit(self.ask, messages): index for index, messages in enumerate(requests)}
            for future in as_completed(futures):
                index = futures[future]
                replies[index] = future.result()
                if on_reply is not None:
                    on_reply(index, replies[index])
                bar.update(1)
        return [reply for reply in replies if reply is not None]
