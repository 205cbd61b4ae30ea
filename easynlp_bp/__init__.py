"""easynlp_bp: BeautifulPrompt (EMNLP 2023) as an EasyNLP-style app on the Hugging Face stack.

EasyNLP's lookups are exposed here: ``get_application_predictor``, ``get_application_model``,
``get_application_dataset`` and ``get_application_evaluator`` (see :mod:`easynlp_bp.appzoo.lookups`).
"""
from __future__ import annotations

__version__ = "0.1.0"

_LOOKUPS = ("get_application_dataset", "get_application_evaluator", "get_application_model",
            "get_application_predictor")


def __getattr__(name: str):
    # Imported on first use: `import easynlp_bp` stays light (no torch or transformers).
    if name in _LOOKUPS:
        from easynlp_bp.appzoo import lookups

        return getattr(lookups, name)
    raise AttributeError(f"module 'easynlp_bp' has no attribute {name!r}")


__all__ = [*_LOOKUPS, "__version__"]
