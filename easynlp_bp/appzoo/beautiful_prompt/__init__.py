"""The ``beautiful_prompt`` app: SFT, evaluation and prediction of a prompt beautifier."""
