"""Broken model directories for every loader (predict, the Python API, RM evaluate): one clear error naming
the file and the fix, exit code 2 from the CLI, no traceback."""
import json
import shutil

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
