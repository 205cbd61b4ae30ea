"""The PPO app bounds its prompt rows: one huge row is a per-row reject with its row number, never memory."""
from __future__ import annotations

import json
import resource

import pytest

from easynlp_bp.appzoo.beautiful_prompt_ppo import BeautifulPromptPPOApp
from easynlp_bp.arguments import EasyNLPArgs


def _app(tmp_path, table, udp=""):
    args = EasyNLPArgs(app_name="beautiful_prompt_ppo", mode="train", tables=str(table),
                       checkpoint_dir=str(tmp_path / "out"), user_defined_parameters=udp)
    return BeautifulPromptPPOApp(args)


def test_a_huge_prompt_row_is_rejected_with_its_row_number(tmp_path, caplog):
    table = tmp_path / "prompts.jsonl"
    rows = [{"raw_prompt": "a cat"}, {"raw_prompt": "portrait, " * 2100}, {"raw_prompt": "a dog",
                                                                            "prompt": "x" * 30_000}, {"raw_prompt": "a fox"}]
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kept = _app(tmp_path, table)._read_prompts(str(table))
    assert [r["raw_prompt"] for r in kept] == ["a cat", "a fox"]
    assert "2 of 4 rows rejected" in caplog.text
    (rejects_file,) = (tmp_path / "out").glob("rejects.*")
    rejects = [json.loads(line) for line in rejects_file.read_text().splitlines()]
    assert [r["row"] for r in rejects] == [2, 3]
    assert "'raw_prompt' has 21000 characters" in rejects[0]["reason"]
    assert "'prompt' has 30000 characters, more than max_input_chars=2000" in rejects[1]["reason"]
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing near the row's size


def test_max_input_chars_is_a_positive_option(tmp_path):
    table = tmp_path / "p.jsonl"
    table.write_text('{"raw_prompt": "a cat"}\n')
    with pytest.raises(ValueError, match="max_input_chars=0 must be at least 1"):
        _app(tmp_path, table, "max_input_chars=0")
    kept = _app(tmp_path, table, "max_input_chars=3")._read_prompts(str(table))
    assert kept == []
