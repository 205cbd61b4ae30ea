"""Map an app name to its predictor class (the apps that have one)."""
from __future__ import annotations

from easynlp_bp.arguments import parse_user_defined_parameters
from easynlp_bp.registry import Registry

PREDICTORS: Registry = Registry("predictor")


def _register_builtin() -> None:
    from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

    if "beautiful_prompt" not in PREDICTORS:
        PREDICTORS.register("beautiful_prompt")((BeautifulPromptPredictor, PredictorParams))


def build_predictor(app_name: str, model_dir: str, user_defined_parameters=None):
    """Instantiate the predictor registered for ``app_name`` with parsed ``user_defined_parameters``."""
    _register_builtin()
    predictor_cls, params_cls = PREDICTORS.get(app_name)
    return predictor_cls(model_dir, parse_user_defined_parameters(user_defined_parameters, params_cls))
