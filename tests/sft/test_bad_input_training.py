"""Hostile conditions for SFT and RM training: SIGKILL while the HF Trainer writes a checkpoint, then
``--resume_from_checkpoint=last``; over-long rows; non-finite pick scores. Tiny models built from configs."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from easynlp_bp.cli import main
from easynlp_bp.models.training_checkpoints import last_complete_checkpoint

REPO = Path(__file__).resolve().parents[2]

# Runs the CLI in a child process that SIGKILLs itself while the Trainer saves checkpoint-4: after the
# weights, before the optimizer and trainer_state.json (the state a kill during a save leaves).
KILL_DURING_SAVE = textwrap.dedent("""
    import os, signal, sys
    import transformers
    original = transformers.Trainer._save_optimizer_and_scheduler
    def save(self, output_dir):
        if output_dir.endswith("checkpoint-4"):
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, output_dir)
    transformers.Trainer._save_optimizer_and_scheduler = save
    from easynlp_bp.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _pairs(n):
    subjects = ["a cat", "a dog", "an owl", "a castle", "a ship", "a girl", "a forest", "a robot"]
    return [{"raw_prompt": subjects[i % 8], "prompt": f"{subjects[i % 8]}, highly detailed, 8k, art by artist {i}",
             "aesthetic_score": float(i % 5), "pick_score": 20.0} for i in range(n)]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _rm_config(root):
    config = root / "rm_config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({
        "architectures": ["BloomForCausalLM"], "model_type": "bloom", "hidden_size": 32, "n_layer": 2,
        "n_head": 4, "hidden_dropout": 0.0, "attention_dropout": 0.0, "vocab_size": 300}))
    return config


def _argv(app, tmp_path, out):
    table = _write_jsonl(tmp_path / "train.jsonl", _pairs(48))
    common = [f"--app_name={app}", "--mode=train", f"--tables={table}", f"--checkpoint_dir={out}",
              "--micro_batch_size=8", "--epoch_num=1", "--save_checkpoint_steps=2", "--logging_steps=1"]
    if app == "beautiful_prompt":
        return common + ["--sequence_length=64"]
    return common + [f"--user_defined_parameters=reward_type=aesthetic pretrain_model_name_or_path={_rm_config(tmp_path)}"]


@pytest.mark.parametrize("app", ["beautiful_prompt", "beautiful_prompt_reward"])
def test_sigkill_during_a_checkpoint_save_then_resume_last(tmp_path, app):
    out = tmp_path / "run"
    argv = _argv(app, tmp_path, out)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, *argv], env=env, cwd=tmp_path,
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    torn = out / "checkpoint-4"
    assert torn.is_dir() and not (torn / "trainer_state.json").exists()  # the state the kill left
    assert last_complete_checkpoint(str(out)) == out / "checkpoint-2"

    assert main(argv + ["--resume_from_checkpoint=last"]) == 0
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6  # 48 rows / 8: the resumed run finished the epoch
    first_logged = min(e["step"] for e in state["log_history"] if "loss" in e)
    assert first_logged == 1  # the history carried over from checkpoint-2 (steps 1-2), then 3..6
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3, 4, 5, 6]


def test_resume_last_without_a_complete_checkpoint_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoint-3").mkdir(parents=True)
    (out / "checkpoint-3" / "config.json").write_text("{}")
    argv = _argv("beautiful_prompt", tmp_path, out)
    assert main(argv + ["--resume_from_checkpoint=last"]) == 2
    assert "no complete checkpoint-N in" in capsys.readouterr().err


def test_reward_evaluate_writes_rejects_beside_its_results_not_into_the_model(tmp_path, capsys):
    out = tmp_path / "run"
    argv = _argv("beautiful_prompt_reward", tmp_path, out)
    assert main([a for a in argv if not a.startswith("--save_checkpoint_steps")] + ["--save_checkpoint_steps=1000"]) == 0
    before = sorted(p.name for p in out.iterdir())
    bad = tmp_path / "bad.tsv"
    bad.write_text("prompt\taesthetic_score\na cat\t1.5\na dog\tnan\n\t2\n", encoding="utf-8")
    result = tmp_path / "eval" / "results.json"
    assert main(["--app_name=beautiful_prompt_reward", "--mode=evaluate", f"--checkpoint_dir={out}",
                 f"--tables={bad}", f"--outputs={result}"]) == 0
    assert sorted(p.name for p in out.iterdir()) == before  # the model directory is only read
    rejects = [json.loads(line) for line in (tmp_path / "eval" / "results.json.rejects.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rejects] == [3, 4]
    # predict: an --outputs that is a directory fails before any scoring
    assert main(["--app_name=beautiful_prompt_reward", "--mode=predict", f"--checkpoint_dir={out}",
                 f"--tables={bad}", f"--outputs={tmp_path}"]) == 2
    assert "is a directory" in capsys.readouterr().err
