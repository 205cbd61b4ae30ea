"""The two reward-model input formats, defined once for RM training, evaluation, prediction and PPO.

Reference (DESIGN.md section 2): the aesthetic RM reads ``{prompt}{eos}``; the PickScore RM reads
``Input: {raw_prompt}\\nOutput: {prompt}{eos}``. Texts are stripped at both ends, as the SFT template does,
so that a policy response that starts with a space scores the same as the stored prompt.
"""
from __future__ import annotations

REWARD_TYPES = ("aesthetic", "pickscore")
DEFAULT_LABEL_NAME = {"aesthetic": "aesthetic_score", "pickscore": "pick_score"}
PICKSCORE_TEMPLATE = "Input: {raw_prompt}\nOutput: {prompt}{eos}"


def check_reward_type(reward_type: str) -> str:
    """Return ``reward_type`` if it is known, else raise ``ValueError`` listing the known ones."""
    if reward_type not in REWARD_TYPES:
        raise ValueError(
            f"reward_type={reward_type!r} is unknown; use one of {', '.join(REWARD_TYPES)} "
            "(e.g. --user_defined_parameters='reward_type=aesthetic')."
        )
    return reward_type


def format_aesthetic_input(prompt: str, eos_token: str) -> str:
    """The aesthetic RM's input: the prompt followed by EOS."""
    return f"{prompt.strip()}{eos_token}"


def format_pickscore_input(raw_prompt: str, prompt: str, eos_token: str) -> str:
    """The PickScore RM's input: the raw prompt and the beautified prompt, then EOS."""
    return PICKSCORE_TEMPLATE.format(raw_prompt=raw_prompt.strip(), prompt=prompt.strip(), eos=eos_token)


def format_reward_input(reward_type: str, raw_prompt: str, prompt: str, eos_token: str) -> str:
    """The input text of the ``reward_type`` RM for one (raw prompt, prompt) pair.

    ``raw_prompt`` is ignored by the aesthetic RM (its score depends on the prompt alone).
    """
    if check_reward_type(reward_type) == "aesthetic":
        return format_aesthetic_input(prompt, eos_token)
    return format_pickscore_input(raw_prompt, prompt, eos_token)
