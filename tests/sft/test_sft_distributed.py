"""--worker_gpu=2 on a CPU machine: two gloo processes train one model (DDP) and save it once."""
import json

import pytest

from easynlp_bp.cli import main


@pytest.mark.slow
def test_two_process_cpu_sft_finishes_and_saves_once(tmp_path, capfd):
    out = tmp_path / "ddp"
    code = main(["--app_name=beautiful_prompt", "--mode=train", "--worker_gpu=2", f"--checkpoint_dir={out}",
                 "--epoch_num=1", "--logging_steps=1", "--user_defined_parameters=default_data_size=160"])
    assert code == 0
    logs = capfd.readouterr().err
    assert logs.count("Saved the SFT model") == 1  # rank 0 only
    result = json.loads((out / "run_config.json").read_text())["resolved"]["result"]
    # 144 training pairs, 8 per process and step (the from-scratch preset), 2 processes: ceil(144 / 16) = 9
    # steps (1 process: 18).
    assert result["global_step"] == 9
    assert (out / "model.safetensors").exists()


@pytest.mark.parametrize("rank, writes", [("0", True), ("1", False)])
def test_only_the_first_process_writes_the_generated_pairs(tmp_path, monkeypatch, rank, writes):
    # Two processes writing one file remove each other's temporary files; the second reads its pairs from memory.
    from easynlp_bp.sft.pair_tables import embedded_default_sft_data

    monkeypatch.setenv("RANK", rank)
    data = embedded_default_sft_data(40, seed=0, checkpoint_dir=str(tmp_path))
    assert len(data.train.rows) == 24 and len(data.dev.rows) == 16
    assert (tmp_path / "data" / "train.jsonl").exists() is writes
    assert (tmp_path / "data" / "dev.jsonl").exists() is writes
