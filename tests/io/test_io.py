"""Readers: bad input gives a clear error naming file and field, or a per-row reject; rows are never lost."""
import json

import pandas as pd
import pytest

from easynlp_bp.io import read_table, write_table
from easynlp_bp.io.readers import float_field_validator


def _read(path, **kwargs):
    return read_table(str(path), required=["raw_prompt"], text_fields=["raw_prompt"], max_chars=2000, **kwargs)


def test_tsv_rejects_are_per_row_and_rows_add_up(tmp_path):
    path = tmp_path / "in.tsv"
    path.write_bytes(
        b"raw_prompt\tprompt\n"
        b"a cat\ta cat, 8k\n"
        b"only one column\n"                  # wrong column count
        b"\ta dog, 8k\n"                      # empty prompt
        b"caf\xe9 latte\tx\n"                 # not UTF-8
        + ("x" * 10000).encode() + b"\ty\n"   # 10,000 characters
        b"a fox\ta fox, 4k\n"
    )
    table = _read(path)
    assert [r["raw_prompt"] for r in table.rows] == ["a cat", "a fox"]
    assert table.row_numbers == [2, 7]
    reasons = {r.row: r.reason for r in table.rejects}
    assert reasons[3] == "expected 2 columns (raw_prompt, prompt), found 1"
    assert reasons[4] == "field 'raw_prompt' is empty"
    assert "not valid UTF-8" in reasons[5]
    assert "10000 characters, more than the limit 2000" in reasons[6]
    assert table.n_read == 6


def test_schema_for_headerless_tsv(tmp_path):
    path = tmp_path / "in.tsv"
    path.write_text("1\ta cat\n2\ta dog\n")
    table = _read(path, input_schema="id:str:1,raw_prompt:str:1")
    assert table.rows == [{"id": "1", "raw_prompt": "a cat"}, {"id": "2", "raw_prompt": "a dog"}]


def test_missing_column_names_file_field_and_fix(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("text,score\na cat,1\n")
    with pytest.raises(ValueError, match=r"in.csv: missing column\(s\) raw_prompt; found text, score.*--first_sequence"):
        _read(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; check --tables"):
        _read(tmp_path / "nope.tsv")


def test_jsonl_csv_parquet_and_datasets(tmp_path):
    rows = [{"raw_prompt": "a cat", "prompt": "a cat, 8k"}, {"raw_prompt": "a dog", "prompt": "a dog, 4k"}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{bad json\n")
    table = _read(tmp_path / "a.jsonl")
    assert table.rows == rows and table.rejects[0].row == 3 and "not valid JSON" in table.rejects[0].reason
    pd.DataFrame(rows).to_csv(tmp_path / "a.csv", index=False)
    assert _read(tmp_path / "a.csv").rows == rows
    pd.DataFrame(rows).to_parquet(tmp_path / "a.parquet")
    assert _read(tmp_path / "a.parquet").rows == rows
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    assert _read(tmp_path / "ds").rows == rows


def test_float_validator_rejects_nan_inf_text(tmp_path):
    path = tmp_path / "in.jsonl"
    values = [1.5, "nan", "inf", "high", None, "2"]
    path.write_text("\n".join(json.dumps({"raw_prompt": "a", "pick_score": v}) for v in values))
    table = _read(path, validators=[float_field_validator("pick_score")])
    assert [r["pick_score"] for r in table.rows] == [1.5, 2.0]
    assert [r.row for r in table.rejects] == [2, 3, 4, 5]
    assert "is not finite" in table.rejects[0].reason and "is not a number" in table.rejects[2].reason


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".csv", ".parquet"])
def test_write_table_round_trip(tmp_path, suffix):
    rows = [{"raw_prompt": "a cat", "predictions": "a cat, 8k"}]
    path = tmp_path / f"out{suffix}"
    write_table(str(path), rows, ["raw_prompt", "predictions"])
    schema = "raw_prompt:str:1,predictions:str:1" if suffix == ".tsv" else None
    assert read_table(str(path), input_schema=schema).rows == rows
