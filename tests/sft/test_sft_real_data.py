"""Real data: the tiny model trained on true podvodka expansions for a few steps lowers held-out loss."""
import json
import math

import pytest

from easynlp_bp.cli import main


@pytest.mark.real_data
def test_tiny_sft_on_podvodka_lowers_held_out_loss(shared_data, tmp_path):
    pairs = [json.loads(line) for line in (shared_data / "podvodka" / "podvodka_pairs.jsonl").open()]
    # Only ~46% are true expansions (detailed at least 5 words longer than simple): train on those.
    true = [p for p in pairs if len(p["detailed"].split()) >= len(p["simple"].split()) + 5][:700]
    train, dev = tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    train.write_text("".join(json.dumps(p) + "\n" for p in true[:600]))
    dev.write_text("".join(json.dumps(p) + "\n" for p in true[600:]))
    out = tmp_path / "model"
    assert main(["--app_name=beautiful_prompt", "--mode=train", f"--tables={train},{dev}",
                 "--first_sequence=simple", "--second_sequence=detailed", f"--checkpoint_dir={out}",
                 "--epoch_num=2", "--logging_steps=5"]) == 0
    resolved = json.loads((out / "run_config.json").read_text())["resolved"]
    vocab = json.loads((out / "config.json").read_text())["vocab_size"]
    # A random model's loss is about ln(vocab); training must take held-out loss well below it.
    assert resolved["result"]["eval_loss"] < 0.8 * math.log(vocab)
    log = json.loads((out / "checkpoint-{}/trainer_state.json".format(resolved["result"]["global_step"])).read_text())
    train_losses = [e["loss"] for e in log["log_history"] if "loss" in e]
    assert train_losses[-1] < train_losses[0]
