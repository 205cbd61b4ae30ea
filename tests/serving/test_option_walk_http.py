"""Every option declared ``http=True`` is a request field with the declared bounds, reaches the predictor and is
reported back; every option with an OpenAI name maps from that parameter. Derived, not kept by hand."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

pytest.importorskip("fastapi", reason="pip install -e .[serving]")
from fastapi.testclient import TestClient  # noqa: E402

from easynlp_bp.options import options_where, spec_of  # noqa: E402
from easynlp_bp.prompting.params import PredictorParams  # noqa: E402
from easynlp_bp.serving import openai_compat  # noqa: E402
from easynlp_bp.serving.api import create_app  # noqa: E402
from easynlp_bp.serving.config import ServeConfig  # noqa: E402
from easynlp_bp.serving.routes import REPORTED_OPTIONS  # noqa: E402
from easynlp_bp.serving.schemas import BeautifyRequest  # noqa: E402

# a valid request value of each http option (a new http option without one fails the first test)
REQUEST_VALUES = {"num_return_sequences": 2, "decoding": "beam", "temperature": 0.7, "top_k": 5, "top_p": 0.5,
                  "repetition_penalty": 1.5, "penalize_prompt": True, "max_new_tokens": 3, "no_repeat_ngram_size": 2,
                  "seed": 7, "max_clip_tokens": 40, "banned_words": ["red"], "keep_input": True, "guard": False,
                  "guard_word_recall": 0.5, "guard_resamples": 1, "unsupported_language": "reject",
                  "rerank": "consistency"}


class RecordingPredictor:
    """A predictor that records the overrides each call gets (the server's side of the walk)."""

    def __init__(self):
        self.params = PredictorParams()
        self.overrides: list[dict] = []
        self.model = None
        self.tokenizer = lambda text: SimpleNamespace(input_ids=text.split())  # for the OpenAI usage counts

    def resolve_params(self, overrides=None):
        return dataclasses.replace(self.params, **(overrides or {}))

    def clip_cap_for(self, params):
        return None

    def predict(self, prompts, overrides=None):
        self.overrides.append(dict(overrides or {}))
        return [["out"] * (overrides or {}).get("num_return_sequences", 1) for _ in prompts]



@pytest.fixture()
def served():
    predictor = RecordingPredictor()
    with TestClient(create_app(predictor, ServeConfig(port=0))) as client:
        yield client, predictor


def test_http_fields_are_the_declared_options():
    http = [f.name for f in options_where(PredictorParams, http=True)]
    assert http and list(REPORTED_OPTIONS) == http == [n for n in BeautifyRequest.model_fields if n != "prompts"]
    assert set(REQUEST_VALUES) == set(http), "an http option has no REQUEST_VALUES entry"
    schema = BeautifyRequest.model_json_schema()["properties"]
    for f in options_where(PredictorParams, http=True):
        spec, prop = spec_of(f), schema[f.name]
        numeric = next((p for p in prop.get("anyOf", [prop]) if p.get("type") in ("integer", "number")), {})
        for bound, key in (("ge", "minimum"), ("gt", "exclusiveMinimum"), ("le", "maximum"), ("lt", "exclusiveMaximum")):
            assert numeric.get(key) == getattr(spec, bound), f"{f.name}: {key} differs from the declaration"
        assert f.metadata["help"] == prop.get("description")


@pytest.mark.parametrize("name", sorted(REQUEST_VALUES))
def test_each_http_option_reaches_the_predictor_and_is_reported(name, served):
    client, predictor = served
    value = REQUEST_VALUES[name]
    response = client.post("/v1/beautify", json={"prompts": ["a cat"], name: value})
    assert response.status_code == 200, response.text
    assert predictor.overrides[-1][name] == value
    assert response.json()["options"][name] == value


@pytest.mark.parametrize("f", [f for f in options_where(PredictorParams, http=True) if spec_of(f).bounds()],
                         ids=lambda f: f.name)
def test_each_http_option_refuses_what_its_declaration_refuses(f, served):
    client, _ = served
    spec = spec_of(f)
    outside = (spec.le + 1) if spec.le is not None else (spec.ge - 1) if spec.ge is not None else spec.gt
    if f.type in ("int", "Optional[int]"):
        outside = int(outside)
    response = client.post("/v1/beautify", json={"prompts": ["a cat"], f.name: outside})
    assert response.status_code == 422 and f.name in response.text


@pytest.mark.parametrize("f", [f for f in options_where(PredictorParams) if spec_of(f).openai], ids=lambda f: f.name)
def test_each_openai_parameter_maps_to_its_option(f, served):
    client, predictor = served
    openai_name, value = spec_of(f).openai, REQUEST_VALUES[f.name]
    response = client.post("/v1/chat/completions",
                           json={"messages": [{"role": "user", "content": "a cat"}], openai_name: value})
    assert response.status_code == 200, response.text
    assert predictor.overrides[-1][f.name] == value
    assert openai_compat.OPENAI_NAMES[f.name] == openai_name


def test_openai_n_defaults_to_one_and_temperature_zero_is_greedy(served):
    client, predictor = served
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "a cat"}]})
    assert response.status_code == 200 and len(response.json()["choices"]) == 1
    assert predictor.overrides[-1]["num_return_sequences"] == 1
    client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "a"}], "temperature": 0})
    assert predictor.overrides[-1]["decoding"] == "greedy" and "temperature" not in predictor.overrides[-1]
