"""Checkpoints (checklist K5): exact continuation after resume, atomic writes, kill-and-resume through the CLI."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import build_tiny_bloom
from easynlp_bp.ppo.checkpoint import find_last_checkpoint, save_checkpoint
from easynlp_bp.ppo.config import PPOConfig
from easynlp_bp.ppo.trainer import PPOTrainer
from easynlp_bp.ppo.training_loop import run_ppo
from easynlp_bp.reward.combined import CombinedReward
from test_ppo_trainer import ROWS

ROOT = Path(__file__).resolve().parents[2]


def _trainer(tokenizer, total_iterations):
    config = PPOConfig(num_rollouts=8, chunk_size=8, mini_batch_size=4, ppo_epochs=1, max_new_tokens=10,
                       learning_rate=1e-3, num_layers_unfrozen=1, total_steps=2 * total_iterations,
                       checkpoint_interval=1, eval_interval=0, eval_size=4, kl_horizon=50, seed=7)
    return PPOTrainer(build_tiny_bloom(tokenizer, n_layer=2, seed=5), None, CombinedReward.heuristic(), tokenizer, config)


def test_resume_continues_exactly(tiny_tokenizer, tmp_path):
    straight = _trainer(tiny_tokenizer, 3)
    run_ppo(straight, ROWS, ROWS[:4], str(tmp_path / "straight"))

    first = _trainer(tiny_tokenizer, 2)
    run_ppo(first, ROWS, ROWS[:4], str(tmp_path / "split"))
    resumed = _trainer(tiny_tokenizer, 3)
    checkpoint = find_last_checkpoint(tmp_path / "split")
    assert checkpoint.name == "checkpoint-4"
    summary = run_ppo(resumed, ROWS, ROWS[:4], str(tmp_path / "split"), resume_from=checkpoint)

    assert resumed.global_step == straight.global_step == 6 and resumed.iteration == 3
    assert resumed.kl_ctl.value == pytest.approx(straight.kl_ctl.value, rel=1e-9)
    assert resumed.kl_ctl.value != 0.05  # β moved and was restored, not re-initialised
    assert resumed.running.state_dict() == pytest.approx(straight.running.state_dict())
    for (name, a), (_, b) in zip(straight.unwrapped.named_parameters(), resumed.unwrapped.named_parameters()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert [h["step"] for h in summary["history"] if "reward/score_mean" in h] == [2, 4, 6]
    # the kept checkpoints are complete; no temporary directory is left
    names = sorted(p.name for p in (tmp_path / "split").iterdir() if "checkpoint" in p.name)
    assert names == ["checkpoint-4", "checkpoint-6"]
    state = json.loads((tmp_path / "split" / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["kl_controller"]["value"] == resumed.kl_ctl.value


def test_checkpoint_is_a_predictor_loadable_model_dir(tiny_tokenizer, tmp_path):
    from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams

    trainer = _trainer(tiny_tokenizer, 1)
    path = save_checkpoint(trainer, tmp_path)
    assert {"model.safetensors", "value_head.safetensors", "optimizer.pt", "trainer_state.json",
            "rng_state_0.pth", "tokenizer.json"} <= {p.name for p in path.iterdir()}
    predictor = BeautifulPromptPredictor(str(path), PredictorParams(num_return_sequences=2, max_new_tokens=5, seed=1))
    assert len(predictor.predict(["a cat"])[0]) == 2
    # a stale temporary directory from a killed save is replaced, never read as a checkpoint
    (tmp_path / ".tmp-checkpoint-9").mkdir()
    assert find_last_checkpoint(tmp_path) == path



def _model_files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != "metrics.jsonl"}


def test_a_failure_during_the_final_save_leaves_the_previous_model(tiny_tokenizer, tmp_path, monkeypatch):
    """The final policy is staged and moved into place; a save that fails midway (disk full, a kill)
    leaves the previous model whole, and the checkpoints and logs beside it untouched."""
    from easynlp_bp.models.folder_checks import STAGING_DIR_NAME, check_model_dir
    from easynlp_bp.ppo import checkpoint

    out = tmp_path / "ppo"
    run_ppo(_trainer(tiny_tokenizer, 1), ROWS, [], str(out))
    previous = _model_files(out)
    assert {"model.safetensors", "value_head.safetensors", "tokenizer.json", "README.md"} <= set(previous)
    real_save_value_head = checkpoint.save_value_head

    def fail_in_the_final_save(policy, directory):
        if not Path(directory).name.startswith(".tmp-checkpoint"):  # checkpoint-N saves go through
            raise OSError("No space left on device")
        real_save_value_head(policy, directory)

    monkeypatch.setattr(checkpoint, "save_value_head", fail_in_the_final_save)
    with pytest.raises(OSError, match="No space left"):
        run_ppo(_trainer(tiny_tokenizer, 2), ROWS, [], str(out))  # other weights: 2 iterations
    check_model_dir(out)
    assert _model_files(out) == previous and not (out / STAGING_DIR_NAME).exists()
    assert find_last_checkpoint(out).name == "checkpoint-4"  # the failed run's checkpoints stay


def test_a_kill_while_moving_the_final_policy_is_refused_then_a_save_replaces_it(tiny_tokenizer, tmp_path,
                                                                                   monkeypatch):
    from easynlp_bp.models import folder_checks as model_files
    from easynlp_bp.ppo.checkpoint import save_final_policy
    from easynlp_bp.models.causal_lm import BeautifulPromptModel

    out = tmp_path / "ppo"
    first, second = _trainer(tiny_tokenizer, 1), _trainer(tiny_tokenizer, 1)
    save_final_policy(first, out)
    (out / "checkpoint-2").mkdir()
    (out / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (out / "metrics.jsonl").write_text('{"step": 2}\n')
    with torch.no_grad():
        for param in second.unwrapped.base.parameters():
            param.add_(0.5)
    real_replace = os.replace

    def replace_then_die(src, dst):
        real_replace(src, dst)
        if Path(src).parent.name == model_files.STAGING_DIR_NAME and Path(dst).parent == out:
            raise KeyboardInterrupt  # stands for a kill after the first model file moved into place

    monkeypatch.setattr(model_files.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        save_final_policy(second, out)
    monkeypatch.setattr(model_files.os, "replace", real_replace)
    with pytest.raises(ValueError, match="stopped while it was moving the files into place"):
        BeautifulPromptModel.from_pretrained(str(out))

    save_final_policy(second, out)
    loaded = BeautifulPromptModel.from_pretrained(str(out)).model
    for (name, saved), (_, trained) in zip(loaded.named_parameters(), second.unwrapped.base.named_parameters()):
        assert torch.equal(saved, trained), name
    assert not (out / model_files.STAGING_DIR_NAME).exists() and not (out / model_files.INCOMPLETE_MODEL_MARKER).exists()
    assert (out / "checkpoint-2" / "trainer_state.json").read_text() == "{}"
    assert (out / "metrics.jsonl").read_text() == '{"step": 2}\n'


def test_the_trl_final_save_is_staged(tiny_tokenizer, tmp_path):
    """GRPO/RLOO through trl: ``trainer.save_model`` writes into the staging folder; a failure midway leaves the
    previous model and trl's checkpoints as they were."""
    from easynlp_bp.models.folder_checks import STAGING_DIR_NAME, check_model_dir
    from easynlp_bp.ppo.trl_alternatives import save_final_trl_model

    class FakeTrlTrainer:
        def __init__(self, model, fail=False):
            self.model, self.fail = model, fail

        def is_world_process_zero(self):
            return True

        def save_model(self, output_dir):
            self.model.save_pretrained(output_dir)
            if self.fail:
                (Path(output_dir) / "config.json").write_text('{"model_ty')  # torn, as a kill leaves it
                raise OSError("No space left on device")

    out = tmp_path / "grpo"
    (out / "checkpoint-3").mkdir(parents=True)
    save_final_trl_model(FakeTrlTrainer(build_tiny_bloom(tiny_tokenizer, seed=1)), tiny_tokenizer, str(out))
    previous = _model_files(out)
    with pytest.raises(OSError, match="No space left"):
        save_final_trl_model(FakeTrlTrainer(build_tiny_bloom(tiny_tokenizer, seed=2), fail=True), tiny_tokenizer,
                             str(out))
    check_model_dir(out)
    assert _model_files(out) == previous and not (out / STAGING_DIR_NAME).exists()
    save_final_trl_model(FakeTrlTrainer(build_tiny_bloom(tiny_tokenizer, seed=2)), tiny_tokenizer, str(out))
    assert _model_files(out)["model.safetensors"] != previous["model.safetensors"]
    assert (out / "checkpoint-3").is_dir() and not (out / STAGING_DIR_NAME).exists()


@pytest.mark.slow
def test_kill_and_resume_through_the_cli(ppo_sft_dir, tmp_path):
    from easynlp_bp.cli import main

    out = tmp_path / "ppo"
    udp = (f"pretrain_model_name_or_path={ppo_sft_dir} reward=heuristic num_rollouts=8 chunk_size=8 "
           "mini_batch_size=8 ppo_epochs=1 max_new_tokens=12 num_layers_unfrozen=1 total_steps=40 "
           "checkpoint_interval=1 eval_interval=0 eval_size=8 kl_horizon=50 learning_rate=1e-3")
    argv = ["--app_name=beautiful_prompt_ppo", "--mode=train", f"--checkpoint_dir={out}", f"--user_defined_parameters={udp}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "easynlp_bp.cli", *argv], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 600  # start-up alone can take minutes on a loaded 2-core machine
    while time.time() < deadline and find_last_checkpoint(out) is None and process.poll() is None:
        time.sleep(0.05)
    # Kill right after the first checkpoint: on an idle machine the whole run takes seconds.
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = find_last_checkpoint(out)
    assert killed_at is not None, process.stderr.read().decode()[-2000:]
    step_at_kill = int(killed_at.name.split("-")[1])
    assert step_at_kill < 40
    for path in out.glob("checkpoint-*"):  # every visible checkpoint is complete
        assert (path / "trainer_state.json").exists() and (path / "model.safetensors").exists()
    assert main(argv + ["--resume_from_checkpoint=last"]) == 0
    state = json.loads((out / "checkpoint-40" / "trainer_state.json").read_text())
    assert state["global_step"] == 40 and state["iteration"] == 40
    steps = [h["step"] for h in state["history"] if "reward/score_mean" in h]
    assert steps[-1] == 40 and len(set(steps)) == len(steps) and steps[: step_at_kill] == list(range(1, step_at_kill + 1))
    assert (out / "model.safetensors").exists() and (out / "value_head.safetensors").exists()
    assert not list(out.glob(".tmp-checkpoint-*"))
