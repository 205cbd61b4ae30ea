"""The AppZoo: one small glue module per ``--app_name``; importing this package registers every app."""
from easynlp_bp.appzoo import (  # noqa: F401  (imported so their @APPS.register decorators run)
    beautiful_prompt,
    beautiful_prompt_data,
    beautiful_prompt_eval,
    beautiful_prompt_ppo,
    beautiful_prompt_reward,
    beautiful_prompt_score,
)
from easynlp_bp.appzoo.base import APPS, App

__all__ = ["APPS", "App"]
