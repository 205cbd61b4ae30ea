"""Hostile tables for ``beautiful_prompt`` train and evaluate: over-long rows become per-row rejects with
their file row (not an abort), non-finite pick scores are filtered (not kept), and every JSON written is strict."""
import json

import pytest

from easynlp_bp.cli import main

SUBJECTS = ["a cat", "a dog", "an owl", "a castle", "a ship", "a girl", "a forest", "a robot"]


def _strict(line):
    def refuse(name):
        raise AssertionError(f"non-JSON constant {name} written")

    return json.loads(line, parse_constant=refuse)


def _pair(i, **extra):
    s = SUBJECTS[i % 8]
    return {"raw_prompt": s, "prompt": f"{s}, highly detailed, 8k, art by artist {i}", "pick_score": 20.0, **extra}


@pytest.fixture(scope="module")
def hostile_sft(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_sft")
    long_raw = " ".join(["castle"] * 200)
    train = [_pair(i) for i in range(40)]
    train[5] = _pair(5, raw_prompt=long_raw)  # file row 6
    lines = [json.dumps(r) for r in train]
    lines[10] = lines[10].replace("20.0", "Infinity")   # row 11: a JSON extension Python accepts
    lines[11] = lines[11].replace("20.0", '"inf"')      # row 12
    lines[12] = lines[12].replace("20.0", "1e999")      # row 13: overflows to inf
    lines[13] = lines[13].replace("20.0", "NaN")        # row 14
    (root / "train.jsonl").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    dev = [_pair(i) for i in range(8)]
    dev[2] = _pair(2, raw_prompt=long_raw)  # file row 3
    (root / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev))
    out = root / "sft"
    code = main(["--app_name=beautiful_prompt", "--mode=train", f"--tables={root / 'train.jsonl'},{root / 'dev.jsonl'}",
                 f"--checkpoint_dir={out}", "--sequence_length=64", "--epoch_num=1", "--micro_batch_size=8",
                 "--save_checkpoint_steps=1000"])
    assert code == 0
    return root, out


def test_over_long_training_rows_are_rejected_with_their_file_row(hostile_sft):
    root, out = hostile_sft
    train_rejects = [_strict(line) for line in (out / "rejects.too_long.train.jsonl.jsonl").read_text().splitlines()]
    assert [r["row"] for r in train_rejects] == [6]
    assert "has" in train_rejects[0]["reason"] and "--sequence_length=64" in train_rejects[0]["reason"]
    dev_rejects = [_strict(line) for line in (out / "rejects.too_long.dev.jsonl.jsonl").read_text().splitlines()]
    assert [r["row"] for r in dev_rejects] == [3]
    data = json.loads((out / "run_config.json").read_text())["resolved"]
    assert data["data"]["too_long"] == 2
    assert data["result"]["train_pairs"] == 40 - 4 - 1  # 4 non-finite scores filtered, 1 too long


def test_non_finite_pick_scores_are_filtered_and_written_as_strict_json(hostile_sft):
    _, out = hostile_sft
    dropped = [_strict(line) for line in (out / "filtered_pairs.jsonl").read_text().splitlines()]
    # 1e999 is read as a float infinity; strict JSON writes it as null. The others stay their text.
    assert sorted(str(d["pick_score"]) for d in dropped) == sorted(["Infinity", "inf", "None", "NaN"])
    assert all(d["reason"].startswith("pick_score") for d in dropped)


def test_evaluate_rejects_an_over_long_row_with_its_file_row(hostile_sft, tmp_path):
    root, out = hostile_sft
    result = tmp_path / "eval.json"
    assert main(["--app_name=beautiful_prompt", "--mode=evaluate", f"--checkpoint_dir={out}",
                 f"--tables={root / 'dev.jsonl'}", f"--outputs={result}", "--sequence_length=64",
                 "--user_defined_parameters=eval_generation_samples=2 max_new_tokens=4"]) == 0
    results = _strict(result.read_text())
    assert (results["rows"], results["rejected"]) == (7, 1)
    rejects = [_strict(line) for line in (tmp_path / "eval.json.rejects.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rejects] == [3]
