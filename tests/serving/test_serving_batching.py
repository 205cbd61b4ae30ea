"""Dynamic batching, the bounded queue (429), the request timeout (504), the API key, and how the server starts."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="pip install -e .[serving]")
pytest.importorskip("fastapi", reason="pip install -e .[serving]")

from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams  # noqa: E402
from easynlp_bp.cli import main  # noqa: E402
from easynlp_bp.serving.config import ServeConfig  # noqa: E402
from easynlp_bp.serving.server import BackgroundServer  # noqa: E402


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return BeautifulPromptPredictor(str(tiny_model_dir), PredictorParams(max_new_tokens=16, device="cpu"))


async def post_together(url: str, bodies: list[dict], headers=None) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=120, trust_env=False) as client:
        return await asyncio.gather(*(client.post("/v1/beautify", json=b, headers=headers) for b in bodies))


def test_requests_arriving_together_share_generate_calls(predictor):
    config = ServeConfig(port=0, max_batch_size=8, max_wait_ms=200)
    with BackgroundServer(predictor, config) as server:
        bodies = [{"prompts": [f"a cat number {i}"], "num_return_sequences": 2} for i in range(8)]
        responses = asyncio.run(post_together(server.url, bodies))
        assert [r.status_code for r in responses] == [200] * 8
        assert [r.json()["results"][0]["raw_prompt"] for r in responses] == [b["prompts"][0] for b in bodies]
        metrics = httpx.get(server.url + "/metrics.json", trust_env=False).json()
    assert metrics["prompts_generated"] == 8
    assert metrics["batches"] < 8 and metrics["mean_batch_size"] > 1  # fewer generate calls than requests
    assert max(int(size) for size in metrics["batch_size_histogram"]) <= 8


def test_seeded_requests_run_alone_and_other_options_do_not_mix(predictor):
    config = ServeConfig(port=0, max_batch_size=8, max_wait_ms=200)
    with BackgroundServer(predictor, config) as server:
        bodies = [{"prompts": ["a dog"], "seed": 3}, {"prompts": ["a dog"], "seed": 3},
                  {"prompts": ["a dog"], "temperature": 0.5}, {"prompts": ["a dog"], "temperature": 0.7}]
        bodies = [{**body, "num_return_sequences": 2, "max_new_tokens": 8} for body in bodies]
        responses = asyncio.run(post_together(server.url, bodies))
        metrics = httpx.get(server.url + "/metrics.json", trust_env=False).json()
    assert [r.status_code for r in responses] == [200] * 4
    assert responses[0].json()["results"] == responses[1].json()["results"]  # seed wins over batch neighbours
    assert metrics["batches"] == 4 and metrics["batch_size_histogram"] == {"1": 4}


def test_full_queue_answers_429_and_the_server_recovers(predictor):
    config = ServeConfig(port=0, max_batch_size=4, max_wait_ms=0, max_queue_size=1)
    heavy = {"prompts": ["a", "b", "c", "d"], "max_new_tokens": 64, "num_return_sequences": 8}
    light = {"prompts": ["e"], "max_new_tokens": 4}

    async def scenario(url):
        async with httpx.AsyncClient(base_url=url, timeout=120, trust_env=False) as client:
            running = asyncio.create_task(client.post("/v1/beautify", json=heavy))
            while (await client.get("/health")).json()["in_flight"] == 0:  # the model is busy with `heavy`
                await asyncio.sleep(0.005)
            # One request fits the queue (max_queue_size=1); the other is turned away at once.
            others = await asyncio.gather(*(client.post("/v1/beautify", json=light) for _ in range(2)))
            return [await running, *others]

    with BackgroundServer(predictor, config) as server:
        responses = asyncio.run(scenario(server.url))
        assert sorted(r.status_code for r in responses) == [200, 200, 429], [r.text for r in responses]
        rejected = next(r.json()["error"] for r in responses if r.status_code == 429)
        assert rejected["type"] == "queue_full" and rejected["limit"] == "max_queue_size"
        after = httpx.post(server.url + "/v1/beautify", json=light, timeout=120, trust_env=False)
        assert after.status_code == 200
        assert httpx.get(server.url + "/metrics.json", trust_env=False).json()["requests_by_status"]["429"] == 1


def test_slow_request_times_out_with_504_and_the_server_recovers(predictor):
    config = ServeConfig(port=0, request_timeout_s=0.05)
    with BackgroundServer(predictor, config) as server:
        slow = {"prompts": ["a", "b", "c", "d"], "max_new_tokens": 48, "num_return_sequences": 8}
        response = httpx.post(server.url + "/v1/beautify", json=slow, timeout=120, trust_env=False)
        assert response.status_code == 504
        assert response.json()["error"]["limit"] == "request_timeout_s"
        assert httpx.get(server.url + "/health", trust_env=False).json()["status"] == "ok"


def test_api_key_is_required_when_set(predictor):
    with BackgroundServer(predictor, ServeConfig(port=0, api_key="s3cret")) as server:
        with httpx.Client(base_url=server.url, timeout=120, trust_env=False) as client:
            body = {"prompts": "1 girl", "num_return_sequences": 1}
            assert client.post("/v1/beautify", json=body).status_code == 401
            wrong = client.post("/v1/beautify", json=body, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and "API key" in wrong.json()["error"]["message"]
            assert client.get("/metrics").status_code == 401
            assert client.get("/health").json()["api_key_required"] is True
            assert client.post("/v1/beautify", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
            assert client.post("/v1/beautify", json=body, headers={"X-API-Key": "s3cret"}).status_code == 200


def test_serve_config_validation_messages():
    with pytest.raises(ValueError, match="max_batch_size=0 must be at least 1"):
        ServeConfig(max_batch_size=0)
    with pytest.raises(ValueError, match=r"port=70000 must lie in \[0, 65535\]"):
        ServeConfig(port=70000)
    with pytest.raises(ValueError, match="api_key is empty"):
        ServeConfig(api_key=" ")
    assert ServeConfig().host == "127.0.0.1"


def test_serve_mode_through_the_cli_reports_bad_settings(tiny_model_dir, capsys):
    code = main(["--app_name=beautiful_prompt", "--mode=serve", f"--checkpoint_dir={tiny_model_dir}",
                 "--user_defined_parameters=max_wait_ms=-1"])
    assert code == 2 and "max_wait_ms=-1.0 must not be negative" in capsys.readouterr().err
    assert main(["--app_name=beautiful_prompt", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "serve" in help_text and "max_batch_size" in help_text and "banned_words" in help_text


@pytest.mark.slow
def test_easynlp_serve_script_serves_on_loopback(tiny_model_dir, tmp_path):
    script = Path(sys.executable).parent / "easynlp-serve"
    if not script.exists():
        pytest.skip("easynlp-serve is not installed (pip install -e .)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [str(script), f"--checkpoint_dir={tiny_model_dir}",
         f"--user_defined_parameters=port={port} max_new_tokens=8 num_return_sequences=5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health", trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "easynlp-serve did not start"
            time.sleep(0.3)
        answer = httpx.post(url + "/v1/beautify", json={"prompts": ["1 girl"]}, timeout=120, trust_env=False)
        assert answer.status_code == 200 and len(answer.json()["results"][0]["prompts"]) == 5
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert f"Serving BeautifulPrompt on http://127.0.0.1:{port}" in output


def test_default_clip_cap_works_offline(predictor):
    # No clip_tokenizer: OpenAI's CLIP vocabulary packaged in instant-clip-tokenizer, no hub needed.
    from easynlp_bp.text.clip_cap import ClipLengthCap

    with BackgroundServer(predictor, ServeConfig(port=0)) as server:
        response = httpx.post(server.url + "/v1/beautify", json={"prompts": "1 girl", "max_clip_tokens": 10, "seed": 1},
                              timeout=60, trust_env=False)
        assert response.status_code == 200, response.text
        assert httpx.get(server.url + "/health", trust_env=False).json()["clip_cap"] is True
    outputs = response.json()["results"][0]["prompts"]
    assert outputs and all(0 < ClipLengthCap(max_tokens=10).count(o) <= 10 for o in outputs)


def test_clip_cap_without_a_loadable_clip_tokenizer_is_a_clear_422(tiny_model_dir):
    # A named CLIP tokenizer that is a hub id cannot load offline.
    predictor = BeautifulPromptPredictor(str(tiny_model_dir), PredictorParams(
        max_new_tokens=16, device="cpu", clip_tokenizer="openai/clip-vit-large-patch14"))
    with BackgroundServer(predictor, ServeConfig(port=0)) as server:
        assert httpx.get(server.url + "/health", trust_env=False).json()["clip_cap"] is None  # not tried yet
        response = httpx.post(server.url + "/v1/beautify", json={"prompts": "1 girl", "max_clip_tokens": 77},
                              timeout=60, trust_env=False)
        assert httpx.get(server.url + "/health", trust_env=False).json()["clip_cap"] is False
        error = response.json()["error"]
        assert response.status_code == 422 and error["field"] == "max_clip_tokens"
        assert "clip_tokenizer='openai/clip-vit-large-patch14' could not be loaded" in error["message"]
