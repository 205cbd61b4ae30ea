"""The HTTP API on a real uvicorn server on 127.0.0.1: answers, seeds, banned words, length cap, bad requests."""
from __future__ import annotations

import re

import pytest

httpx = pytest.importorskip("httpx", reason="pip install -e .[serving]")
pytest.importorskip("fastapi", reason="pip install -e .[serving]")

from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams  # noqa: E402
from fixtures.tiny_diffusion import build_char_clip_tokenizer  # noqa: E402
from easynlp_bp.serving.config import ServeConfig  # noqa: E402
from easynlp_bp.serving.server import BackgroundServer  # noqa: E402

LIMITS = dict(max_prompts_per_request=4, max_input_chars=200, max_new_tokens_limit=64)


@pytest.fixture(scope="module")
def clip_tokenizer_dir(tmp_path_factory):
    """A real CLIPTokenizer saved to a directory (character level: one character, spaces aside, is one token)."""
    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("clip_tokenizer")
    build_char_clip_tokenizer().save_pretrained(path)
    loaded = AutoTokenizer.from_pretrained(str(path))
    assert type(loaded).__name__ == "CLIPTokenizer" and len(loaded("a cat").input_ids) == 2 + 4  # BOS, a, c, a, t, EOS
    return path


@pytest.fixture(scope="module")
def predictor(tiny_model_dir, clip_tokenizer_dir):
    return BeautifulPromptPredictor(str(tiny_model_dir), PredictorParams(
        max_new_tokens=24, clip_tokenizer=str(clip_tokenizer_dir), device="cpu"))


@pytest.fixture(scope="module")
def server(predictor):
    with BackgroundServer(predictor, ServeConfig(port=0, max_batch_size=8, max_wait_ms=5, **LIMITS)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=120, trust_env=False) as session:
        yield session


def beautify(client, **body) -> dict:
    response = client.post("/v1/beautify", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def whole_words(texts) -> set[str]:
    return {w.lower() for t in texts for w in re.findall(r"[A-Za-z]{4,}", t) if re.search(rf"(?<!\w){w}(?!\w)", t)}


def test_binds_loopback_and_answers_like_the_predictor(server, client, predictor):
    assert server.url.startswith("http://127.0.0.1:")
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["images"] is False and health["defaults"]["num_return_sequences"] == 5
    data = beautify(client, prompts=["1 girl", "a cat on a sofa"], seed=7)
    assert [r["raw_prompt"] for r in data["results"]] == ["1 girl", "a cat on a sofa"]
    assert [len(r["prompts"]) for r in data["results"]] == [5, 5]
    assert data["options"]["seed"] == 7 and data["options"]["max_new_tokens"] == 24
    # The served answer is exactly what the Python API gives for the same options.
    direct = predictor.predict(["1 girl", "a cat on a sofa"], {"seed": 7})
    assert [r["prompts"] for r in data["results"]] == direct
    single = beautify(client, prompts="1 girl", num_return_sequences=1, decoding="greedy")
    assert len(single["results"]) == 1 and len(single["results"][0]["prompts"]) == 1  # greedy: one output
    several = client.post("/v1/beautify", json={"prompts": "1 girl", "num_return_sequences": 2, "decoding": "greedy"})
    assert several.status_code == 422 and several.json()["error"]["field"] == "decoding"  # not silently one


def test_same_seed_same_output_other_seed_differs(client):
    first = beautify(client, prompts=["a castle"], seed=11, temperature=0.9, top_p=0.9)
    again = beautify(client, prompts=["a castle"], seed=11, temperature=0.9, top_p=0.9)
    other = beautify(client, prompts=["a castle"], seed=12, temperature=0.9, top_p=0.9)
    assert first["results"] == again["results"]
    assert first["results"] != other["results"]


def test_banned_words_never_appear(client):
    free = [p for seed in (1, 2, 3) for p in beautify(client, prompts=["1 girl", "a dog"], seed=seed)
            ["results"][0]["prompts"]]
    frequent = sorted(whole_words(free))[:6]
    assert frequent, free  # the unconstrained outputs contain whole words that can be banned
    for seed in (1, 2, 3):
        data = beautify(client, prompts=["1 girl", "a dog"], seed=seed, banned_words=frequent)
        for result in data["results"]:
            for text in result["prompts"]:
                for word in frequent:
                    assert not re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE), (word, text)


def test_clip_length_cap_holds(client, predictor, clip_tokenizer_dir):
    from transformers import AutoTokenizer

    clip = AutoTokenizer.from_pretrained(str(clip_tokenizer_dir))
    count = lambda text: len(clip(text).input_ids)  # noqa: E731
    long = beautify(client, prompts=["a forest"], seed=5, max_new_tokens=48)["results"][0]["prompts"]
    assert max(count(t) for t in long) > 20  # without a cap the outputs are longer than the cap below
    capped = beautify(client, prompts=["a forest"], seed=5, max_new_tokens=48, max_clip_tokens=20)
    texts = capped["results"][0]["prompts"]
    assert capped["options"]["max_clip_tokens"] == 20
    assert all(count(t) <= 20 for t in texts), [count(t) for t in texts]
    # each output is a non-empty cut of its uncapped output, in order; one that cannot fit is dropped, never ""
    remaining = iter(long)
    assert texts and all(short and any(t.startswith(short) for t in remaining) for short in texts), (long, texts)


BAD_REQUESTS = [
    # (raw body, status, error field, error limit, words in the message)
    (b'{"prompts": ["1 girl"', 422, "body", None, "not valid JSON"),
    (b"", 422, "body", None, "body is missing"),
    (b'["1 girl"]', 422, "body", None, "valid dictionary"),
    (b'{"prompts": 123}', 422, "prompts", None, "valid string"),
    (b'{"prompts": "1 girl", "seed": "5"}', 422, "seed", None, "valid integer"),
    (b'{"prompts": "1 girl", "temperature": "hot"}', 422, "temperature", None, "valid number"),
    (b'{"prompts": "1 girl", "temperature": 0}', 422, "temperature", None, "greater than 0"),
    (b'{"prompts": "1 girl", "banned_words": "red"}', 422, "banned_words", None, "valid list"),
    (b'{"prompts": ["  "]}', 422, "prompts", None, "prompt 0 is empty"),
    (b'{"prompts": []}', 422, "prompts", None, "at least one"),
    (b'{"prompts": "1 girl", "decoding": "nucleus"}', 422, "decoding", None, "'sample', 'greedy' or 'beam'"),
    (b'{"prompts": "1 girl", "colour": "red"}', 422, "colour", None, "unknown field"),
    (b'{"prompts": "1 girl", "decoding": "beam", "num_return_sequences": 8}', 422, "num_beams", None,
     "num_beams=5 must be at least num_return_sequences=8"),
    (b'{"prompts": "1 girl", "max_new_tokens": 1000}', 422, "max_new_tokens", "max_new_tokens_limit", "limit of 64"),
    (b'{"prompts": "' + b"x" * 201 + b'"}', 413, "prompts[0]", "max_input_chars", "201 characters"),
    (b'{"prompts": ["a", "b", "c", "d", "e"]}', 413, "prompts", "max_prompts_per_request", "5 prompts"),
]


@pytest.mark.parametrize("body,status,field,limit,words", BAD_REQUESTS, ids=[str(i) for i in range(len(BAD_REQUESTS))])
def test_bad_requests_get_a_useful_4xx(client, body, status, field, limit, words):
    response = client.post("/v1/beautify", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert error.get("limit") == limit
    assert words in error["message"]


def test_server_keeps_serving_after_bad_requests(client):
    for body, *_ in BAD_REQUESTS:
        client.post("/v1/beautify", content=body, headers={"content-type": "application/json"})
    assert len(beautify(client, prompts=["1 girl"], seed=1)["results"][0]["prompts"]) == 5
    metrics = client.get("/metrics.json").json()
    assert metrics["requests_by_status"]["422"] >= 13 and metrics["requests_by_status"]["413"] >= 2
    assert "500" not in metrics["requests_by_status"]
    assert metrics["latency_ms"]["p50"] > 0 and metrics["batches"] >= 1


def test_openapi_schema_and_demo_page(client):
    schema = client.get("/openapi.json").json()
    request = schema["components"]["schemas"]["BeautifyRequest"]
    assert {"prompts", "seed", "banned_words", "max_clip_tokens", "decoding"} <= set(request["properties"])
    assert "/v1/beautify" in schema["paths"] and "/v1/images" in schema["paths"]
    page = client.get("/")
    assert page.status_code == 200 and 'id="beautify"' in page.text
    no_images = client.post("/v1/images", json={"prompt": "a cat, highly detailed"})
    assert no_images.status_code == 404 and no_images.json()["error"]["limit"] == "diffusers_pipeline"


def test_clip_token_counts_use_the_predictors_clip_tokenizer(client, clip_tokenizer_dir):
    data = client.post("/v1/clip_tokens", json={"texts": ["a cat", "ab", "a, b"]}).json()
    assert data["counts"] == [2 + 4, 2 + 2, 2 + 3]  # character level: BOS + one token per character + EOS
    assert data["limit"] == 77 and data["tokenizer"] == f"clip_tokenizer={clip_tokenizer_dir}"
    too_long = client.post("/v1/clip_tokens", json={"texts": ["x" * 1601]})
    assert too_long.status_code == 413 and too_long.json()["error"]["field"] == "texts[0]"
    assert client.post("/v1/clip_tokens", json={"texts": []}).status_code == 422


def test_health_lists_the_request_options_this_predictor_knows(client):
    from dataclasses import fields

    options = client.get("/health").json()["options"]
    assert {"num_return_sequences", "seed", "temperature", "top_p", "max_clip_tokens", "banned_words"} <= set(options)
    assert ("keep_input" in options) == ("keep_input" in {f.name for f in fields(PredictorParams)})


def test_repetition_penalty_options_reach_the_predictor_per_request(client, predictor):
    """repetition_penalty and penalize_prompt are request fields: reported back, and the same as the Python API's
    output for the same seed (so the request really decoded with them)."""
    options = {"repetition_penalty": 2.0, "penalize_prompt": True}
    data = beautify(client, prompts=["a forest"], seed=3, max_new_tokens=12, **options)
    assert data["options"]["repetition_penalty"] == 2.0 and data["options"]["penalize_prompt"] is True
    expected = predictor.predict(["a forest"], {"seed": 3, "max_new_tokens": 12, **options})
    assert data["results"][0]["prompts"] == expected[0]
    default = beautify(client, prompts=["a forest"], seed=3, max_new_tokens=12)
    assert default["options"]["penalize_prompt"] is False and default["results"][0]["prompts"] != expected[0]
    bad = client.post("/v1/beautify", json={"prompts": ["a forest"], "repetition_penalty": 0.5})
    assert bad.status_code == 422 and "repetition_penalty" in bad.text
    assert {"repetition_penalty", "penalize_prompt"} <= set(client.get("/health").json()["options"])
