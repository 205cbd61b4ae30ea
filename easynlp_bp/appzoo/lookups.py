"""EasyNLP's lookups: ``get_application_dataset/model/predictor/evaluator(app_name, ...)``.

Each builds the app from EasyNLP's keyword arguments (``first_sequence``, ``sequence_length``, a parsed
``user_defined_parameters`` dict, ...) and asks it for the piece, so a ``<kind>_class`` key swaps in a
user's subclass here exactly as on the command line.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Optional

from easynlp_bp.appzoo.base import APPS, App
from easynlp_bp.arguments import EasyNLPArgs

logger = logging.getLogger(__name__)

_ARG_NAMES = {f.name for f in dataclasses.fields(EasyNLPArgs)}
# EasyNLP's keyword names for the same flags
_ALIASES = {"model_dir": "checkpoint_dir", "max_seq_length": "sequence_length", "data_file": "tables"}


def _app(app_name: str, mode: str, user_defined_parameters: Any = None, **kwargs: Any) -> App:
    """The app ``app_name`` configured from EasyNLP-style keyword arguments (unknown ones are logged and ignored)."""
    values: dict[str, Any] = {"app_name": app_name, "mode": mode, "user_defined_parameters": user_defined_parameters}
    for key, value in kwargs.items():
        name = _ALIASES.get(key, key)
        if name in _ARG_NAMES:
            values[name] = value
        else:
            logger.warning("get_application_*: keyword %s=%r has no meaning here; ignored.", key, value)
    if user_defined_parameters == "None":  # EasyNLP passes the string 'None' when no parameters were given
        values["user_defined_parameters"] = None
    return APPS.get(app_name)(EasyNLPArgs(**values))


def _needs(app: App, method: str, what: str):
    if not hasattr(app, method):
        raise ValueError(f"App {app.args.app_name!r} has no {what}; apps with one: "
                         f"{', '.join(n for n in APPS.names() if hasattr(APPS.get(n), method))}.")
    return getattr(app, method)


def get_application_predictor(app_name: str, model_dir: str, user_defined_parameters: Any = None, **kwargs: Any):
    """The app's predictor for ``model_dir`` (EasyNLP's call shape: also ``first_sequence``, ``sequence_length``, ...).

    Example:
        >>> predictor = get_application_predictor("beautiful_prompt", "outputs/beautiful_prompt",
        ...                                       "num_return_sequences=5 seed=42")
        >>> predictor.predict(["1 girl"])
    """
    app = _app(app_name, "predict", user_defined_parameters, checkpoint_dir=model_dir, **kwargs)
    return _needs(app, "build_predictor", "predictor")()


def get_application_model(app_name: str, pretrained_model_name_or_path: Optional[str] = None,
                          user_defined_parameters: Any = None, **kwargs: Any):
    """The app's model class loaded from ``pretrained_model_name_or_path`` (a checkpoint dir, modelzoo name or hub id)."""
    udp = _with_model(user_defined_parameters, pretrained_model_name_or_path)
    return _needs(_app(app_name, "train", udp, **kwargs), "build_model", "model")()


def get_application_dataset(app_name: str, pretrained_model_name_or_path: Optional[str] = None,
                            data_file: Optional[str] = None, max_seq_length: int = 384,
                            user_defined_parameters: Any = None, **kwargs: Any):
    """``data_file`` read into the app's dataset class, tokenised by the model of ``pretrained_model_name_or_path``."""
    if not data_file:
        raise ValueError("get_application_dataset needs data_file=<table path>.")
    kwargs.pop("is_training", None)
    udp = _with_model(user_defined_parameters, pretrained_model_name_or_path)
    app = _app(app_name, "train", udp, **kwargs)
    return _needs(app, "dataset_from_file", "dataset")(data_file, max_seq_length)


def get_application_evaluator(app_name: str, valid_dataset, user_defined_parameters: Any = None, **kwargs: Any):
    """The app's evaluator over ``valid_dataset`` (a dataset from :func:`get_application_dataset`)."""
    return _needs(_app(app_name, "evaluate", user_defined_parameters, **kwargs), "build_evaluator", "evaluator")(
        valid_dataset)


def _with_model(user_defined_parameters: Any, name: Optional[str]) -> Any:
    """``user_defined_parameters`` with ``pretrain_model_name_or_path`` set to ``name`` (when given)."""
    if name is None:
        return user_defined_parameters
    if isinstance(user_defined_parameters, dict):
        return {**user_defined_parameters, "pretrain_model_name_or_path": name}
    text = user_defined_parameters if user_defined_parameters not in (None, "None") else ""
    return f"{text} pretrain_model_name_or_path={name}".strip()
