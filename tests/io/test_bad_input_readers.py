"""Hostile tables for the one reader every app uses, and for the writers: nothing lost, nothing corrupted.

The corpus is built here: Excel-style BOMs, Windows/old-Mac line ends, RFC 4180 CSV with quoted newlines,
non-finite and non-ASCII numbers, values that would break TSV lines. Rows in = rows kept + rejects.
"""
import json
import os
import stat

import pytest

from easynlp_bp.io import read_table, write_table
from easynlp_bp.io.readers import float_field_validator
from easynlp_bp.io.writers import to_json

BOM = b"\xef\xbb\xbf"


def _read(path, **kwargs):
    return read_table(str(path), required=["raw_prompt"], text_fields=["raw_prompt"], **kwargs)


@pytest.mark.parametrize("name,content,schema", [
    ("headerless.tsv", BOM + b"a cat\nan owl\n", "raw_prompt:str:1"),
    ("header.tsv", BOM + b"raw_prompt\tid\na cat\t1\nan owl\t2\n", None),
    ("header.csv", BOM + b"raw_prompt,id\na cat,1\nan owl,2\n", None),
    ("rows.jsonl", BOM + b'{"raw_prompt": "a cat"}\n{"raw_prompt": "an owl"}\n', None),
    ("rows.json", BOM + b'[{"raw_prompt": "a cat"}, {"raw_prompt": "an owl"}]', None),
])
def test_utf8_bom_is_not_part_of_row_one_or_the_header(tmp_path, name, content, schema):
    path = tmp_path / name
    path.write_bytes(content)
    table = _read(path, input_schema=schema)
    assert [r["raw_prompt"] for r in table.rows] == ["a cat", "an owl"]
    assert table.rejects == []


@pytest.mark.parametrize("newline", [b"\r\n", b"\r", b"\n"])
@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl"])
def test_windows_unix_and_old_mac_line_ends(tmp_path, newline, suffix):
    lines = {
        ".tsv": [b"raw_prompt\tid", b"a cat\t1", b"an owl\t2"],
        ".csv": [b"raw_prompt,id", b"a cat,1", b"an owl,2"],
        ".jsonl": [b'{"raw_prompt": "a cat", "id": "1"}', b'{"raw_prompt": "an owl", "id": "2"}'],
    }[suffix]
    path = tmp_path / f"in{suffix}"
    path.write_bytes(newline.join(lines) + newline)
    table = _read(path)
    assert [(r["raw_prompt"], r["id"]) for r in table.rows] == [("a cat", "1"), ("an owl", "2")]
    assert table.rejects == []


def test_rfc4180_csv_quoted_newlines_commas_and_quotes_stay_in_one_field(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(
        b'raw_prompt,id\r\n'
        b'"a cat\r\non a sofa",1\r\n'               # quoted CRLF inside the field (Excel writes this)
        b'"an owl, at night ""moody""",2\r\n'
        b'only,three,columns\r\n'
        b'"caf\xe9",4\r\n'                           # not UTF-8: only this record is rejected
        b'a fox,5\r\n'
    )
    table = _read(path)
    assert [r["raw_prompt"] for r in table.rows] == ["a cat\r\non a sofa", 'an owl, at night "moody"', "a fox"]
    assert table.row_numbers == [2, 4, 7]  # the line each record starts on
    assert [(r.row, r.reason) for r in table.rejects] == [
        (5, "expected 2 columns (raw_prompt, id), found 3"),
        (6, "line is not valid UTF-8; re-encode the file as UTF-8"),
    ]
    assert table.n_read == 5


def test_unterminated_csv_quote_names_the_file_line_and_fix(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b'raw_prompt\n"a cat\nan owl\n')
    with pytest.raises(ValueError, match=r"in.csv: line \d+: not a valid CSV file .*RFC 4180"):
        _read(path)


@pytest.mark.parametrize("value,reason", [
    ("1_000", "is not a number"), ("\u0661\u0662", "is not a number"), ("\uff11\uff12", "is not a number"),
    ("Infinity", "is not finite"), ("-inf", "is not finite"), ("1e999", "is not finite"), ("NaN", "is not finite"),
    ("0x10", "is not a number"), ("", "is missing"), ("1e308", "is out of range"), ("-1e308", "is out of range"),
])
def test_label_columns_accept_plain_finite_decimals_only(tmp_path, value, reason):
    path = tmp_path / "in.tsv"
    path.write_text(f"raw_prompt\tscore\na cat\t{value}\nan owl\t 18.5 \n", encoding="utf-8")
    table = _read(path, validators=[float_field_validator("score")])
    assert [r["score"] for r in table.rows] == [18.5]
    assert [r.row for r in table.rejects] == [2] and reason in table.rejects[0].reason


def test_json_nan_and_infinity_literals_become_rejects_not_floats(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"raw_prompt": "a", "s": NaN}\n{"raw_prompt": "b", "s": Infinity}\n{"raw_prompt": "c", "s": 2}\n')
    table = _read(path, validators=[float_field_validator("s")])
    assert [r["raw_prompt"] for r in table.rows] == ["c"]
    assert [r.reason for r in table.rejects] == ["field 's'='NaN' is not finite", "field 's'='Infinity' is not finite"]


HOSTILE = ["tab\there", "new\nline", "carriage\rreturn", "crlf\r\nend", "form\x0cfeed", "sep\u2028line"]


def test_tsv_output_keeps_one_line_per_row_for_every_value_and_list_element(tmp_path):
    rows = [{"raw_prompt": text, "beams": [text, "b\tc", "d\re"]} for text in HOSTILE]
    path = tmp_path / "out.tsv"
    write_table(str(path), rows, ["raw_prompt", "beams"])
    data = path.read_bytes()
    assert data.count(b"\n") == len(rows) and b"\r" not in data
    with open(path, encoding="utf-8") as handle:  # universal newlines, as most readers do
        lines = handle.read().splitlines()
    assert len(lines) == len(rows)
    assert all(line.count("\t") == 1 for line in lines)
    back = read_table(str(path), input_schema="raw_prompt:str:1,beams:str:1")
    assert len(back.rows) == len(rows) and back.rejects == []


def test_csv_output_keeps_hostile_text_exactly_and_reads_back(tmp_path):
    rows = [{"raw_prompt": text} for text in HOSTILE]
    path = tmp_path / "out.csv"
    write_table(str(path), rows, ["raw_prompt"])
    assert [r["raw_prompt"] for r in read_table(str(path)).rows] == HOSTILE


def test_json_outputs_are_strict_json(tmp_path):
    path = tmp_path / "out.jsonl"
    write_table(str(path), [{"raw_prompt": "a", "score": float("nan")}, {"raw_prompt": "b", "score": float("inf")}],
                ["raw_prompt", "score"])
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert [json.loads(line)["score"] for line in text.splitlines()] == [None, None]
    assert to_json({"a": [1.0, float("-inf")]}) == '{"a": [1.0, null]}'


def test_outputs_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_table(str(tmp_path / "out.tsv"), [{"raw_prompt": "a"}], ["raw_prompt"])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.tsv").stat().st_mode) == 0o644


def test_a_lone_cr_stays_in_its_row_and_row_numbers_are_physical_lines(tmp_path):
    path = tmp_path / "in.tsv"
    path.write_bytes(b"raw_prompt\tid\r\na cat\rsitting\t1\r\n\r\nan owl\t2\n\na fox\t3\n")
    table = _read(path)
    assert [(n, r["raw_prompt"]) for n, r in zip(table.row_numbers, table.rows)] == [
        (2, "a cat\rsitting"), (4, "an owl"), (6, "a fox")]  # the lines an editor shows
    assert [(r.row, r.reason) for r in table.rejects] == [(3, "empty line"), (5, "empty line")]


@pytest.mark.parametrize("invisible", ["\x00", "\u200b", "\ufeff", "\u200b\x00 \u2060"])
@pytest.mark.parametrize("suffix", [".tsv", ".jsonl"])
def test_rows_of_only_invisible_characters_are_rejected(tmp_path, invisible, suffix):
    path = tmp_path / f"in{suffix}"
    lines = ["raw_prompt", "a cat", invisible, "an owl"] if suffix == ".tsv" else [
        json.dumps({"raw_prompt": text}) for text in ("a cat", invisible, "an owl")]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = _read(path)
    assert [r["raw_prompt"] for r in table.rows] == ["a cat", "an owl"]
    assert len(table.rejects) == 1 and table.rejects[0].row == (3 if suffix == ".tsv" else 2)
    assert "only invisible or control characters" in table.rejects[0].reason


def test_skip_first_line_warns_when_line_one_is_not_a_header(tmp_path, caplog):
    path = tmp_path / "in.tsv"
    path.write_text("a cat on a sofa\nan owl\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="easynlp_bp.io.readers"):
        table = read_table(str(path), input_schema="raw_prompt:str:1", skip_first_line=True)
    assert [r["raw_prompt"] for r in table.rows] == ["an owl"]
    assert "does not look like one" in caplog.text and "'a cat on a sofa'" in caplog.text
    caplog.clear()
    path.write_text("raw_prompt\nan owl\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="easynlp_bp.io.readers"):
        read_table(str(path), input_schema="raw_prompt:str:1", skip_first_line=True)
    assert caplog.text == ""


@pytest.mark.parametrize("name", ["x.tsv", "x.jsonl", "x.csv"])
def test_a_directory_named_like_a_table_is_an_error(tmp_path, name):
    (tmp_path / name).mkdir()
    (tmp_path / name / "data.tsv").write_text("raw_prompt\na cat\n")
    with pytest.raises(ValueError, match=f"--tables=.*{name} is a directory, not a"):
        _read(tmp_path / name)
