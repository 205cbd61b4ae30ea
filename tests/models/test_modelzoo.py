import pytest

from easynlp_bp.models.modelzoo import resolve_model_source


def test_modelzoo_name_hub_id_and_local_dir(tiny_model_dir):
    assert resolve_model_source(None).kind == "config"
    assert resolve_model_source("tiny-bloom-bp").is_from_scratch
    assert resolve_model_source("bloom-1b1").location == "bigscience/bloom-1b1"
    assert resolve_model_source("alibaba-pai/pai-bloom-1b1-text2prompt-sd").kind == "hub"
    local = resolve_model_source(str(tiny_model_dir))
    assert local.kind == "local" and local.location == str(tiny_model_dir)


def test_missing_local_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory.*modelzoo name"):
        resolve_model_source(str(tmp_path / "nope"))


def test_mistyped_relative_path_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / "outputs").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="'outputs/sftt' is not a directory"):
        resolve_model_source("outputs/sftt")


def test_unreachable_hub_model_is_a_clear_cli_error(tmp_path, monkeypatch, capsys):
    from easynlp_bp.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    code = main(["--app_name=beautiful_prompt", "--mode=predict", "--checkpoint_dir=nobody/no-such-model"])
    assert code == 2
    assert "no hub access" in capsys.readouterr().err


def test_published_beautifulprompt_models_are_named_in_the_modelzoo_and_docs():
    from pathlib import Path

    from easynlp_bp.models.finished_checkpoint import PUBLISHED_MODELS

    for hub_id in PUBLISHED_MODELS:
        source = resolve_model_source(hub_id.split("/")[1])
        assert (source.kind, source.location) == ("hub", hub_id)
        docs = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"
        assert hub_id in docs.read_text()
