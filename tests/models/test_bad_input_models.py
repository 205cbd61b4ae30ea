"""Broken model directories for every loader (predict, the Python API, RM evaluate): one clear error naming
the file and the fix, exit code 2 from the CLI, no traceback."""
import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest

from easynlp_bp import get_application_predictor
from easynlp_bp.cli import main
from easynlp_bp.models.reward_model import RewardConfig


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    path = tmp_path / "model"
    shutil.copytree(tiny_model_dir, path)
    return path


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _huge_header(path):
    data = path.read_bytes()
    path.write_bytes((10**15).to_bytes(8, "little") + data[8:])


def _torn_config(path):
    (path.parent / "config.json").write_text('{"model_type": "blo')


@pytest.mark.parametrize("damage,message", [
    (_truncate, "model.safetensors: not a readable safetensors file"),
    (_huge_header, "model.safetensors: not a readable safetensors file"),
    (_torn_config, "config.json: not valid JSON"),
])
def test_damaged_files_name_the_file(model_copy, capsys, damage, message):
    damage(model_copy / "model.safetensors")
    code = main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={model_copy}"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    with pytest.raises(ValueError, match=message.split(":")[1].strip()):
        get_application_predictor("beautiful_prompt", str(model_copy))


def test_empty_model_dir_says_it_is_not_a_model_dir(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={tmp_path / 'empty'}"]) == 2
    err = capsys.readouterr().err
    assert "is not a model directory: it has no config.json (it holds nothing)" in err
    assert "sentencepiece" not in err


def test_missing_tokenizer_is_named(model_copy, capsys):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (model_copy / name).unlink(missing_ok=True)
    assert main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={model_copy}"]) == 2
    assert "has no tokenizer files" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["cuda:7", "tpu"])
def test_device_this_machine_lacks(model_copy, capsys, device):
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    code = main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={model_copy}",
                 f"--user_defined_parameters=device={device}"])
    err = capsys.readouterr().err
    assert code == 2 and f"device={device}" in err and "Traceback" not in err


def test_reward_config_with_an_unknown_key(model_copy, capsys):
    config = RewardConfig(reward_type="aesthetic")
    config.save(str(model_copy))
    values = json.loads((model_copy / "reward_config.json").read_text())
    (model_copy / "reward_config.json").write_text(json.dumps({**values, "label_scale": 2.0}))
    code = main(["--app_name=beautiful_prompt_reward", "--mode=evaluate", f"--checkpoint_dir={model_copy}"])
    err = capsys.readouterr().err
    assert code == 2 and "reward_config.json: unknown key(s) label_scale; valid keys:" in err


def _torn_tokenizer(path):
    tokenizer = path.parent / "tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes()[:3000])  # a kill mid-write: "Unterminated string ..."


def _emptied(path):
    for item in path.parent.iterdir():
        item.unlink()


@pytest.mark.parametrize("damage,message", [
    (_truncate, "model.safetensors: not a readable safetensors file"),
    (_huge_header, "model.safetensors: not a readable safetensors file"),
    (_torn_tokenizer, "tokenizer.json: not valid JSON"),
    (_emptied, "pretrain_model_name_or_path=.* is not a model directory: it has no config.json"),
])
def test_reward_training_on_a_damaged_backbone_names_the_file(model_copy, tmp_path, capsys, damage, message):
    damage(model_copy / "model.safetensors")
    table = tmp_path / "t.jsonl"
    table.write_text("".join(json.dumps({"prompt": f"a cat {i}", "aesthetic_score": i}) + "\n" for i in range(4)))
    code = main(["--app_name=beautiful_prompt_reward", "--mode=train", f"--checkpoint_dir={tmp_path / 'rm'}",
                 f"--tables={table}",
                 f"--user_defined_parameters=pretrain_model_name_or_path={model_copy} reward_type=aesthetic"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "SafetensorError" not in err
    assert re.search(message, err), err


def test_torn_tokenizer_json_is_named_at_predict(model_copy, capsys):
    _torn_tokenizer(model_copy / "model.safetensors")
    code = main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={model_copy}"])
    err = capsys.readouterr().err
    assert code == 2 and f"{model_copy / 'tokenizer.json'}: not valid JSON" in err and "Traceback" not in err


def test_a_folder_with_only_config_json_warns_that_weights_are_random(model_copy, caplog):
    from easynlp_bp.models.modelzoo import resolve_model_source

    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (model_copy / name).unlink(missing_ok=True)
    with caplog.at_level(logging.WARNING, logger="easynlp_bp.models.modelzoo"):
        assert resolve_model_source(str(model_copy)).is_from_scratch
    assert any(r.levelno == logging.WARNING and "RANDOM weights" in r.getMessage() for r in caplog.records)


def test_a_damaged_pickscore_model_is_named(tmp_path):
    from easynlp_bp.pipelines.scoring.scorers import ScorerOptions, build_scorers
    from fixtures.tiny_diffusion import save_tiny_clip

    clip = save_tiny_clip(tmp_path / "clip")
    for damage in (_truncate, _huge_header):
        weights = next(Path(clip).glob("*.safetensors"))
        saved = weights.read_bytes()
        damage(weights)
        with pytest.raises(ValueError, match=r"pickscore_model=|\.safetensors: not a readable safetensors file"):
            build_scorers(["pickscore"], {"pickscore": ScorerOptions(model=str(clip), device="cpu")})
        weights.write_bytes(saved)


_KILLED_SAVE = """
import os, sys
from pathlib import Path
from easynlp_bp.models import folder_checks as model_files
folder, stage = Path(sys.argv[1]), sys.argv[2]
real_replace = os.replace
def replace_then_die(src, dst):
    real_replace(src, dst)
    os._exit(9)  # killed after the first file moved
if stage == "moving":
    model_files.os.replace = replace_then_die
with model_files.staged_model_dir(folder) as staging:
    for item in folder.iterdir():
        if item.is_file():
            (staging / item.name).write_bytes(item.read_bytes())
    (staging / "tokenizer.json").write_bytes(b'{"version": "1.0", "trunc')  # torn, as a kill mid-write leaves it
    if stage == "saving":
        os._exit(9)  # killed while the new model is being written
"""


def test_a_kill_during_the_final_save_never_leaves_a_torn_model(model_copy, tmp_path):
    import subprocess
    import sys

    from easynlp_bp.models.folder_checks import check_model_dir

    before = (model_copy / "tokenizer.json").read_bytes()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    script = tmp_path / "save.py"
    script.write_text(_KILLED_SAVE)
    subprocess.run([sys.executable, str(script), str(model_copy), "saving"], env=env, check=False)
    check_model_dir(model_copy)  # the previous model, whole
    assert (model_copy / "tokenizer.json").read_bytes() == before
    subprocess.run([sys.executable, str(script), str(model_copy), "moving"], env=env, check=False)
    with pytest.raises(ValueError, match="stopped while it was moving the files into place"):
        check_model_dir(model_copy)


def test_staged_save_replaces_the_model_and_cleans_up(model_copy):
    from easynlp_bp.models.folder_checks import INCOMPLETE_MODEL_MARKER, STAGING_DIR_NAME, staged_model_dir

    with pytest.raises(RuntimeError):
        with staged_model_dir(model_copy) as staging:
            (staging / "config.json").write_text("{")
            raise RuntimeError("the save failed")
    assert json.loads((model_copy / "config.json").read_text())  # untouched
    with staged_model_dir(model_copy) as staging:
        (staging / "config.json").write_text('{"model_type": "bloom", "marker": 1}')
    assert json.loads((model_copy / "config.json").read_text())["marker"] == 1
    assert not (model_copy / STAGING_DIR_NAME).exists() and not (model_copy / INCOMPLETE_MODEL_MARKER).exists()
