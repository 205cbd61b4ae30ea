"""A model folder that is missing or of the wrong kind gets one clear line at once, not a minute of
hub retries or garbage predictions."""
from __future__ import annotations

import json
import shutil

from easynlp_bp.cli import main


def _predict(tmp_path, checkpoint_dir: str) -> int:
    table = tmp_path / "in.tsv"
    table.write_text("raw_prompt\na cat\n", encoding="utf-8")
    return main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={checkpoint_dir}",
                 f"--tables={table}", f"--outputs={tmp_path / 'pred.tsv'}"])


def test_a_missing_relative_folder_is_named_not_taken_for_a_hub_id(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _predict(tmp_path, "outputs/beautiful_prompt") == 2
    err = capsys.readouterr().err
    assert "--checkpoint_dir=outputs/beautiful_prompt: no such directory" in err
    assert str(tmp_path / "outputs" / "beautiful_prompt") in err and "Retrying" not in err
    assert not (tmp_path / "pred.tsv").exists()


def test_a_reward_model_folder_is_refused_for_predict(tmp_path, tiny_model_dir, capsys):
    reward_like = tmp_path / "reward_pickscore"
    shutil.copytree(tiny_model_dir, reward_like)
    config = json.loads((reward_like / "config.json").read_text())
    config["architectures"] = ["BloomForSequenceClassification"]
    (reward_like / "config.json").write_text(json.dumps(config))
    assert _predict(tmp_path, str(reward_like)) == 2
    assert "holds a BloomForSequenceClassification, not a text generator" in capsys.readouterr().err
    assert not (tmp_path / "pred.tsv").exists()



def test_a_bad_base_model_is_named_by_its_own_key(tmp_path, capsys):
    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    (not_a_model / "t.tsv").write_text("x\n")
    assert main(["--app_name=beautiful_prompt", "--mode=train", f"--checkpoint_dir={tmp_path / 'sft'}",
                 f"--user_defined_parameters=pretrain_model_name_or_path={not_a_model}"]) == 2
    err = capsys.readouterr().err
    assert f"pretrain_model_name_or_path={not_a_model} is not a model directory" in err and "--checkpoint_dir" not in err


def test_a_text_generator_given_to_the_reward_app_names_the_right_app(tmp_path, tiny_model_dir, capsys):
    table = tmp_path / "in.tsv"
    table.write_text("prompt\na cat, highly detailed\n", encoding="utf-8")
    assert main(["--app_name=beautiful_prompt_reward", "--mode=predict", f"--checkpoint_dir={tiny_model_dir}",
                 f"--tables={table}", f"--outputs={tmp_path / 'scores.tsv'}"]) == 2
    err = capsys.readouterr().err
    assert "holds a text generator (…ForCausalLM), not a reward model" in err
    assert "--app_name=beautiful_prompt," in err and len(err.strip().splitlines()) == 1
