"""The OpenAI-compatible endpoints through the official ``openai`` package against a real server on loopback, and
the Prometheus text on ``/metrics`` (one registry per server)."""
from __future__ import annotations

import pytest

httpx = pytest.importorskip("httpx", reason="pip install -e .[serving]")
pytest.importorskip("fastapi", reason="pip install -e .[serving]")
openai = pytest.importorskip("openai", reason="pip install -e .[test]")
parser = pytest.importorskip("prometheus_client.parser", reason="pip install -e .[serving]")

from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams  # noqa: E402
from easynlp_bp.serving.config import ServeConfig  # noqa: E402
from easynlp_bp.serving.server import BackgroundServer  # noqa: E402

KEY = "sk-local-test"


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return BeautifulPromptPredictor(str(tiny_model_dir), PredictorParams(max_new_tokens=16, device="cpu"))


@pytest.fixture(scope="module")
def server(predictor):
    config = ServeConfig(port=0, api_key=KEY, max_prompts_per_request=3, max_input_chars=60, max_new_tokens_limit=32)
    with BackgroundServer(predictor, config) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(trust_env=False, timeout=120) as http:
        yield openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, http_client=http)


def stats(server) -> dict:
    return httpx.get(server.url + "/metrics.json", headers={"x-api-key": KEY}, trust_env=False).json()


def test_models_lists_the_served_model(client, tiny_model_dir):
    models = client.models.list()
    assert [m.id for m in models.data] == [tiny_model_dir.name]


def test_chat_completion_beautifies_the_last_user_message(server, client, predictor, tiny_model_dir):
    before = stats(server)["prompts_generated"]
    reply = client.chat.completions.create(
        model="anything", seed=7, n=3, max_tokens=12, temperature=0.9, top_p=0.9,
        messages=[{"role": "system", "content": "You write prompts."}, {"role": "user", "content": "a castle"},
                  {"role": "assistant", "content": "ignored"}, {"role": "user", "content": "1 girl"}])
    direct = predictor.predict(["1 girl"], {"num_return_sequences": 3, "seed": 7, "max_new_tokens": 12,
                                            "temperature": 0.9, "top_p": 0.9})[0]
    assert [c.message.content for c in reply.choices] == direct  # the same answer as the Python API
    assert [c.index for c in reply.choices] == [0, 1, 2] and {c.finish_reason for c in reply.choices} == {"stop"}
    assert reply.model == tiny_model_dir.name and reply.object == "chat.completion"
    assert reply.usage.prompt_tokens == len(predictor.tokenizer("1 girl").input_ids)
    assert stats(server)["prompts_generated"] == before + 1  # through the dynamic batcher
    greedy = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "1 girl"}],
                                            temperature=0, max_tokens=12)
    assert [c.message.content for c in greedy.choices] == predictor.predict(
        ["1 girl"], {"decoding": "greedy", "max_new_tokens": 12, "num_return_sequences": 1})[0]


def test_completions_give_n_choices_per_prompt_in_order(client, predictor):
    reply = client.completions.create(model="m", prompt=["1 girl", "a cat"], n=2, seed=3, max_tokens=10)
    direct = predictor.predict(["1 girl", "a cat"], {"num_return_sequences": 2, "seed": 3, "max_new_tokens": 10})
    assert [c.text for c in reply.choices] == direct[0] + direct[1]
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    with pytest.raises(openai.APIStatusError) as caught:
        client.completions.create(model="m", prompt=["a", "b", "c", "d"])
    assert caught.value.status_code == 413 and caught.value.body["param"] == "prompt"


@pytest.mark.parametrize("call,status,param,code", [
    (dict(n=17), 422, "n", "validation_error"),
    (dict(max_tokens=33), 422, "max_tokens", "max_new_tokens_limit"),
    (dict(content="x" * 61), 413, "messages", "max_input_chars"),
    (dict(content="   "), 422, "messages", "validation_error"),
    (dict(stream=True, n=17), 422, "n", "validation_error"),  # a streamed request fails before any event
    (dict(temperature=0, n=2), 422, "temperature", "validation_error"),  # greedy gives one output
    (dict(extra_body={"colour": "red"}), 422, "colour", "validation_error"),
], ids=["n", "max_tokens", "long", "empty", "stream-n", "greedy-n", "unknown"])
def test_errors_reach_openai_clients_in_openai_shape(client, call, status, param, code):
    content = call.pop("content", "1 girl")
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": content}], **call)
    assert caught.value.status_code == status
    assert caught.value.body["param"] == param and caught.value.body["code"] == code
    assert caught.value.body["message"]


def test_streaming_clients_get_the_same_choices_as_events(client, predictor):
    """Chat front-ends stream by default: the official client's stream yields the same prompts, per choice,
    then the usage; the raw response is OpenAI's event stream ending with [DONE]."""
    options = {"num_return_sequences": 2, "seed": 5, "max_new_tokens": 10}
    direct = predictor.predict(["1 girl"], options)[0]
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "1 girl"}], n=2,
                                            seed=5, max_tokens=10, stream=True,
                                            stream_options={"include_usage": True})
    texts, finished, usage = {}, {}, None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        usage = chunk.usage or usage
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            finished[choice.index] = choice.finish_reason or finished.get(choice.index)
    assert [texts[i] for i in sorted(texts)] == direct and finished == {0: "stop", 1: "stop"}
    assert usage is not None and usage.prompt_tokens == len(predictor.tokenizer("1 girl").input_ids)
    raw = httpx.post(str(client.base_url) + "chat/completions", headers={"authorization": f"Bearer {KEY}"},
                     json={"messages": [{"role": "user", "content": "1 girl"}], "stream": True}, trust_env=False,
                     timeout=120)
    assert raw.headers["content-type"].startswith("text/event-stream") and raw.text.endswith("data: [DONE]\n\n")
    completion = client.completions.create(model="m", prompt="a cat", n=1, seed=5, max_tokens=10, stream=True)
    assert "".join(c.choices[0].text for c in completion if c.choices) == predictor.predict(
        ["a cat"], {**options, "num_return_sequences": 1})[0][0]


def test_wrong_key_is_an_authentication_error(server):
    with httpx.Client(trust_env=False, timeout=120) as http:
        wrong = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0, http_client=http)
        with pytest.raises(openai.AuthenticationError, match="API key"):
            wrong.models.list()


def sample(text: str, name: str, labels: dict | None = None) -> float:
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and (labels is None or s.labels == labels):
                return s.value
    raise KeyError(name)


def test_metrics_are_prometheus_text_per_server(server, client, predictor):
    client.completions.create(model="m", prompt="a dog", n=1, max_tokens=8)
    response = httpx.get(server.url + "/metrics", headers={"authorization": f"Bearer {KEY}"}, trust_env=False)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    counts = stats(server)
    text = response.text
    assert sample(text, "beautifulprompt_requests_total", {"status": "200"}) == counts["requests_by_status"]["200"]
    assert sample(text, "beautifulprompt_request_latency_seconds_count") == counts["latency_ms"]["count"]
    assert sample(text, "beautifulprompt_batch_size_prompts_sum") == counts["prompts_generated"]
    assert sample(text, "beautifulprompt_queue_depth") == 0
    with BackgroundServer(predictor, ServeConfig(port=0)) as other:  # its own registry: nothing counted yet
        fresh = httpx.get(other.url + "/metrics", trust_env=False).text
        assert sample(fresh, "beautifulprompt_batch_size_prompts_count") == 0
        with pytest.raises(KeyError):
            sample(fresh, "beautifulprompt_requests_total", {"status": "200"})
