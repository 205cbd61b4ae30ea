"""The easynlp CLI: help for every app, clear errors for misspelt apps, flags and parameters."""
import pytest

from easynlp_bp.appzoo import APPS
from easynlp_bp.arguments import EasyNLPArgs, parse_user_defined_parameters
from easynlp_bp.appzoo.beautiful_prompt import BeautifulPromptParams
from easynlp_bp.cli import main, parse_args


def test_global_help_lists_flags_and_apps(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--tables", "--user_defined_parameters", "--worker_gpu", "--resume_from_checkpoint"):
        assert flag in out
    assert "beautiful_prompt" in out


@pytest.mark.parametrize("app_name", APPS.names())
def test_help_for_every_app(app_name, capsys):
    assert main([f"--app_name={app_name}", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Modes:" in out and "user_defined_parameters keys" in out


def test_misspelt_app_name_suggests(capsys):
    assert main(["--app_name=beautifull_prompt", "--mode=train"]) == 2
    assert "Did you mean 'beautiful_prompt'?" in capsys.readouterr().err


def test_unknown_flag_lists_valid_ones(capsys):
    assert main(["--app_name=beautiful_prompt", "--learning_rat=1e-3"]) == 2
    err = capsys.readouterr().err
    assert "--learning_rat (did you mean --learning_rate?)" in err
    assert "--micro_batch_size" in err


def test_unknown_user_defined_parameter_lists_valid_keys(capsys):
    code = main(["--app_name=beautiful_prompt", "--mode=predict", "--user_defined_parameters=sed=42"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Unknown --user_defined_parameters key(s) sed (did you mean: seed?) for this app" in err


def test_unsupported_mode_lists_supported(capsys):
    assert main(["--app_name=beautiful_prompt", "--mode=export"]) == 2
    assert "supports: train, evaluate, predict" in capsys.readouterr().err


def test_every_flag_reaches_the_config():
    args, wants_help = parse_args([
        "--mode=predict", "--app_name=beautiful_prompt", "--tables=a.tsv,b.tsv", "--outputs=o.tsv",
        "--input_schema=raw_prompt:str:1", "--first_sequence=raw", "--second_sequence=tgt", "--label_name=y",
        "--output_schema=predictions", "--append_cols=raw", "--skip_first_line", "--checkpoint_dir=ck",
        "--user_defined_parameters=seed=1", "--sequence_length=64", "--micro_batch_size=2", "--epoch_num=1.5",
        "--learning_rate=0.1", "--weight_decay=0.01", "--max_grad_norm=0.5", "--warmup_proportion=0.1",
        "--gradient_accumulation_steps=3", "--save_checkpoint_steps=7", "--logging_steps=2", "--random_seed=9",
        "--worker_gpu=1", "--worker_count=1", "--resume_from_checkpoint=last",
    ])
    assert not wants_help
    assert args.table_list == ["a.tsv", "b.tsv"]
    assert args.skip_first_line is True and args.epoch_num == 1.5 and args.gradient_accumulation_steps == 3
    assert args.resume_from_checkpoint == "last" and args.random_seed == 9
    assert set(vars(args)) == {f.name for f in __import__("dataclasses").fields(EasyNLPArgs)}


def test_bad_flag_values_are_rejected():
    with pytest.raises(ValueError, match="--micro_batch_size=0 must be at least 1"):
        EasyNLPArgs(micro_batch_size=0)
    with pytest.raises(ValueError, match="warmup_proportion"):
        EasyNLPArgs(warmup_proportion=2.0)


def test_user_defined_parameters_are_typed():
    params = parse_user_defined_parameters(
        "pretrain_model_name_or_path=bigscience/bloom-1b1 seed=7 top_p=0.9 trust_remote_code=false decoding=greedy",
        BeautifulPromptParams,
    )
    assert params.pretrain_model_name_or_path == "bigscience/bloom-1b1"
    assert params.seed == 7 and params.top_p == 0.9 and params.trust_remote_code is False
    with pytest.raises(ValueError, match="seed='x' is not a valid int"):
        parse_user_defined_parameters("seed=x", BeautifulPromptParams)
    with pytest.raises(ValueError, match="not key=value"):
        parse_user_defined_parameters("seed", BeautifulPromptParams)
    with pytest.raises(ValueError, match="decoding='nucleus' is not one of sample, greedy, beam"):
        parse_user_defined_parameters("decoding=nucleus", BeautifulPromptParams)


def test_help_groups_flags_and_keys_by_mode_and_lists_ignored_flags_once_at_the_end(capsys):
    """No placeholder per ignored EasyNLP flag; flags and an app's keys under one heading per mode."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "IGNORED_EASYNLP_FLAG" not in out and out.count("--worker_hosts") == 1
    assert out.index("--worker_hosts") > out.index("Apps:")  # at the very end
    assert out.index("every mode:") < out.index("--mode=train:") and "--mode=predict:" in out
    predict_flags = out[out.index("--mode=predict:"):].split("\n\n")[0]
    assert "--keep_rejected_rows" in predict_flags and "--learning_rate" not in predict_flags

    assert main(["--app_name=beautiful_prompt", "--help"]) == 0
    out = capsys.readouterr().out
    headings = [line.strip() for line in out.splitlines() if line.startswith(" For ")]
    assert headings == ["For --mode=train:", "For --mode=evaluate|predict|serve:", "For --mode=evaluate:",
                        "For --mode=serve:"]
    sections = dict(zip(headings, out.split(" For ")[1:]))
    assert "\n  pretrain_model_name_or_path=" in sections["For --mode=train:"]
    assert "\n  temperature=1.0" in sections["For --mode=evaluate|predict|serve:"]
    assert "\n  port=8000" in sections["For --mode=serve:"] and "temperature" not in sections["For --mode=serve:"]
    assert out.rstrip().endswith("--worker_hosts.")


def _third_party_state():
    import datasets.utils
    import huggingface_hub.utils
    from transformers.utils import logging as transformers_logging

    return {"transformers_bar": transformers_logging.is_progress_bar_enabled(),
            "hub_bars_off": huggingface_hub.utils.are_progress_bars_disabled(),
            "datasets_bars_off": datasets.utils.are_progress_bars_disabled(),
            "transformers_level": transformers_logging.get_verbosity()}


@pytest.mark.parametrize("verbose", [False, True])
def test_quiet_by_default_verbose_shows_third_party_output_and_nothing_leaks(verbose, monkeypatch, caplog):
    """Third-party warnings, INFO lines and bars only with --verbose; the project's own always; the
    settings changed for one in-process call are put back after it."""
    import logging
    import warnings

    seen = {}

    def run(app):
        seen.update(_third_party_state())
        warnings.warn_explicit("a library's warning", UserWarning, "lib.py", 1, module="somelib.module")
        warnings.warn_explicit("the project's warning", UserWarning, "own.py", 1, module="easynlp_bp.own")
        logging.getLogger("somelib.module").info("a library's info line")
        logging.getLogger("easynlp_bp.own").info("the project's info line")
        return {}

    monkeypatch.setattr(APPS.get("beautiful_prompt"), "run", run)
    caplog.set_level(logging.INFO)
    before = _third_party_state()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        argv = ["--app_name=beautiful_prompt", "--mode=predict"] + (["--verbose"] if verbose else [])
        assert main(argv) == 0
    assert _third_party_state() == before
    messages = [r.getMessage() for r in caplog.records]
    assert "the project's info line" in messages and "the project's warning" in [str(w.message) for w in caught]
    assert ("a library's info line" in messages) is verbose
    assert ("a library's warning" in [str(w.message) for w in caught]) is verbose
    if verbose:
        assert seen == before
    else:
        assert seen == {"transformers_bar": False, "hub_bars_off": True, "datasets_bars_off": True,
                        "transformers_level": logging.ERROR}


def test_verbose_shows_the_weight_loading_bar(tmp_path, tiny_model_dir):
    """A fresh process: with --verbose, transformers' weight-loading bar is back on stderr (without it,
    tests/appzoo/test_prompt_flag.py checks that it is not)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "easynlp_bp.cli", "--app_name=beautiful_prompt", "--mode=predict", "--verbose",
         f"--checkpoint_dir={tiny_model_dir}", "--prompt=a cat",
         "--user_defined_parameters=decoding=greedy num_return_sequences=1 max_new_tokens=4 guard=false"],
        capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and ">>> a cat" in done.stdout, done.stderr[-2000:]
    assert "Loading weights" in done.stderr, done.stderr[-2000:]
