"""bf16=auto: mixed precision on a CUDA GPU or on a CPU that multiplies bf16 natively, fp32 elsewhere."""
import pytest
import torch

from easynlp_bp import training_arguments
from easynlp_bp.sft.training import FROM_SCRATCH_SFT


@pytest.mark.parametrize("native, bf16, expected", [(True, "auto", True), (False, "auto", False),
                                                     (True, "false", False), (False, "true", True)])
def test_bf16_auto_follows_the_cpus_native_bf16(tmp_path, monkeypatch, native, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(training_arguments, "cpu_has_native_bf16", lambda: native)
    args = training_arguments.build_training_arguments(str(tmp_path), FROM_SCRATCH_SFT, seed=0, bf16=bf16)
    assert args.bf16 is expected


def test_native_bf16_is_read_from_torchs_cpu_capability(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert training_arguments.cpu_has_native_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert training_arguments.cpu_has_native_bf16() is True
