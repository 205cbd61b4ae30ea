"""diffusers integration on a tiny random StableDiffusionPipeline: token window, shared seed, /v1/images."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="pip install -e .[diffusion]")

from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams  # noqa: E402
from fixtures.tiny_diffusion import save_tiny_stable_diffusion  # noqa: E402
from easynlp_bp.serving.diffusers_integration import (  # noqa: E402
    beautify_and_generate, compare_images, encoder_window, fit_to_window, load_pipeline,
)

RENDER = dict(num_inference_steps=2, height=32, width=32)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return load_pipeline(str(save_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny_sd"))), device="cpu")


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return BeautifulPromptPredictor(str(tiny_model_dir), PredictorParams(max_new_tokens=48, seed=0, device="cpu"))


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_long_prompts_are_cut_to_the_77_token_window(pipeline):
    assert encoder_window(pipeline) == 77
    long = ", ".join(f"detail{i}" for i in range(40))  # ~300 characters: ~300 CLIP tokens here
    fitted = fit_to_window(pipeline, long)
    assert len(pipeline.tokenizer(fitted).input_ids) <= 77 < len(pipeline.tokenizer(long).input_ids)
    assert long.startswith(fitted) and fitted.endswith(("detail" + fitted.rsplit("detail", 1)[1]))
    assert fit_to_window(pipeline, "a cat") == "a cat"


def test_compare_images_uses_one_seed_for_raw_and_beautified(pipeline):
    first = compare_images(pipeline, "a cat, highly detailed, golden hour", raw_prompt="a cat", seed=3, **RENDER)
    again = compare_images(pipeline, "a cat, highly detailed, golden hour", raw_prompt="a cat", seed=3, **RENDER)
    assert first.image.size == first.raw_image.size == (32, 32)
    assert np.array_equal(pixels(first.image), pixels(again.image))  # same seed, same image
    assert not np.array_equal(pixels(first.image), pixels(first.raw_image))  # the prompt changes the image
    only = compare_images(pipeline, "a cat, highly detailed", seed=3, **RENDER)
    assert only.raw_image is None


def test_beautify_and_generate_renders_the_chosen_prompt_within_the_window(pipeline, predictor):
    results = beautify_and_generate(pipeline, predictor, ["1 girl", "a castle"], choose=1, seed=1, **RENDER)
    assert [r.raw_prompt for r in results] == ["1 girl", "a castle"]
    for result in results:
        assert len(result.candidates) == 5 and result.prompt == result.candidates[1]
        assert all(len(pipeline.tokenizer(c).input_ids) <= 77 for c in result.candidates)
        assert result.image.size == (32, 32) and result.raw_image.size == (32, 32)
    with pytest.raises(ValueError, match="choose=7 but the predictor returned 5"):
        beautify_and_generate(pipeline, predictor, "1 girl", choose=7, **RENDER)


def test_images_endpoint_returns_both_pngs(pipeline, predictor):
    httpx = pytest.importorskip("httpx", reason="pip install -e .[serving]")
    from PIL import Image

    from easynlp_bp.serving.config import ServeConfig
    from easynlp_bp.serving.server import BackgroundServer

    config = ServeConfig(port=0, image_steps=2, image_size=32)
    with BackgroundServer(predictor, config, pipeline=pipeline) as server:
        assert httpx.get(server.url + "/health", trust_env=False).json()["images"] is True
        long = "a cat, " + ", ".join(f"detail{i}" for i in range(40))
        response = httpx.post(server.url + "/v1/images", json={"prompt": long, "raw_prompt": "a cat", "seed": 2},
                              timeout=120, trust_env=False)
        assert response.status_code == 200, response.text
        data = response.json()
        assert len(pipeline.tokenizer(data["prompt_used"]).input_ids) <= 77 and long.startswith(data["prompt_used"])
        for key in ("image", "raw_image"):
            header, payload = data[key].split(",", 1)
            assert header == "data:image/png;base64"
            assert Image.open(io.BytesIO(base64.b64decode(payload))).size == (32, 32)
        bad = httpx.post(server.url + "/v1/images", json={"prompt": ""}, timeout=60, trust_env=False)
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "prompt"
