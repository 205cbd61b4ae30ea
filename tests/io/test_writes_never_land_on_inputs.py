"""Nothing the project writes follows a symlink, lands on a file the run reads, or leaves a stale or torn pair
(output + rejects) behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from easynlp_bp.cli import main
from easynlp_bp.io import Reject, incomplete_marker_for, refuse_overwriting_inputs, rejects_path_for, write_table_and_rejects

ROWS = [{"raw_prompt": "a cat", "predictions": "a cat, 8k"}]


def test_rejects_symlink_is_replaced_not_followed(tmp_path):
    out = tmp_path / "pred.tsv"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    os.symlink(victim, rejects_path_for(str(out)))
    dangling = tmp_path / "other.tsv"
    os.symlink(tmp_path / "created_through_link", rejects_path_for(str(dangling)))
    for path in (out, dangling):
        write_table_and_rejects(str(path), ROWS, ["raw_prompt"], [Reject(2, "empty", "")], "in.tsv")
        assert not os.path.islink(rejects_path_for(str(path)))
    assert victim.read_text() == "keep me\n"
    assert not (tmp_path / "created_through_link").exists()
    assert json.loads(open(rejects_path_for(str(out))).readline())["row"] == 2


def test_no_rejects_means_no_rejects_file_and_no_stale_one(tmp_path):
    out = tmp_path / "pred.tsv"
    write_table_and_rejects(str(out), ROWS, ["raw_prompt"], [Reject(2, "empty", "")] * 50)
    assert len(open(rejects_path_for(str(out))).readlines()) == 50
    assert write_table_and_rejects(str(out), ROWS, ["raw_prompt"], []) is None
    assert not os.path.lexists(rejects_path_for(str(out)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.tsv"]  # no temporary files either


def test_an_output_that_is_an_input_is_refused(tmp_path):
    table = tmp_path / "in.tsv"
    table.write_text("a cat\n")
    link = tmp_path / "link.tsv"
    os.symlink(table, link)
    hard = tmp_path / "hard.tsv"
    os.link(table, hard)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    for output in (table, link, hard, tmp_path / "sub" / ".." / "in.tsv", model / "config.json"):
        with pytest.raises(ValueError, match="would overwrite .* which this run reads"):
            refuse_overwriting_inputs([str(output)], [str(table), str(model)])
    refuse_overwriting_inputs([str(tmp_path / "pred.tsv"), str(model / "pred.tsv")], [str(table), str(model)])


def test_predict_refuses_tables_equal_outputs_and_keeps_the_input(tmp_path, tiny_model_dir, capsys):
    table = tmp_path / "in.tsv"
    table.write_text("raw_prompt\na cat\n")
    code = main(["--app_name=beautiful_prompt", "--mode=predict", f"--tables={table}", f"--outputs={table}",
                 f"--checkpoint_dir={tiny_model_dir}"])
    assert code == 2 and "which this run reads" in capsys.readouterr().err
    assert table.read_text() == "raw_prompt\na cat\n"
    code = main(["--app_name=beautiful_prompt", "--mode=predict", f"--tables={table}",
                 f"--outputs={tiny_model_dir}/config.json", f"--checkpoint_dir={tiny_model_dir}"])
    assert code == 2 and json.loads((tiny_model_dir / "config.json").read_text())["model_type"] == "bloom"


def test_sft_refuses_to_overwrite_its_base_model(tmp_path, tiny_model_dir, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in tiny_model_dir.iterdir()}
    code = main(["--app_name=beautiful_prompt", "--mode=train", f"--checkpoint_dir={tiny_model_dir}",
                 f"--user_defined_parameters=pretrain_model_name_or_path={tiny_model_dir} default_data_size=40"])
    assert code == 2 and "overwrite the base model" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in tiny_model_dir.iterdir()} == before


WRITER = """
import sys, itertools
from easynlp_bp.io import Reject, write_table_and_rejects
out = sys.argv[1]
for i in itertools.count():
    n = 300 + (i % 7) * 50  # each pair: n rows in, tagged with the same run i in both files
    rows = [{"raw_prompt": f"run{i} row{r}"} for r in range(n - 40)]
    rejects = [Reject(r, f"run{i}", "") for r in range(40)]
    write_table_and_rejects(out, rows, ["raw_prompt"], rejects, "in")
    if i == 0:
        print("ready", flush=True)
"""


def test_a_kill_leaves_a_consistent_pair(tmp_path):
    """kill -9 at random moments of repeated writes: the output and its rejects always come from one run."""
    out = tmp_path / "pred.tsv"
    consistent = torn_marked = 0
    for attempt in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05 + 0.037 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rows = out.read_text().splitlines()
        rejects = [json.loads(line) for line in open(rejects_path_for(str(out)))]
        runs = {line.split()[0] for line in rows} | {r["reason"] for r in rejects}
        if os.path.exists(incomplete_marker_for(str(out))):
            torn_marked += 1  # killed between the two renames: said so, and the next write repairs it
            continue
        assert len(rejects) == 40 and len(runs) == 1, f"unmarked torn pair after kill {attempt}: {sorted(runs)[:4]}"
        consistent += 1
    assert consistent + torn_marked == 8  # how often a kill lands between the renames depends on the machine's load
    write_table_and_rejects(str(out), ROWS, ["raw_prompt"], [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.tsv"]  # the marker and the killed writes' temporary files are gone


def test_a_write_without_rejects_removes_what_killed_writes_left(tmp_path):
    """Temporary files of both halves of the pair (and a marker) left by killed writes are gone after the next
    write, even when that write has no rejects (the rejects writer then never runs)."""
    out = tmp_path / "pred.tsv"
    for name in (".pred.tsv.a1b2c3d4.tmp", ".pred.tsv.rejects.jsonl.e5f6g7h8.tmp", "pred.tsv.incomplete"):
        (tmp_path / name).write_text("left by a kill")
    write_table_and_rejects(str(out), ROWS, ["raw_prompt"], [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.tsv"]
