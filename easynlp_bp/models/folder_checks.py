"""Checks on a local model directory before transformers reads it, so that a broken copy gives one clear
error (which file, what is wrong, what to do) instead of a traceback from deep inside a loader.

Safetensors headers are checked with the ``safetensors`` library itself (it refuses truncated files and
oversized headers); only the questions "is this a model directory at all" are answered here.
"""
from __future__ import annotations

import json
from pathlib import Path

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model")


def check_model_dir(path: str | Path, flag: str = "--checkpoint_dir") -> None:
    """Raise ``ValueError`` if the local directory ``path`` cannot be a loadable HF model directory.

    Checks: it holds ``config.json`` (valid JSON), some tokenizer file, and every ``*.safetensors`` file
    opens (complete header and data). A name that is not a directory must be a hub model
    (:func:`check_hub_model`).
    """
    directory = Path(path)
    if not directory.is_dir():
        check_hub_model(str(path), flag)
        return
    config = directory / "config.json"
    found = sorted(p.name for p in directory.iterdir())
    if not config.is_file():
        shown = ", ".join(found[:10]) or "nothing"
        raise ValueError(f"{flag}={path} is not a model directory: it has no config.json (it holds {shown}). "
                         "Pass the directory a training run wrote, or train one first.")
    _check_json(config)
    if not any((directory / name).is_file() for name in _TOKENIZER_FILES):
        raise ValueError(f"{flag}={path} has no tokenizer files ({', '.join(_TOKENIZER_FILES[:2])}); save the "
                         "tokenizer next to the model (tokenizer.save_pretrained(dir)).")
    for weights in sorted(directory.glob("*.safetensors")):
        check_safetensors(weights)


def check_hub_model(name: str, flag: str = "--checkpoint_dir") -> None:
    """Raise ``ValueError`` unless ``name`` (not a local directory) is in the hub cache or on the hub.

    One request without retries, so that a mistyped or missing folder ("outputs/model" run from another folder)
    gets one line at once, not a minute of download retries ending in a hub error.
    """
    from huggingface_hub import constants, model_info, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError

    try:
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return
    except HFValidationError:
        pass  # not a valid hub id: answered below
    if constants.HF_HUB_OFFLINE:
        why = "it is not in the hub cache, and there is no hub access (HF_HUB_OFFLINE=1)"
    else:
        try:
            model_info(name, timeout=10)
            return
        except RepositoryNotFoundError:
            why = "no hub model has that id"
        except HFValidationError:
            why = "it is not a hub id either"
        except Exception as err:  # noqa: BLE001 - any network failure means the same to the user
            why = f"the hub could not be reached to look it up as a hub id (no hub access: {type(err).__name__})"
    raise ValueError(f"{flag}={name}: no such directory ({Path(name).expanduser().absolute()}), and {why}. "
                     "Pass the folder a training run wrote (a relative path starts from the current folder).")


def check_causal_lm(path: str | Path, flag: str = "--checkpoint_dir") -> None:
    """Raise ``ValueError`` if the model directory ``path`` holds another kind of model (e.g. a reward model)."""
    config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    names = config.get("architectures") or []
    if names and not any(name.endswith(("ForCausalLM", "LMHeadModel")) for name in names):  # GPT2LMHeadModel too
        raise ValueError(f"{flag}={path} holds a {names[0]}, not a text generator (…ForCausalLM): is it a reward "
                         "model? Pass the beautiful_prompt (SFT) or beautiful_prompt_ppo model folder.")


def check_safetensors(path: Path) -> None:
    """Raise ``ValueError`` naming ``path`` if safetensors cannot open it (truncated, huge header, not one)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt"):
            pass
    except Exception as err:  # safetensors raises its own SafetensorError (and OSError for unreadable files)
        raise ValueError(f"{path}: not a readable safetensors file ({err}). It is truncated or corrupt: "
                         "copy or save the model again.") from err


def _check_json(path: Path) -> None:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); copy or save the model again.") from err
