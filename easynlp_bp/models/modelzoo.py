"""Resolve a model name to where it comes from: a ``modelzoo/`` entry, a local directory or a HF hub id.

``modelzoo/index.json`` maps short names either to a config directory in ``modelzoo/`` (a model built
at random from a config, with a tokenizer trained on the run's texts) or to a hub id. Anything else is
taken as a local directory if it exists, otherwise as a hub id (which needs a hub at run time).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "tiny-bloom-bp"


def modelzoo_dir() -> Path:
    """The ``modelzoo/`` folder: ``$EASYNLP_BP_MODELZOO`` if set, else the one beside the package."""
    env = os.environ.get("EASYNLP_BP_MODELZOO")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "modelzoo"


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from. ``kind`` is ``config`` (random init), ``local`` or ``hub``."""

    name: str
    kind: str
    location: str

    @property
    def is_from_scratch(self) -> bool:
        return self.kind == "config"


def load_index() -> dict:
    index_path = modelzoo_dir() / "index.json"
    if not index_path.exists():
        return {}
    return json.loads(index_path.read_text(encoding="utf-8"))


def resolve_model_source(name: Optional[str]) -> ModelSource:
    """Resolve ``name`` (``None`` means the embedded default).

    Raises:
        FileNotFoundError: a path-like name (starting with ``.``, ``/`` or ``~``) that does not exist.
    """
    name = name or DEFAULT_MODEL
    index = load_index()
    if name in index:
        entry = index[name]
        if "config_dir" in entry:
            return ModelSource(name, "config", str(modelzoo_dir() / entry["config_dir"]))
        return ModelSource(name, "hub", entry["hub_id"])
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "config.json").exists() and not any(path.glob("*.safetensors")) and not any(
            path.glob("*.bin")
        ):
            logger.warning("pretrain_model_name_or_path=%s holds a config.json but no weights (*.safetensors, *.bin): "
                           "the model is built from the config with RANDOM weights and a tokenizer trained on this "
                           "run's texts. If it should be a trained model, its weight files are missing: copy them.",
                           name)
            return ModelSource(name, "config", str(path))
        return ModelSource(name, "local", str(path))
    # "outputs/sft" with an existing "outputs/" is a mistyped local path, not a hub id.
    first_part = Path(name.split("/", 1)[0]).expanduser()
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or ("/" in name and first_part.is_dir()):
        raise FileNotFoundError(
            f"pretrain_model_name_or_path={name!r} is not a directory. Give an existing model directory, "
            f"a modelzoo name ({', '.join(sorted(index))}) or a HF hub id such as bigscience/bloom-1b1."
        )
    return ModelSource(name, "hub", name)


def trained_from_config(model_dir: str) -> bool:
    """True when ``model_dir`` is a ``beautiful_prompt`` SFT run of a model built from a config (the embedded
    default): such a model takes the from-scratch presets when the reward and PPO apps start from it."""
    run_config = Path(model_dir) / "run_config.json"
    if not run_config.is_file():
        return False
    resolved = json.loads(run_config.read_text(encoding="utf-8")).get("resolved", {})
    return resolved.get("model_source", {}).get("kind") == "config"
