"""quantize=int8 from the command lines: ``easynlp-serve`` starts its server with an int8 model (and /health says
so), ``easynlp --mode=predict`` answers with one, and ``--mode=train`` refuses it by name."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="pip install -e .[serving]")
from fastapi.testclient import TestClient  # noqa: E402

from easynlp_bp.cli import main as easynlp_main  # noqa: E402
from easynlp_bp.models.int8 import count_int8_linears  # noqa: E402
from easynlp_bp.serve_cli import main as serve_main  # noqa: E402
from easynlp_bp.serving.api import create_app  # noqa: E402
from easynlp_bp.serving.config import ServeConfig  # noqa: E402


def test_easynlp_serve_starts_with_an_int8_model(tiny_model_dir, monkeypatch):
    started = {}

    def fake_run_server(predictor, config, pipeline=None):  # the server as serve_checkpoint would start it
        started.update(predictor=predictor, config=config)
        return {}

    monkeypatch.setattr("easynlp_bp.serving.server.run_server", fake_run_server)
    assert serve_main([f"--checkpoint_dir={tiny_model_dir}", "--user_defined_parameters=quantize=int8 port=0"]) == 0
    predictor = started["predictor"]
    assert predictor.params.quantize == "int8" and str(predictor.device) == "cpu"
    assert count_int8_linears(predictor.model) == 2 * 4 + 1
    with TestClient(create_app(predictor, started["config"])) as client:
        assert client.get("/health").json()["quantize"] == "int8"
        response = client.post("/v1/beautify", json={"prompts": ["1 girl"], "max_new_tokens": 4, "seed": 1})
        assert response.status_code == 200, response.text
        assert len(response.json()["results"][0]["prompts"]) == 5


def test_easynlp_serve_refuses_an_unknown_quantize_value(tiny_model_dir, capsys):
    assert serve_main([f"--checkpoint_dir={tiny_model_dir}", "--user_defined_parameters=quantize=fp8"]) != 0
    assert "quantize='fp8' is not one of none, int8" in capsys.readouterr().err


def test_health_of_an_fp32_server_says_quantize_none(tiny_model_dir):
    from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

    predictor = BeautifulPromptPredictor(str(tiny_model_dir), PredictorParams(device="cpu"))
    with TestClient(create_app(predictor, ServeConfig(port=0))) as client:
        assert client.get("/health").json()["quantize"] == "none"


def test_easynlp_predict_with_quantize_int8(tiny_model_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    code = easynlp_main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={tiny_model_dir}",
                         "--prompt", "1 girl", f"--outputs={out}",
                         "--user_defined_parameters=quantize=int8 max_new_tokens=4 guard=false seed=1"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert code == 0 and len(rows) == 1 and len(rows[0]["beams"]) == 5


def test_easynlp_train_refuses_quantize_int8(tmp_path, capsys):
    code = easynlp_main(["--app_name=beautiful_prompt", "--mode=train", f"--checkpoint_dir={tmp_path / 'm'}",
                         "--user_defined_parameters=quantize=int8 default_data_size=10"])
    assert code != 0
    assert "quantize=int8 is for predict/evaluate/serve; drop it for --mode=train" in capsys.readouterr().err
