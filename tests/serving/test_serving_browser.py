"""The web demo in headless Chromium (Playwright): type a prompt, click, see five prompts and two images."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="pip install -e .[serving]")
pytest.importorskip("diffusers", reason="pip install -e .[diffusion]")

from browser_support import chromium_page  # noqa: E402

from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams  # noqa: E402
from fixtures.tiny_diffusion import save_tiny_stable_diffusion  # noqa: E402
from easynlp_bp.serving.config import ServeConfig  # noqa: E402
from easynlp_bp.serving.diffusers_integration import load_pipeline  # noqa: E402
from easynlp_bp.serving.server import BackgroundServer  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    predictor = BeautifulPromptPredictor(str(tiny_model_dir), PredictorParams(max_new_tokens=24, device="cpu"))
    pipeline = load_pipeline(str(save_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny_sd"))), device="cpu")
    config = ServeConfig(port=0, image_steps=2, image_size=32, max_input_chars=100)
    with BackgroundServer(predictor, config, pipeline=pipeline) as running:
        yield running


def test_demo_shows_five_prompts_and_images_side_by_side(server, tmp_path):
    with chromium_page() as page:
        page.set_default_timeout(120_000)
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-ready='1']")
        page.fill("#raw", "a cat on a sofa")
        page.fill("#seed", "7")
        page.click("#beautify")
        page.wait_for_function("document.querySelectorAll('#prompts li.prompt').length === 5")
        prompts = page.locator("#prompts li.prompt span").all_inner_texts()
        assert len(prompts) == 5 and all(text.strip() for text in prompts)
        assert page.inner_text("#error") == ""

        page.locator("#prompts li.prompt button.render").nth(2).click()
        page.wait_for_function("['raw-image', 'beautified-image'].every(c => {"
                               " const img = document.querySelector('img.' + c);"
                               " return img && img.complete && img.naturalWidth === 32; })")
        captions = page.locator("#images figcaption").all_inner_texts()
        assert captions[0] == "raw: a cat on a sofa" and captions[1].startswith("beautified: ")
        raw_box, beautified_box = (page.locator(f"img.{c}").bounding_box() for c in ("raw-image", "beautified-image"))
        assert abs(raw_box["y"] - beautified_box["y"]) < 1 and beautified_box["x"] > raw_box["x"]  # side by side

        screenshot = tmp_path / "demo.png"
        page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 5_000
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(screenshot, ARTIFACTS / "serving_demo.png")

        # A bad request shows the server's message on the page, and the demo keeps working.
        page.fill("#raw", "x" * 101)
        page.click("#beautify")
        page.wait_for_function("document.getElementById('error').textContent.length > 0")
        assert page.inner_text("#error").startswith("413: prompt 0 has 101 characters")
        page.fill("#raw", "1 girl")
        page.click("#beautify")
        page.wait_for_function("document.querySelectorAll('#prompts li.prompt').length === 5")


RECORD_PROGRESS = """
window.__progressWasHidden = [];
new MutationObserver((changes) => changes.forEach((c) => window.__progressWasHidden.push(c.oldValue !== null)))
  .observe(document.getElementById('progress'), {attributes: true, attributeFilter: ['hidden'], attributeOldValue: true});
"""


def test_demo_examples_progress_copy_clip_counts_and_language_note(server, tmp_path):
    instant_clip = pytest.importorskip("instant_clip_tokenizer", reason="pip install -e .[consistency]").Tokenizer()
    health = httpx_get_json(server.url + "/health")
    with chromium_page() as page:
        page.set_default_timeout(120_000)
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-ready='1']")
        assert page.is_hidden("#lang_note") and page.is_hidden("#progress")
        assert page.is_hidden("#keep_input_label") == ("keep_input" not in health["options"])
        page.fill("#raw", "一个女孩在花园里")
        assert page.is_visible("#lang_note")  # the model only knows English
        page.fill("#raw", "a girl with a red dress in the garden")
        assert page.is_hidden("#lang_note")
        page.locator("button.example").nth(1).click()
        assert page.input_value("#raw") == "a cat on a sofa" and page.is_hidden("#lang_note")
        page.click("#random_seed")
        assert page.input_value("#seed").isdigit()
        page.fill("#seed", "3")
        page.fill("#num", "3")
        page.evaluate(RECORD_PROGRESS)
        page.click("#beautify")
        page.wait_for_function("document.querySelectorAll('#prompts .clip-count').length === 3 &&"
                               " [...document.querySelectorAll('#prompts .clip-count')].every(b => b.textContent)")
        page.wait_for_function("document.getElementById('progress').hidden")
        assert page.evaluate("window.__progressWasHidden") == [True, False]  # shown while waiting, then hidden
        texts = page.locator("#prompts li.prompt span").all_text_contents()  # exact text, tabs kept
        counts = [int(text.split()[0]) for text in page.locator("#prompts .clip-count").all_inner_texts()]
        assert counts == [len(instant_clip.encode(text)) + 2 for text in texts]  # BOS and EOS included
        page.locator("#prompts button.copy").nth(1).click()
        page.wait_for_function("document.querySelectorAll('#prompts button.copy')[1].textContent === 'copied'")
        assert page.evaluate("navigator.clipboard.readText()") == texts[1]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "serving_demo_controls.png"), full_page=True)
        page.fill("#raw", "una chica con un vestido rojo en el jardín")
        page.screenshot(path=str(ARTIFACTS / "serving_demo_language_note.png"), full_page=True)
        assert page.is_visible("#lang_note")
    assert (ARTIFACTS / "serving_demo_controls.png").stat().st_size > 5_000


def httpx_get_json(url: str) -> dict:
    import httpx

    return httpx.get(url, trust_env=False).json()
