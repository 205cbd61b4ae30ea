"""The BeautifulPrompt instruction template, defined once for SFT, prediction and PPO.

The reference code writes this template three times with a trailing-space mismatch; here the prompt ends
at ``Output:`` and the target follows after exactly one space, then EOS.
"""
from __future__ import annotations

INSTRUCTION_TEMPLATE = (
    "Instruction: Give a simple description of the image to generate a drawing prompt.\n"
    "Input: {raw_prompt}\n"
    "Output:"
)
TARGET_SEPARATOR = " "


def build_prompt(raw_prompt: str) -> str:
    """The text the model sees before it writes the beautified prompt."""
    return INSTRUCTION_TEMPLATE.format(raw_prompt=raw_prompt.strip())


def build_target(prompt: str, eos_token: str) -> str:
    """The text the model learns to write after :func:`build_prompt`: one space, the prompt, EOS."""
    return f"{TARGET_SEPARATOR}{prompt.strip()}{eos_token}"
