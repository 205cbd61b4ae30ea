"""easynlp_bp: BeautifulPrompt (EMNLP 2023) as an EasyNLP-style app on the Hugging Face stack."""
from __future__ import annotations

__version__ = "0.1.0"


def get_application_predictor(app_name: str, model_dir: str, user_defined_parameters: str | dict | None = None):
    """Build the predictor of ``app_name`` for the model in ``model_dir`` (EasyNLP's API).

    Example:
        >>> predictor = get_application_predictor("beautiful_prompt", "outputs/beautiful_prompt",
        ...                                       "num_return_sequences=5 seed=42")
        >>> predictor.predict(["1 girl"])
    """
    from easynlp_bp.predictors import build_predictor

    return build_predictor(app_name, model_dir, user_defined_parameters)


__all__ = ["get_application_predictor", "__version__"]
