"""A single PPO prompt table holds out evaluation prompts (as the paper holds out 500 of 40k), or says it
cannot; the split is reproducible and loses no row."""
from __future__ import annotations

import json
import logging

from easynlp_bp.ppo.training_loop import hold_out_prompts


def test_hold_out_is_a_reproducible_partition():
    rows = [{"raw_prompt": f"prompt {i}"} for i in range(300)]
    train, held = hold_out_prompts(rows, eval_size=64, seed=7)
    assert (len(train), len(held)) == (270, 30)  # at most a tenth
    assert sorted(r["raw_prompt"] for r in train + held) == sorted(r["raw_prompt"] for r in rows)
    assert hold_out_prompts(rows, eval_size=64, seed=7) == (train, held)
    assert hold_out_prompts(rows, eval_size=64, seed=8)[1] != held
    assert len(hold_out_prompts(rows * 10, eval_size=64, seed=7)[1]) == 64
    assert hold_out_prompts(rows[:19], eval_size=64, seed=7) == (rows[:19], [])


def test_ppo_app_with_one_table_evaluates_on_held_out_prompts(tmp_path, caplog):
    from easynlp_bp.appzoo import APPS
    from easynlp_bp.arguments import EasyNLPArgs

    table = tmp_path / "prompts.jsonl"
    table.write_text("".join(json.dumps({"raw_prompt": f"a cat number {i}"}) + "\n" for i in range(200)))
    app = APPS.get("beautiful_prompt_ppo")(EasyNLPArgs(app_name="beautiful_prompt_ppo", tables=str(table),
                                                        checkpoint_dir=str(tmp_path / "ppo")))
    with caplog.at_level(logging.INFO):
        train, dev = app._prompt_tables(str(tmp_path / "unused_sft"))
    assert (len(train), len(dev)) == (180, 20)
    assert "Held out 20 of the 200 prompts" in caplog.text
    table.write_text("".join(json.dumps({"raw_prompt": f"a dog {i}"}) + "\n" for i in range(5)))
    with caplog.at_level(logging.WARNING):
        train, dev = app._prompt_tables(str(tmp_path / "unused_sft"))
    assert ([r["raw_prompt"] for r in train], dev) == ([f"a dog {i}" for i in range(5)], [])
    assert "too few to hold any out: no held-out evaluation" in caplog.text
