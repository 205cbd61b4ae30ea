"""Hostile option values for every entry point: NaN/inf/``1_000``/non-ASCII digits never reach a run.

``nan`` fails every ``<``/``>=`` check, so without one finite-number check an option like ``cliprange=nan``
passed validation and turned training or a filter into silent garbage. Each case must exit 2 with a message
naming the option, before any model is loaded (the tmp model dir does not even exist).
"""
import math

import pytest

from easynlp_bp.arguments import parse_user_defined_parameters
from easynlp_bp.cli import main
from easynlp_bp.finite_numbers import parse_float, parse_int
from easynlp_bp.prompting.predictor import PredictorParams


@pytest.mark.parametrize("flag", ["learning_rate", "weight_decay", "max_grad_norm", "epoch_num", "warmup_proportion"])
@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e999"])
def test_float_flags_must_be_finite(capsys, tmp_path, flag, value):
    code = main(["--app_name=beautiful_prompt", "--mode=train", f"--checkpoint_dir={tmp_path}", f"--{flag}={value}"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"--{flag}=" in err and "finite" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # failed before any work


@pytest.mark.parametrize("app,mode,key", [
    ("beautiful_prompt", "predict", "temperature"),
    ("beautiful_prompt", "predict", "top_p"),
    ("beautiful_prompt", "predict", "repetition_penalty"),
    ("beautiful_prompt", "serve", "request_timeout_s"),
    ("beautiful_prompt", "serve", "max_wait_ms"),
    ("beautiful_prompt", "train", "min_pick_score"),
    ("beautiful_prompt_ppo", "train", "init_kl_coef"),
    ("beautiful_prompt_ppo", "train", "cliprange"),
    ("beautiful_prompt_ppo", "train", "vf_coef"),
    ("beautiful_prompt_ppo", "train", "alpha"),
    ("beautiful_prompt_data", "predict", "min_consistency"),
    ("beautiful_prompt_data", "predict", "min_pick_score"),
    ("beautiful_prompt_data", "predict", "near_duplicate_threshold"),
])
@pytest.mark.parametrize("value", ["nan", "inf", "Infinity"])
def test_user_defined_float_parameters_must_be_finite(capsys, tmp_path, app, mode, key, value):
    code = main([f"--app_name={app}", f"--mode={mode}", f"--checkpoint_dir={tmp_path / 'none'}",
                 f"--user_defined_parameters={key}={value}"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{key}={value!r}" in err and "finite" in err and "Traceback" not in err


@pytest.mark.parametrize("text", ["1_000", "\u0661\u0662", "\uff11\uff12", "0x10", "1,5", "", "--1"])
def test_numbers_are_plain_ascii_decimals(text):
    with pytest.raises(ValueError, match="is not a (number|whole number)"):
        parse_float(text)
    with pytest.raises(ValueError, match="is not a whole number"):
        parse_int(text)
    with pytest.raises(ValueError, match="is not a valid int"):
        parse_user_defined_parameters(f"batch_size={text!r}", PredictorParams)


def test_plain_decimals_still_parse():
    assert [parse_float(t) for t in ("18.5", "-2", "1e-5", ".5", "3.", "+1E3")] == [18.5, -2.0, 1e-5, 0.5, 3.0, 1000.0]
    assert parse_int(" 16 ") == 16


def test_python_api_floats_and_predictor_overrides_must_be_finite():
    with pytest.raises(ValueError, match="temperature=nan.*finite"):
        parse_user_defined_parameters({"temperature": math.nan}, PredictorParams)
    with pytest.raises(ValueError, match="top_p=inf.*finite"):
        PredictorParams(top_p=math.inf)  # the server's per-request overrides go through this


def test_an_unclosed_quote_names_the_flag(capsys):
    from easynlp_bp.cli import main

    assert main(["--app_name=beautiful_prompt", "--mode=predict", "--checkpoint_dir=x",
                 "--user_defined_parameters=num_return_sequences='3"]) == 2
    err = capsys.readouterr().err
    assert "--user_defined_parameters=\"num_return_sequences='3\": No closing quotation; close the quote" in err
