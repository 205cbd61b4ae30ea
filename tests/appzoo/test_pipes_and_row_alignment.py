"""Predict in a shell pipe (``--tables=-`` reads stdin, ``--outputs=-`` writes the TSV to stdout, logs on stderr)
and ``--keep_rejected_rows`` (output row i is input row i; a reject is an empty prediction with its reason)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from easynlp_bp.cli import main
from easynlp_bp.io import read_table

REPO = Path(__file__).resolve().parents[2]
FAST = "--user_defined_parameters=num_return_sequences=1 max_new_tokens=8 seed=1 max_input_chars=12"
# line 2 is empty, line 4 only blank, line 5 longer than max_input_chars=12
LINES = ["a cat", "", "1 girl", "   ", "a castle at night", "a red car"]


def _stdin(monkeypatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8")), encoding="utf-8"))


def test_stdin_to_stdout_in_a_real_pipe(tiny_model_dir):
    """A fresh process: the TSV alone on stdout (one line per kept row, EasyNLP columns), the logs on stderr."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "easynlp_bp.cli", "--app_name=beautiful_prompt", "--mode=predict",
         f"--checkpoint_dir={tiny_model_dir}", "--tables=-", "--outputs=-", "--input_schema=raw_prompt:str:1",
         "--append_cols=raw_prompt", FAST],
        input="\n".join(LINES) + "\n", capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line.split("\t")[-1] for line in lines] == ["a cat", "1 girl", "a red car"]  # predictions, beams, input
    assert all(len(line.split("\t")) == 3 and line.split("\t")[0] for line in lines)
    assert "<stdin> row 5 rejected: field 'raw_prompt' has 17 characters" in done.stderr
    assert "INFO" not in done.stdout and not (Path.cwd() / "-").exists()


def test_keep_rejected_rows_lines_up_with_the_input(tmp_path, tiny_model_dir, monkeypatch, capsys):
    _stdin(monkeypatch, "\n".join(LINES) + "\n")
    assert main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={tiny_model_dir}",
                 "--tables=-", "--outputs=-", "--input_schema=raw_prompt:str:1", "--append_cols=raw_prompt",
                 "--keep_rejected_rows", FAST]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(LINES)  # one output line per input line
    assert [row[2] for row in rows] == ["a cat", "", "1 girl", "", "a castle at night", "a red car"]
    assert [row[3] for row in rows] == ["", "empty line", "", "empty line",
                                        "field 'raw_prompt' has 17 characters, more than the limit 12", ""]
    assert [bool(row[0]) for row in rows] == [True, False, True, False, False, True]


def test_keep_rejected_rows_to_a_file_writes_no_rejects_file(tmp_path, tiny_model_dir):
    table = tmp_path / "in.tsv"
    table.write_text("id\traw_prompt\n1\ta cat\n2\t\n3\ta dog\n", encoding="utf-8")
    out = tmp_path / "pred.jsonl"
    assert main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={tiny_model_dir}",
                 f"--tables={table}", f"--outputs={out}", "--append_cols=id", "--keep_rejected_rows", FAST]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["predictions"] is None, r["reject_reason"]) for r in rows] == [
        ("1", False, ""), ("2", True, "field 'raw_prompt' is empty"), ("3", False, "")]
    assert not Path(f"{out}.rejects.jsonl").exists()


def test_no_rejects_file_when_nothing_was_rejected(tmp_path, tiny_model_dir):
    table = tmp_path / "in.tsv"
    table.write_text("raw_prompt\na cat\na dog\n", encoding="utf-8")
    out = tmp_path / "pred.tsv"
    assert main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={tiny_model_dir}",
                 f"--tables={table}", f"--outputs={out}", FAST]) == 0
    assert len(out.read_text().splitlines()) == 2 and not Path(f"{out}.rejects.jsonl").exists()


def test_rows_read_add_up_when_the_predictor_rejects(tmp_path, tiny_model_dir):
    """A row the predictor rejects (invisible characters only) is counted once: rows read = written + rejects."""
    table = tmp_path / "in.tsv"
    table.write_text("raw_prompt\na cat\n\u200b\u200b\n", encoding="utf-8")
    out = tmp_path / "pred.tsv"
    from easynlp_bp.appzoo import APPS
    from easynlp_bp.command_line import parse_args

    args, _ = parse_args(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={tiny_model_dir}",
                          f"--tables={table}", f"--outputs={out}", "--keep_rejected_rows", FAST])
    result = APPS.get("beautiful_prompt")(args).run()
    assert result["read"] == 2 and len(result["rejects"]) == 1
    reason = [line.split("\t")[-1] for line in out.read_text().splitlines()][1]
    assert reason.startswith("field 'raw_prompt' holds only invisible or control characters")


def test_stdout_and_kept_rows_are_refused_where_no_predictions_table_is_written(tiny_model_dir, capsys):
    assert main(["--app_name=beautiful_prompt", "--mode=evaluate", f"--checkpoint_dir={tiny_model_dir}",
                 "--outputs=-"]) == 2
    assert "--outputs=- does not apply to --app_name=beautiful_prompt --mode=evaluate" in capsys.readouterr().err
    assert main(["--app_name=beautiful_prompt_reward", "--mode=predict", "--keep_rejected_rows"]) == 2
    assert "--keep_rejected_rows does not apply" in capsys.readouterr().err


def test_empty_stdin_is_one_clear_error(monkeypatch):
    _stdin(monkeypatch, "")
    with pytest.raises(ValueError, match=r"--tables=- read nothing from standard input"):
        read_table("-", required=["raw_prompt"])


def test_stdin_without_a_header_names_the_fix(monkeypatch):
    _stdin(monkeypatch, "a cat\n")
    with pytest.raises(ValueError, match=r"<stdin>: missing column\(s\) raw_prompt; found a cat\. .*--input_schema"):
        read_table("-", required=["raw_prompt"])
