"""The AppZoo: importing this package registers every app (explicit imports, so decorators run)."""
from easynlp_bp.appzoo.base import APPS, App
from easynlp_bp.appzoo.beautiful_prompt import app as _beautiful_prompt_app  # noqa: F401
from easynlp_bp.appzoo.beautiful_prompt_data import app as _beautiful_prompt_data_app  # noqa: F401
from easynlp_bp.appzoo.beautiful_prompt_ppo import app as _beautiful_prompt_ppo_app  # noqa: F401
from easynlp_bp.appzoo.beautiful_prompt_reward import app as _beautiful_prompt_reward_app  # noqa: F401
from easynlp_bp.appzoo.beautiful_prompt_score import app as _beautiful_prompt_score_app  # noqa: F401
from easynlp_bp.appzoo.beautiful_prompt_eval import app as _beautiful_prompt_eval_app  # noqa: F401

__all__ = ["APPS", "App"]
