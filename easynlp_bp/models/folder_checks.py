"""Checks on a local model directory before transformers reads it, so that a broken copy gives one clear
error (which file, what is wrong, what to do) instead of a traceback from deep inside a loader.

Safetensors headers are checked with the ``safetensors`` library itself (it refuses truncated files and
oversized headers); only the questions "is this a model directory at all" are answered here.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model")
# JSON files a loader reads from a model folder: each is parsed here, so a torn one is named (json's own message
# "Unterminated string starting at: line 4412 column 9" says neither which file nor what to do).
_JSON_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
               "vocab.json", "generation_config.json", "reward_config.json", "preprocessor_config.json",
               "model.safetensors.index.json")
# Present while a training run moves a finished model into its folder (see finish_model_dir).
INCOMPLETE_MODEL_MARKER = ".model_incomplete"


def check_model_dir(path: str | Path, flag: str = "--checkpoint_dir", *, needs_tokenizer: bool = True) -> None:
    """Raise ``ValueError`` if the local directory ``path`` cannot be a loadable HF model directory.

    Checks, in the order a user would fix them: the save that wrote it finished, it holds ``config.json``, every
    JSON file a loader reads parses (a torn ``tokenizer.json`` is named), some tokenizer file exists, and every
    ``*.safetensors`` file opens (complete header and data). A name that is not a directory must be a hub model
    (:func:`check_hub_model`). ``needs_tokenizer=False``: the tokenizer comes from another folder.
    """
    directory = Path(path)
    if not directory.is_dir():
        check_hub_model(str(path), flag)
        return
    if (directory / INCOMPLETE_MODEL_MARKER).exists():
        raise ValueError(f"{flag}={path}: the run that saved this model stopped while it was moving the files into "
                         "place, so they may come from two saves. Train again (or resume with "
                         "--resume_from_checkpoint=last) to finish it.")
    config = directory / "config.json"
    found = sorted(p.name for p in directory.iterdir())
    if not config.is_file():
        shown = ", ".join(found[:10]) or "nothing"
        raise ValueError(f"{flag}={path} is not a model directory: it has no config.json (it holds {shown}). "
                         "Pass the directory a training run wrote, or train one first.")
    for name in _JSON_FILES:
        if (directory / name).is_file():
            _check_json(directory / name)
    if needs_tokenizer and not any((directory / name).is_file() for name in _TOKENIZER_FILES):
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


def is_text_generator(path: str | Path) -> bool:
    """True when the model folder ``path`` holds a causal LM (its ``config.json`` names a ``…ForCausalLM``)."""
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        return False
    names = json.loads(config_file.read_text(encoding="utf-8")).get("architectures") or []
    return any(name.endswith("ForCausalLM") for name in names)


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
        raise ValueError(f"{path}: not valid JSON ({err}); the file is torn or corrupt: copy or save the model "
                         "again.") from err


STAGING_DIR_NAME = ".model_staging"
# Weight files of an earlier save that a new save replaces by other names (sharded vs. one file) are removed.
_WEIGHT_PATTERNS = ("model*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin",
                    "pytorch_model.bin.index.json")


@contextlib.contextmanager
def staged_model_dir(directory: str | Path, *, is_main_process: bool = True) -> Iterator[Path]:
    """A fresh folder (``<directory>/.model_staging``) to save a finished model into; on a clean exit its files
    replace those in ``directory``, so a kill never leaves a torn ``tokenizer.json`` or ``config.json`` there.

    Each file arrives by ``os.replace`` (atomic). Moving several files cannot be one step, so
    :data:`INCOMPLETE_MODEL_MARKER` exists in ``directory`` from before the first move until after the last, and
    :func:`check_model_dir` refuses a folder holding it. A kill leaves the previous model, the new one, or the
    marker — never a mix that loads. On an error the staging folder is removed and ``directory`` is untouched.
    Only the main process prepares and moves (the others may write into the folder, as DeepSpeed's save does).

    Example:
        >>> with staged_model_dir("out/sft") as staging:
        ...     model.save_pretrained(staging); tokenizer.save_pretrained(staging)
    """
    final = Path(directory)
    staging = final / STAGING_DIR_NAME
    if is_main_process:
        shutil.rmtree(staging, ignore_errors=True)  # a killed earlier save's leftovers
        staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        if is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    if is_main_process:
        _move_into_place(staging, final)


def _move_into_place(staging: Path, final: Path) -> None:
    from easynlp_bp.io.writers import write_json

    marker = final / INCOMPLETE_MODEL_MARKER
    write_json(str(marker), {"staging": str(staging), "note": "files were being moved into this folder"})
    new_names = {p.name for p in staging.iterdir()}
    for pattern in _WEIGHT_PATTERNS:
        for stale in final.glob(pattern):
            if stale.name not in new_names:
                stale.unlink()
    for entry in sorted(staging.iterdir()):
        target = final / entry.name
        if entry.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(entry, target)
    staging.rmdir()
    marker.unlink()


def check_base_model(location: str, checkpoint_dir: str, flag: str = "pretrain_model_name_or_path") -> None:
    """Check the base model a training run starts from (:func:`check_model_dir`, named as ``flag``), and refuse
    a ``--checkpoint_dir`` that is its folder (the final save would replace the base model's weights)."""
    check_model_dir(location, flag=flag)
    if Path(location).is_dir() and Path(location).resolve() == Path(checkpoint_dir).resolve():
        raise ValueError(f"--checkpoint_dir={checkpoint_dir} is the folder of {flag}={location}: training would "
                         "overwrite the base model's weights; write the trained model to another folder.")
