"""The error messages quoted on docs/troubleshooting.md are the ones the code raises (triggered here)."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

PAGE = (Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md").read_text(encoding="utf-8")


def _quoted(prefix: str) -> str:
    """The quoted message on the page that starts with ``prefix`` (up to an ellipsis or the line end)."""
    match = re.search(re.escape(prefix) + r"[^\n`]*", PAGE)
    assert match, f"troubleshooting.md no longer quotes {prefix!r}"
    return match.group(0).split("...")[0].split("…")[0].rstrip()


def _pad_is_eos_tokenizer(tiny_tokenizer, keep_unk: bool):
    import copy

    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.pad_token = tokenizer.eos_token
    if not keep_unk:
        tokenizer.unk_token = tokenizer.eos_token
    return tokenizer


def test_pad_equals_eos_without_unk_is_refused(tiny_tokenizer):
    from easynlp_bp.models.causal_lm import check_pad_token

    expected = _quoted("ValueError: The tokenizer of <model>").removeprefix("ValueError: ")
    with pytest.raises(ValueError) as info:
        check_pad_token(_pad_is_eos_tokenizer(tiny_tokenizer, keep_unk=False), "<model>")
    assert str(info.value) == expected


def test_pad_equals_eos_with_unk_pads_with_unk(tiny_tokenizer, caplog):
    from easynlp_bp.models.causal_lm import check_pad_token

    tokenizer = _pad_is_eos_tokenizer(tiny_tokenizer, keep_unk=True)
    with caplog.at_level(logging.WARNING):
        check_pad_token(tokenizer, "<model>")
    assert tokenizer.pad_token_id == tokenizer.unk_token_id != tokenizer.eos_token_id
    assert _quoted("pad token is missing or equals EOS") in caplog.text


def test_reward_model_refuses_pad_equals_eos(tiny_tokenizer, tiny_bloom):
    from easynlp_bp.models.reward_model import RewardModel

    expected = _quoted("ValueError: The reward tokenizer pads").removeprefix("ValueError: ")
    with pytest.raises(ValueError) as info:
        RewardModel(tiny_bloom, _pad_is_eos_tokenizer(tiny_tokenizer, keep_unk=True), None)
    assert str(info.value) == expected


def test_path_like_model_name_that_is_not_a_directory(capsys):
    from easynlp_bp.cli import main

    code = main(["--app_name=beautiful_prompt", "--mode=train", "--checkpoint_dir=unused",
                 "--user_defined_parameters=pretrain_model_name_or_path=./models/bloom-1b1"])
    assert code == 2
    assert _quoted("easynlp: error: pretrain_model_name_or_path=").split("(")[0] in capsys.readouterr().err


def test_misspelt_flag_and_key_messages(capsys):
    from easynlp_bp.cli import main

    assert main(["--app_name=beautiful_prompt", "--mode=predict", "--checkpoint_dri=x"]) == 2
    assert _quoted("easynlp: error: Unknown argument(s)") in capsys.readouterr().err
    assert main(["--app_name=beautiful_prompt", "--mode=predict", "--checkpoint_dir=x",
                 "--user_defined_parameters=num_sequences=3"]) == 2
    assert _quoted("easynlp: error: Unknown --user_defined_parameters key(s)") in capsys.readouterr().err


def test_max_clip_tokens_below_three_is_refused():
    from easynlp_bp.prompting.predictor import PredictorParams

    with pytest.raises(ValueError, match=re.escape(_quoted("max_clip_tokens=2 must be"))):
        PredictorParams(max_clip_tokens=2)


def test_truncation_warning_is_the_one_the_code_logs():
    source = (Path(__file__).resolve().parents[1] / "easynlp_bp" / "pipelines" / "scoring" / "generation.py")
    assert "Prompt of %d CLIP tokens truncated to %d (long_prompt=truncate)" in source.read_text()
    assert "Prompt of N CLIP tokens truncated to 77 (long_prompt=truncate)" in PAGE
