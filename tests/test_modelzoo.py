import pytest

from easynlp_bp.modelzoo import resolve_model_source


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
