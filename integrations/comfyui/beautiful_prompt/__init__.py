"""ComfyUI custom node "BeautifulPrompt": a simple description in, detailed Stable Diffusion prompt(s) out.

Install: copy or link this folder into ``ComfyUI/custom_nodes/`` (``ln -s "$PWD/integrations/comfyui/beautiful_prompt"
ComfyUI/custom_nodes/beautiful_prompt``). The node's ``model`` input is either

* a local model folder (e.g. ``outputs/beautiful_prompt``): the project's Predictor runs inside ComfyUI's process,
  which then needs this project installed (``pip install -e <checkout>`` in ComfyUI's Python), or
* a server URL (``http://127.0.0.1:8000``, started with ``easynlp --app_name=beautiful_prompt --mode=serve``): the
  node calls ``POST /v1/beautify`` with the standard library only, so ComfyUI needs nothing installed.

It follows ComfyUI's node contract (``INPUT_TYPES``, ``RETURN_TYPES``, ``RETURN_NAMES``, ``FUNCTION``, ``CATEGORY``,
``NODE_CLASS_MAPPINGS``, ``NODE_DISPLAY_NAME_MAPPINGS``) and imports nothing from ComfyUI, so it is testable alone.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

API_KEY_ENV = "EASYNLP_API_KEY"  # the server's variable too (easynlp_bp.serving.config)
MAX_N = 16  # the server's and the Predictor's limit (easynlp_bp.prompting.params.MAX_RETURN_SEQUENCES)
REQUEST_TIMEOUT_S = 300

_PREDICTORS: dict[str, Any] = {}  # model folder -> loaded Predictor: ComfyUI runs a node many times per session


def is_server_url(model: str) -> bool:
    """True when ``model`` names a server (``http://`` or ``https://``) rather than a local folder."""
    return model.strip().lower().startswith(("http://", "https://"))


def beautify_locally(model_dir: str, text: str, options: dict) -> list[str]:
    """The prompts of the project's Predictor for ``text``; the model folder is loaded once per process."""
    try:
        from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams
    except ImportError as err:
        raise RuntimeError("BeautifulPrompt: a local model folder needs easynlp_bp in ComfyUI's Python "
                           "(pip install -e <checkout>); or give the URL of a running server instead.") from err
    if model_dir not in _PREDICTORS:
        _PREDICTORS[model_dir] = BeautifulPromptPredictor(model_dir, PredictorParams())
    outputs, reasons = _PREDICTORS[model_dir].predict_with_reasons([text], options)
    if not outputs[0]:
        raise RuntimeError(f"BeautifulPrompt: no prompt for {text!r}: {reasons[0]}")
    return outputs[0]


def beautify_on_server(url: str, text: str, options: dict, api_key: str = "") -> list[str]:
    """The prompts the server at ``url`` answers for ``text`` (``POST /v1/beautify``)."""
    body = json.dumps({"prompts": [text], **options}).encode("utf-8")
    request = urllib.request.Request(url.rstrip("/") + "/v1/beautify", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    key = api_key or os.environ.get(API_KEY_ENV, "")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as err:  # the server's error envelope: {"error": {"message": ...}}
        try:
            message = json.load(err).get("error", {}).get("message", err.reason)
        except ValueError:
            message = err.reason
        raise RuntimeError(f"BeautifulPrompt server {url} answered {err.code}: {message}") from err
    except (urllib.error.URLError, OSError) as err:
        raise RuntimeError(f"BeautifulPrompt server {url} cannot be reached ({getattr(err, 'reason', err)}); "
                           "start it with `easynlp --app_name=beautiful_prompt --mode=serve` or fix the URL.") from err
    result = answer["results"][0]
    if not result["prompts"]:
        raise RuntimeError(f"BeautifulPrompt: no prompt for {text!r}: {result.get('reason')}")
    return result["prompts"]


class BeautifulPrompt:
    """The node: ``text`` -> ``prompt`` (the first beautified prompt) and ``prompts`` (all ``n``, as a list)."""

    CATEGORY = "conditioning/prompt"
    FUNCTION = "beautify"
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("prompt", "prompts")
    OUTPUT_IS_LIST = (False, True)
    DESCRIPTION = "Turns a simple image description into detailed Stable Diffusion prompts (BeautifulPrompt)."

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802 - ComfyUI's name
        return {
            "required": {
                "text": ("STRING", {"multiline": True, "default": "a cat",
                                    "tooltip": "A simple description of the image."}),
                "model": ("STRING", {"default": "http://127.0.0.1:8000",
                                     "tooltip": "A local model folder, or the URL of a BeautifulPrompt server."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**32 - 1, "tooltip": "Same seed, same prompts."}),
                "n": ("INT", {"default": 1, "min": 1, "max": MAX_N, "tooltip": "Prompts to write."}),
                "keep_input": ("BOOLEAN", {"default": False,
                                           "tooltip": "Start every prompt with your text verbatim."}),
            },
            "optional": {
                "api_key": ("STRING", {"default": "", "tooltip": f"Server key (else ${API_KEY_ENV})."}),
            },
        }

    def beautify(self, text: str, model: str, seed: int, n: int, keep_input: bool,
                 api_key: str = "") -> tuple[str, list[str]]:
        if not text.strip():
            raise ValueError("BeautifulPrompt: the text is empty; describe the image, e.g. 'a cat'.")
        options = {"seed": int(seed), "num_return_sequences": int(n), "keep_input": bool(keep_input)}
        if is_server_url(model):
            prompts = beautify_on_server(model.strip(), text, options, api_key)
        else:
            if not os.path.isdir(model):
                raise ValueError(f"BeautifulPrompt: no such folder: {model!r}; give a trained model folder or the "
                                 "URL of a running server (http://127.0.0.1:8000).")
            prompts = beautify_locally(model, text, options)
        return prompts[0], prompts


NODE_CLASS_MAPPINGS = {"BeautifulPrompt": BeautifulPrompt}
NODE_DISPLAY_NAME_MAPPINGS = {"BeautifulPrompt": "BeautifulPrompt (prompt expander)"}
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
