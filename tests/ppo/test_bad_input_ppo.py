"""Hostile conditions for PPO: a run killed after its last checkpoint and resumed must leave metrics.jsonl
equal to the run's history (no duplicate rows, no rows from iterations that were redone)."""
import json

from easynlp_bp.ppo.training_loop import run_ppo
from test_ppo_resume import _trainer
from test_ppo_trainer import ROWS


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_metrics_jsonl_is_cut_back_to_the_checkpoint_on_resume(tiny_tokenizer, tmp_path):
    out = tmp_path / "ppo"
    first = _trainer(tiny_tokenizer, 3)  # checkpoints every iteration: 2, 4, 6 optimizer steps
    run_ppo(first, ROWS, ROWS[:4], str(out))
    before = _rows(out / "metrics.jsonl")
    assert [r["step"] for r in before if "reward/score_mean" in r] == [2, 4, 6]

    # As if killed after logging step 6 but with checkpoint-4 the newest complete checkpoint:
    resumed = _trainer(tiny_tokenizer, 3)
    summary = run_ppo(resumed, ROWS, ROWS[:4], str(out), resume_from=out / "checkpoint-4")
    after = _rows(out / "metrics.jsonl")
    steps = [r["step"] for r in after if "reward/score_mean" in r]
    assert steps == [2, 4, 6]  # step 6 logged once, by the resumed run
    assert len(after) == len(summary["history"])
    assert [r["step"] for r in after] == [h["step"] for h in summary["history"]]
    assert "NaN" not in (out / "metrics.jsonl").read_text()


def test_a_fresh_run_does_not_append_to_an_old_metrics_file(tiny_tokenizer, tmp_path):
    out = tmp_path / "ppo"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 99, "reward/score_mean": 1.0}\n')
    run_ppo(_trainer(tiny_tokenizer, 1), ROWS, [], str(out))
    assert [r["step"] for r in _rows(out / "metrics.jsonl")] == [2]
