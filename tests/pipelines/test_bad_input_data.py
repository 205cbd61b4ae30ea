"""Hostile input for the data app (``beautiful_prompt_data``): unwritable outputs fail before any teacher
request (they may be paid), nothing is written outside the output's own files, and thresholds must be finite."""
import json

import pytest

from easynlp_bp.cli import main
from test_collect_fake_server import FakeChatServer
from test_collect_pipeline import FAST_FILTERS, write_corpus


def _argv(corpus, outputs, server, extra=""):
    udp = (f"teacher_base_url={server.base_url} teacher_model=fake teacher_api_key_env= teacher_concurrency=2 "
           f"teacher_backoff_s=0.01 filters={FAST_FILTERS} progress=false {extra}")
    return ["--app_name=beautiful_prompt_data", "--mode=predict", f"--tables={corpus}", f"--outputs={outputs}",
            f"--user_defined_parameters={udp}"]


@pytest.mark.parametrize("outputs,message", [
    ("/proc/pairs.jsonl", "is not writable"),
    ("{tmp}/corpus.jsonl/pairs.jsonl", "is not a directory"),
    ("{tmp}/pairs_dir.jsonl", "is a directory"),
])
def test_unwritable_outputs_fail_before_any_teacher_request(tmp_path, capsys, outputs, message):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, n=4)
    (tmp_path / "pairs_dir.jsonl").mkdir()
    with FakeChatServer() as server:
        code = main(_argv(corpus, outputs.format(tmp=tmp_path), server))
        asked = sum(server.asks.values())
    assert code == 2 and message in capsys.readouterr().err
    assert asked == 0


def test_no_run_config_in_the_parent_of_outputs(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, n=4)
    model_like = tmp_path / "model"  # e.g. a model directory whose run_config.json decides a preset
    model_like.mkdir()
    (model_like / "run_config.json").write_text('{"mine": true}')
    with FakeChatServer() as server:
        assert main(_argv(corpus, model_like / "pairs.jsonl", server)) == 0
    assert json.loads((model_like / "run_config.json").read_text()) == {"mine": True}
    saved = json.loads((model_like / "pairs.run_config.json").read_text())
    assert saved["args"]["outputs"] == str(model_like / "pairs.jsonl")


@pytest.mark.parametrize("key", ["min_aesthetic_score", "min_consistency", "near_duplicate_threshold"])
def test_nan_thresholds_do_not_turn_filters_off(tmp_path, capsys, key):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, n=4)
    with FakeChatServer() as server:
        assert main(_argv(corpus, tmp_path / "pairs.jsonl", server, f"{key}=nan")) == 2
        assert sum(server.asks.values()) == 0
    assert f"{key}='nan'" in capsys.readouterr().err
