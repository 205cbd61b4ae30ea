"""Loading a trained reward model from its folder, with errors that say what the folder holds instead."""
from __future__ import annotations

from pathlib import Path
from typing import Optional


def load_trained_reward_model(model_cls, checkpoint_dir: str, reward_type: Optional[str], device: str,
                              trust_remote_code: bool = False):
    """The RM that ``--app_name=beautiful_prompt_reward --mode=train`` wrote to ``checkpoint_dir``, on ``device``.

    Raises:
        ValueError: the folder holds a text generator, or an RM of another ``reward_type`` than the one given.
        FileNotFoundError: the folder holds no trained RM.
    """
    from easynlp_bp.devices import resolve_device
    from easynlp_bp.models.folder_checks import is_text_generator
    from easynlp_bp.models.reward_model import REWARD_CONFIG_FILE

    if not (Path(checkpoint_dir) / REWARD_CONFIG_FILE).is_file():
        if is_text_generator(checkpoint_dir):
            raise ValueError(
                f"--checkpoint_dir={checkpoint_dir} holds a text generator (…ForCausalLM), not a reward "
                "model: beautify with it through --app_name=beautiful_prompt, or pass a folder that "
                "--app_name=beautiful_prompt_reward --mode=train wrote.")
        raise FileNotFoundError(
            f"No trained reward model at {checkpoint_dir} (no {REWARD_CONFIG_FILE}). Train one first "
            "(easynlp --app_name=beautiful_prompt_reward --mode=train) or pass --checkpoint_dir."
        )
    rm = model_cls.from_pretrained(checkpoint_dir, trust_remote_code=trust_remote_code)
    if reward_type not in (None, rm.config.reward_type):
        raise ValueError(
            f"--checkpoint_dir={checkpoint_dir} holds a {rm.config.reward_type} reward model, but "
            f"reward_type={reward_type} was given; drop reward_type or pass the other model."
        )
    return rm.to(resolve_device(device))
