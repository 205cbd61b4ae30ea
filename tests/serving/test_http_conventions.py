"""The server speaks one error envelope on every path (404, 405, 415 included; OpenAI's shape on OpenAI paths, in
the client's parameter names), logs one access line per request and a start-up line, and tells the demo which
model it serves and whether it is the embedded default's stand-in."""
from __future__ import annotations

import logging
import shutil

import pytest

httpx = pytest.importorskip("httpx", reason="pip install -e .[serving]")
pytest.importorskip("fastapi", reason="pip install -e .[serving]")

from easynlp_bp.models.finished_checkpoint import STAND_IN_WARNING  # noqa: E402
from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams  # noqa: E402
from easynlp_bp.serving.config import ServeConfig  # noqa: E402
from easynlp_bp.serving.server import BackgroundServer  # noqa: E402

KEY = "sk-conventions"


@pytest.fixture(scope="module")
def stand_in_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with the model card the embedded default's training writes."""
    folder = tmp_path_factory.mktemp("served") / "beautiful_prompt"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "README.md").write_text(f"# BeautifulPrompt SFT model\n\n{STAND_IN_WARNING}\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def predictor(stand_in_dir):
    return BeautifulPromptPredictor(str(stand_in_dir), PredictorParams(max_new_tokens=8, device="cpu"))


@pytest.fixture(scope="module")
def server(predictor):
    with BackgroundServer(predictor, ServeConfig(port=0, api_key=KEY, max_new_tokens_limit=32)) as running:
        yield running


def call(server, method: str, path: str, **kwargs) -> httpx.Response:
    headers = {"authorization": f"Bearer {KEY}", **kwargs.pop("headers", {})}
    return httpx.request(method, server.url + path, headers=headers, trust_env=False, timeout=120, **kwargs)


@pytest.mark.parametrize("path, openai", [("/nothing/here", False), ("/v1/nothing", False),
                                          ("/v1/chat/completions/x", True)])
def test_unknown_path_is_a_404_in_the_envelope(server, path, openai):
    answer = call(server, "GET", path)
    assert answer.status_code == 404 and "detail" not in answer.json()
    error = answer.json()["error"]
    assert error["type"] == "not_found" and error["message"].startswith(f"no route {path};")
    assert ("param" in error) == openai  # OpenAI's shape under its paths, the native one elsewhere


def test_wrong_method_is_a_405_that_names_the_right_one(server):
    native = call(server, "GET", "/v1/beautify")
    assert native.status_code == 405 and native.headers["allow"] == "POST"
    assert native.json() == {"error": {"type": "method_not_allowed", "field": "method",
                                       "message": "GET is not allowed on /v1/beautify; use POST."}}
    openai_shape = call(server, "DELETE", "/v1/chat/completions").json()["error"]
    assert openai_shape["code"] == "method_not_allowed" and openai_shape["param"] == "method"


def test_a_body_that_is_not_json_is_a_415(server):
    form = call(server, "POST", "/v1/beautify", content="prompts=1 girl",
                headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415 and form.json()["error"]["field"] == "content-type"
    assert "'application/x-www-form-urlencoded' is not JSON" in form.json()["error"]["message"]
    text = call(server, "POST", "/v1/completions", content="1 girl", headers={"content-type": "text/plain"})
    assert text.status_code == 415 and text.json()["error"]["param"] == "content-type"
    charset = call(server, "POST", "/v1/beautify", content='{"prompts": ["1 girl"]}',
                   headers={"content-type": "application/json; charset=utf-8"})
    assert charset.status_code == 200  # JSON with parameters is JSON


def test_openai_errors_use_the_client_parameter_names(server):
    greedy = call(server, "POST", "/v1/chat/completions",
                  json={"messages": [{"role": "user", "content": "1 girl"}], "temperature": 0, "n": 2})
    error = greedy.json()["error"]
    assert greedy.status_code == 422 and error["param"] == "temperature"
    assert error["message"].startswith("temperature=0 (greedy decoding) has one output, but n=2; use n=1")
    too_long = call(server, "POST", "/v1/completions", json={"prompt": "1 girl", "max_tokens": 99}).json()["error"]
    assert too_long["param"] == "max_tokens"
    assert too_long["message"] == "max_tokens=99 is above this server's limit of 32."
    assert "num_return_sequences" not in error["message"] and "max_new_tokens" not in too_long["message"]


def test_one_access_line_per_request(server, caplog):
    caplog.set_level(logging.INFO, logger="easynlp_bp.serving.access")
    call(server, "POST", "/v1/beautify", json={"prompts": ["1 girl"], "num_return_sequences": 1})
    call(server, "GET", "/v1/nothing")
    lines = [r.getMessage() for r in caplog.records if r.name == "easynlp_bp.serving.access"]
    assert [line.rsplit(" ", 2)[0] for line in lines] == ["POST /v1/beautify 200", "GET /v1/nothing 404"]
    assert all(line.endswith(" ms") and float(line.split()[3]) >= 0 for line in lines)


def test_start_up_line_names_the_model_the_device_and_the_key(predictor, stand_in_dir, caplog):
    caplog.set_level(logging.INFO, logger="easynlp_bp.serving.server")
    with BackgroundServer(predictor, ServeConfig(port=0, api_key=KEY)):
        pass
    with BackgroundServer(predictor, ServeConfig(port=0)):
        pass
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Model ")]
    assert lines == [f"Model {stand_in_dir} on cpu; API key required (clients send 'Authorization: Bearer KEY').",
                     f"Model {stand_in_dir} on cpu; API key not required."]


def test_demo_shows_the_served_model_and_the_stand_in_warning(server, tiny_model_dir):
    health = httpx.get(server.url + "/health", trust_env=False).json()
    assert health["model"] == "beautiful_prompt"
    assert health["stand_in_warning"].startswith("Stand-in model. This checkpoint is the project's embedded default")
    page = httpx.get(server.url + "/", trust_env=False).text
    assert 'id="model_name"' in page and 'id="stand_in_note"' in page and "h.stand_in_warning" in page
    real = BeautifulPromptPredictor(str(tiny_model_dir), PredictorParams(max_new_tokens=8, device="cpu"))
    with BackgroundServer(real, ServeConfig(port=0)) as other:
        health = httpx.get(other.url + "/health", trust_env=False).json()
    assert health["model"] == tiny_model_dir.name and health["stand_in_warning"] is None


def test_a_port_in_use_is_one_line_without_the_hub_hint(tiny_model_dir, capsys):
    import socket

    from easynlp_bp.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["--app_name=beautiful_prompt", "--mode=serve", f"--checkpoint_dir={tiny_model_dir}",
                     f"--user_defined_parameters=port={port} device=cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"easynlp: error: cannot listen on 127.0.0.1:{port} (Address already in use)")
    assert "hub" not in err and len(err.strip().splitlines()) == 1
