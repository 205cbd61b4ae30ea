"""The ComfyUI node (integrations/comfyui/beautiful_prompt), loaded from a copy in a custom_nodes folder as ComfyUI
loads it: its node contract, in-process against a real Predictor, and against a running server."""
from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

NODE_FOLDER = Path(__file__).resolve().parents[2] / "integrations" / "comfyui" / "beautiful_prompt"


@pytest.fixture(scope="module")
def node_module(tmp_path_factory):
    """The folder copied into ``custom_nodes/`` and imported as a package, the way ComfyUI imports a node."""
    custom_nodes = tmp_path_factory.mktemp("ComfyUI") / "custom_nodes"
    installed = custom_nodes / "beautiful_prompt"
    shutil.copytree(NODE_FOLDER, installed, ignore=shutil.ignore_patterns("__pycache__"))
    spec = importlib.util.spec_from_file_location("beautiful_prompt", installed / "__init__.py",
                                                  submodule_search_locations=[str(installed)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["beautiful_prompt"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("beautiful_prompt", None)


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    """What the node loads from a folder (the folder's defaults)."""
    return BeautifulPromptPredictor(str(tiny_model_dir), PredictorParams(device="cpu"))


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    """What the test server serves (short outputs: the random tiny model would write up to max_length)."""
    return BeautifulPromptPredictor(str(tiny_model_dir), PredictorParams(device="cpu", max_new_tokens=16))


def test_follows_comfyui_node_contract(node_module):
    node_cls = node_module.NODE_CLASS_MAPPINGS["BeautifulPrompt"]
    assert set(node_module.NODE_DISPLAY_NAME_MAPPINGS) == set(node_module.NODE_CLASS_MAPPINGS)
    inputs = node_cls.INPUT_TYPES()
    assert {name: spec[0] for name, spec in inputs["required"].items()} == {
        "text": "STRING", "model": "STRING", "seed": "INT", "n": "INT", "keep_input": "BOOLEAN"}
    assert node_cls.RETURN_TYPES == ("STRING", "STRING") and len(node_cls.RETURN_NAMES) == 2
    assert len(node_cls.OUTPUT_IS_LIST) == len(node_cls.RETURN_TYPES)
    assert callable(getattr(node_cls(), node_cls.FUNCTION)) and node_cls.CATEGORY
    assert inputs["required"]["n"][1]["max"] == 16  # the Predictor's and server's limit


def test_local_folder_runs_the_predictor_in_process(node_module, predictor, tiny_model_dir):
    node = node_module.BeautifulPrompt()
    first, prompts = node.beautify(text="a cat", model=str(tiny_model_dir), seed=3, n=2, keep_input=True)
    assert prompts == predictor.predict(["a cat"], {"seed": 3, "num_return_sequences": 2, "keep_input": True})[0]
    assert first == prompts[0] and len(prompts) == 2 and all(p.startswith("a cat") for p in prompts)
    again = node.beautify(text="a cat", model=str(tiny_model_dir), seed=3, n=2, keep_input=True)
    assert again == (first, prompts)  # same seed, same prompts (the folder is loaded once)
    assert len(node_module._PREDICTORS) == 1


def test_server_url_calls_the_http_api(node_module, served):
    pytest.importorskip("fastapi", reason="pip install -e .[serving]")
    from easynlp_bp.serving.config import ServeConfig
    from easynlp_bp.serving.server import BackgroundServer

    node = node_module.BeautifulPrompt()
    with BackgroundServer(served, ServeConfig(port=0, api_key="sk-node")) as server:
        first, prompts = node.beautify(text="1 girl", model=server.url + "/", seed=5, n=3, keep_input=False,
                                       api_key="sk-node")
        with pytest.raises(RuntimeError, match=r"answered 401: missing or wrong API key"):
            node.beautify(text="1 girl", model=server.url, seed=5, n=1, keep_input=False, api_key="wrong")
    assert prompts == served.predict(["1 girl"], {"seed": 5, "num_return_sequences": 3})[0] and len(prompts) == 3
    assert first == prompts[0]
    with pytest.raises(RuntimeError, match=r"server .* cannot be reached"):
        node.beautify(text="1 girl", model=server.url, seed=5, n=1, keep_input=False)


def test_bad_inputs_are_one_clear_error(node_module, tmp_path):
    node = node_module.BeautifulPrompt()
    with pytest.raises(ValueError, match=r"no such folder: .*nowhere.*URL of a running server"):
        node.beautify(text="a cat", model=str(tmp_path / "nowhere"), seed=0, n=1, keep_input=False)
    with pytest.raises(ValueError, match=r"the text is empty"):
        node.beautify(text="  ", model=str(tmp_path), seed=0, n=1, keep_input=False)
