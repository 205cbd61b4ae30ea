"""The OpenAI-compatible teacher against a real local HTTP server, the rate limiter, and the local HF teacher."""
from __future__ import annotations

import time

import pytest

from easynlp_bp.pipelines.collect.teachers import (
    LocalHFConfig, LocalHFTeacher, OpenAIChatConfig, OpenAIChatTeacher, RateLimiter,
)
from easynlp_bp.pipelines.collect.teachers.openai_chat import parse_chat_reply
from test_collect_fake_server import FakeChatServer


def _user(text: str) -> list[dict]:
    return [{"role": "system", "content": "Expand it."}, {"role": "user", "content": f"Description: {text}"}]


def test_client_retries_rejects_malformed_and_loses_nothing():
    inputs = ["a cat", "a dog #429x2", "a fox #500x1", "an owl #slow", "a bat #malformed",
              "a cow #nocontent", "an elk #500x9"] + [f"plain {i}" for i in range(8)]
    with FakeChatServer(slow_s=1.5) as server:
        teacher = OpenAIChatTeacher(OpenAIChatConfig(
            base_url=server.base_url, model="fake", api_key_env=None, concurrency=4, timeout_s=0.5,
            max_retries=3, backoff_s=0.01, max_backoff_s=0.05))
        seen: dict[int, object] = {}
        replies = teacher.complete([_user(t) for t in inputs], on_reply=lambda i, r: seen.setdefault(i, r),
                                   progress=False)
        teacher.close()
        asks = dict(server.asks)
    assert len(replies) == len(inputs) and sorted(seen) == list(range(len(inputs)))  # nothing lost
    by_input = dict(zip(inputs, replies))
    assert by_input["a cat"].text.startswith("a cat, intricate details") and by_input["a cat"].attempts == 1
    assert by_input["a dog #429x2"].ok and by_input["a dog #429x2"].attempts == 3
    assert asks["Description: a dog #429x2"] == 3
    assert by_input["a fox #500x1"].ok and by_input["a fox #500x1"].attempts == 2
    assert by_input["an owl #slow"].ok and by_input["an owl #slow"].attempts == 2   # timed out once
    assert by_input["a bat #malformed"].error.startswith("malformed reply: body is not JSON")
    assert asks["Description: a bat #malformed"] == 1                                # not retried
    assert "no choices[0].message.content" in by_input["a cow #nocontent"].error
    assert by_input["an elk #500x9"].error.startswith("gave up after 4 attempts: HTTP 500")
    assert asks["Description: an elk #500x9"] == 4
    assert sum(r.ok for r in replies) == len(inputs) - 3
    assert teacher.retries == 2 + 1 + 1 + 3


def test_parse_chat_reply_reasons():
    assert parse_chat_reply(b'{"choices": [{"message": {"content": "  hi "}}]}') == ("hi", None)
    assert parse_chat_reply(b'{"choices": [{"message": {"content": "  "}}]}') == (None, "empty reply")
    assert parse_chat_reply(b'{"choices": [{"message": {"content": 3}}]}')[1] == "malformed reply: content is int, not text"
    assert parse_chat_reply(b"<html>")[1].startswith("malformed reply: body is not JSON")


def test_rate_limiter_spaces_requests_across_threads():
    from concurrent.futures import ThreadPoolExecutor

    limiter = RateLimiter(requests_per_minute=600)  # one every 0.1 s
    start = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: limiter.acquire(), range(6)))
    assert time.monotonic() - start >= 0.5 - 1e-3  # 6 calls -> 5 gaps of 0.1 s


def test_openai_config_errors_name_the_key():
    with pytest.raises(ValueError, match="teacher_base_url='localhost:8000' must start with http"):
        OpenAIChatConfig(base_url="localhost:8000")
    with pytest.raises(ValueError, match="teacher_concurrency=0 must be at least 1"):
        OpenAIChatConfig(concurrency=0)


def test_missing_api_key_for_hosted_api_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("MY_KEY_VAR", raising=False)
    with pytest.raises(ValueError, match="Environment variable MY_KEY_VAR is not set"):
        OpenAIChatTeacher(OpenAIChatConfig(api_key_env="MY_KEY_VAR"))


def test_local_hf_teacher_generates_from_a_tiny_model(tiny_bloom, tiny_tokenizer):
    teacher = LocalHFTeacher(tiny_bloom, tiny_tokenizer, LocalHFConfig(model="tiny", max_new_tokens=6, batch_size=2))
    requests = [_user("a cat"), _user("a castle at night"), _user("1 girl")]
    got: list[int] = []
    replies = teacher.complete(requests, on_reply=lambda i, r: got.append(i), progress=False)
    assert got == [0, 1, 2] and len(replies) == 3
    again = teacher.complete(requests, progress=False)
    assert [r.text for r in replies] == [r.text for r in again]  # greedy: deterministic
    assert all(r.ok or r.error == "empty reply" for r in replies)
    assert teacher.identity == "local_hf:tiny:sample=False:max=6"
