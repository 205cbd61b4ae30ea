"""Read EasyNLP TSV, CSV, JSON/JSONL, parquet and HF ``datasets`` into rows, with per-row rejects.

Problems with the whole file (missing file, missing column) raise with the file, the field and a fix.
Problems with one row (wrong column count, bytes that are not UTF-8, an empty or over-long text, a
value a validator refuses) become a :class:`Reject` with the 1-based row number and the reason, so
that rows read = rows kept + rejects.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import unicodedata
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from easynlp_bp.finite_numbers import NotFiniteError, parse_float

logger = logging.getLogger(__name__)

RowValidator = Callable[[dict], Optional[str]]


@dataclass
class Reject:
    """A row that was not processed: where it was, why, and what it held."""

    row: int
    reason: str
    content: str = ""
    #: the row's columns when it was parsed before being rejected (so a kept-rows output can copy them)
    fields: Optional[dict] = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"row": self.row, "reason": self.reason, "content": self.content}


@dataclass
class Table:
    """Rows read from ``source`` (each with its 1-based ``row`` number in ``row_numbers``) and rejects."""

    source: str
    rows: list[dict] = field(default_factory=list)
    row_numbers: list[int] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    @classmethod
    def from_texts(cls, source: str, column: str, texts: Sequence[str]) -> "Table":
        """A table of ``texts`` in one ``column``, numbered from 1 (prompts given on the command line, demos)."""
        table = cls(source=source)
        for number, text in enumerate(texts, start=1):
            table.keep(number, {column: text})
        return table

    @property
    def n_read(self) -> int:
        return len(self.rows) + len(self.rejects)

    def keep(self, row_number: int, row: dict) -> None:
        self.rows.append(row)
        self.row_numbers.append(row_number)

    def reject(self, row_number: int, reason: str, content: object = "", fields: Optional[dict] = None) -> None:
        """Record row ``row_number`` as rejected; ``fields``: its columns (default: ``content`` when a dict)."""
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, default=str)
        if fields is None and isinstance(content, dict):
            fields = content
        self.rejects.append(Reject(row_number, reason, text[:500], dict(fields) if fields is not None else None))


def parse_input_schema(schema: str) -> list[str]:
    """``"raw_prompt:str:1,prompt:str:1"`` -> ``["raw_prompt", "prompt"]`` (EasyNLP's schema syntax)."""
    names = []
    for part in schema.split(","):
        name = part.strip().split(":")[0].strip()
        if not name:
            raise ValueError(f"--input_schema={schema!r} has an empty column name; write 'name:str:1,...'.")
        names.append(name)
    return names


STDIN_SOURCE = "-"  # --tables=- reads standard input (an EasyNLP TSV, as a file without extension)


class _StdinFile:
    """Standard input in the place of a file path (what the readers use of a ``Path``: its bytes and name)."""

    suffix = ""

    def read_bytes(self) -> bytes:
        return sys.stdin.buffer.read()

    def __str__(self) -> str:
        return "<stdin>"


_BOM = b"\xef\xbb\xbf"
# Line ends of a TSV/JSONL file: LF, or CRLF (Windows). A lone CR inside such a file is not a line end: it stays
# in its row (as in editors, so that reported row numbers are the lines a user sees). Only a file without any LF
# is read as an old-Mac file whose lines end in CR.
_LINE_END = re.compile(rb"\r?\n")
_OLD_MAC_LINE_END = re.compile(rb"\r")


def _read_bytes(path) -> bytes:
    """The file's bytes without a leading UTF-8 byte-order mark (Excel and Notepad write one)."""
    data = path.read_bytes()
    return data[len(_BOM):] if data.startswith(_BOM) else data


def _decode_lines(path: Path) -> Iterable[tuple[int, Optional[str], bytes]]:
    """Yield (1-based line number, decoded text or None if not UTF-8, raw bytes) per line.

    A BOM is dropped; LF and CRLF end a line, a lone CR does not (unless the file has no LF at all: old Mac);
    line numbers are physical lines (empty ones count).
    """
    data = _read_bytes(path)
    lines = (_LINE_END if b"\n" in data or b"\r" not in data else _OLD_MAC_LINE_END).split(data)
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line does not start another
    for number, raw in enumerate(lines, start=1):
        try:
            yield number, raw.decode("utf-8"), raw
        except UnicodeDecodeError:
            yield number, None, raw


def _csv_records(path: Path) -> Iterable[tuple[int, Optional[list[str]], str]]:
    """Yield (first line number, values or None if not UTF-8, text) per RFC 4180 record of a CSV file.

    The whole file goes through the ``csv`` module at once, so a quoted field may hold commas, quotes and
    newlines. Bytes that are not UTF-8 are kept as surrogates, so that only their record is rejected.
    """
    text = _read_bytes(path).decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise ValueError(
                f"{path}: line {reader.line_num}: not a valid CSV file ({err}); quote fields that hold commas, "
                "quotes or newlines (RFC 4180), or save it as TSV/JSONL."
            ) from err
        shown = ",".join(values)
        broken = any(_has_surrogates(v) for v in values)
        yield start, (None if broken else values), (_repair(shown) if broken else shown)
        start = reader.line_num + 1


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _repair(text: str) -> str:
    return text.encode("utf-8", errors="surrogateescape").decode("latin-1", errors="replace")


def _records(path: Path, delimiter: str) -> Iterable[tuple[int, Optional[list[str]], str]]:
    """(line number, values or None if not UTF-8, text) per record: TSV lines, or RFC 4180 CSV records."""
    if delimiter == ",":
        yield from _csv_records(path)
        return
    for number, text, raw in _decode_lines(path):
        if text is None:
            yield number, None, raw.decode("latin-1")
        else:
            yield number, text.split("\t"), text


def _read_delimited(path: Path, delimiter: str, columns: Optional[list[str]], skip_first_line: bool, table: Table):
    header = columns
    first = True
    for number, values, text in _records(path, delimiter):
        if first and (skip_first_line or columns is None):
            first = False
            if columns is None:
                if values is None:
                    raise ValueError(f"{path}: the header line is not UTF-8; save the file as UTF-8.")
                header = [h.strip() for h in values]
            else:
                _warn_unless_header(path, values, columns, text)
            continue
        first = False
        if values is None:
            table.reject(number, "line is not valid UTF-8; re-encode the file as UTF-8", text)
            continue
        if not text.strip():
            table.reject(number, "empty line", text)
            continue
        assert header is not None
        if len(values) != len(header):
            table.reject(
                number, f"expected {len(header)} columns ({', '.join(header)}), found {len(values)}", text
            )
            continue
        table.keep(number, dict(zip(header, values)))
    return header or []


_COLUMN_NAME = re.compile(r"^[A-Za-z_][\w.-]*$")


def _warn_unless_header(path: Path, values: Optional[list[str]], columns: list[str], text: str) -> None:
    """``--skip_first_line`` drops line 1 as a header: say so when it does not look like one (it names neither
    the ``--input_schema`` columns nor anything column-like), since a data row would be lost without a word."""
    names = [v.strip() for v in values or []]
    if names == columns or (names and all(_COLUMN_NAME.match(name) for name in names)):
        return
    logger.warning("%s: --skip_first_line skipped line 1 (%r) as a header, but it does not look like one (columns "
                   "%s). If it is a data row, drop --skip_first_line.", path, text[:80], ", ".join(columns))


def is_blank(text: str) -> bool:
    """True when ``text`` has nothing visible: only whitespace, control characters (NUL, escapes) and invisible
    format characters (zero-width space, BOM, bidi marks)."""
    return all(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def _constant_as_text(name: str) -> str:
    """``NaN``/``Infinity``/``-Infinity`` are not JSON: keep them as text, so a number check rejects the row
    ("... is not finite") instead of a NaN float slipping past ``>=`` filters into the outputs."""
    return name


def _read_json_rows(path: Path, table: Table) -> list[str]:
    names: dict[str, None] = {}
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"), parse_constant=_constant_as_text)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a UTF-8 JSON file ({err}); use a JSON list of objects or JSONL.") from err
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of objects, got {type(data).__name__}.")
        items: Iterable = ((i, obj, None) for i, obj in enumerate(data, start=1))
    else:
        def _lines():
            for number, text, raw in _decode_lines(path):
                if text is None:
                    yield number, None, "line is not valid UTF-8; re-encode the file as UTF-8"
                elif not text.strip():
                    yield number, None, "empty line"
                else:
                    try:
                        yield number, json.loads(text, parse_constant=_constant_as_text), None
                    except json.JSONDecodeError as err:
                        yield number, None, f"not valid JSON: {err.msg}"
        items = _lines()
    for number, obj, error in items:
        if error:
            table.reject(number, error)
            continue
        if not isinstance(obj, dict):
            table.reject(number, f"expected a JSON object, got {type(obj).__name__}", obj)
            continue
        names.update(dict.fromkeys(obj))
        table.keep(number, obj)
    return list(names)


def _read_dataset(source: str, table: Table) -> list[str]:
    import datasets

    path = Path(source)
    if path.is_dir() and (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        loaded = datasets.load_from_disk(source)
    else:
        loaded = datasets.load_dataset(source)
    if isinstance(loaded, datasets.DatasetDict):
        split = "train" if "train" in loaded else next(iter(loaded))
        loaded = loaded[split]
    for number, row in enumerate(loaded, start=1):
        table.keep(number, dict(row))
    return list(loaded.column_names)


_TABLE_SUFFIXES = (".tsv", ".txt", ".csv", ".json", ".jsonl", ".parquet")


def _read_file(path: Path, suffix: str, columns: Optional[list[str]], skip_first_line: bool, table: Table) -> list[str]:
    """Read one file by its extension into ``table``; returns the column names found."""
    if suffix in (".tsv", ".txt", ""):
        return _read_delimited(path, "\t", columns, skip_first_line, table)
    if suffix == ".csv":
        return _read_delimited(path, ",", columns, skip_first_line, table)
    if suffix in (".json", ".jsonl"):
        return _read_json_rows(path, table)
    if suffix == ".parquet":
        import pandas as pd

        frame = pd.read_parquet(path)
        for number, row in enumerate(frame.to_dict(orient="records"), start=1):
            table.keep(number, row)
        return list(frame.columns)
    raise ValueError(f"{path}: unknown file type {suffix!r}; use .tsv, .csv, .json, .jsonl or .parquet.")


def read_table(
    source: str,
    *,
    input_schema: Optional[str] = None,
    skip_first_line: bool = False,
    required: Sequence[str] = (),
    text_fields: Sequence[str] = (),
    max_chars: Optional[int] = None,
    validators: Sequence[RowValidator] = (),
) -> Table:
    """Read ``source`` into a :class:`Table`.

    Args:
        source: a file (``.tsv``/``.txt`` EasyNLP TSV, ``.csv``, ``.json``, ``.jsonl``, ``.parquet``), a
            directory saved by ``datasets``, a HF hub dataset id (for users with a hub), or ``-``: standard
            input, read as an EasyNLP TSV (the table's source is then ``<stdin>``).
        input_schema: column names of a header-less TSV (``name:type:len,...``). Without it, the first
            line of a TSV/CSV is its header.
        skip_first_line: skip a header line that ``input_schema`` replaces.
        required: columns that must exist (else ``ValueError`` naming file, column and fix).
        text_fields: columns that must be non-empty strings in every row (else a per-row reject).
        max_chars: longest text accepted in ``text_fields``; longer rows are rejected, not cut.
        validators: extra per-row checks returning a reason string to reject the row, or None.

    Raises:
        FileNotFoundError: ``source`` does not exist and is not a hub id.
        ValueError: a required column is missing, or the file cannot be parsed at all.
    """
    path = Path(source)
    columns = parse_input_schema(input_schema) if input_schema else None
    suffix = path.suffix.lower()
    if source == STDIN_SOURCE:
        table = Table(source=str(_StdinFile()))
        found = _read_delimited(_StdinFile(), "\t", columns, skip_first_line, table)
        if columns is None and not found:
            raise ValueError("--tables=- read nothing from standard input; pipe a TSV into the command, with a "
                             "header line or --input_schema (e.g. --input_schema=raw_prompt:str:1).")
    elif path.is_dir() and suffix in _TABLE_SUFFIXES:
        raise ValueError(f"--tables={source} is a directory, not a {suffix} file; give the file itself (a folder "
                         "is read only when a datasets save_to_disk wrote it, and its name has no table suffix).")
    elif path.is_file():
        table = Table(source=str(source))
        found = _read_file(path, suffix, columns, skip_first_line, table)
    elif path.is_dir() or ("/" in str(source) and not str(source).startswith((".", "/")) and not path.suffix):
        table = Table(source=str(source))
        found = _read_dataset(str(source), table)
    else:
        raise FileNotFoundError(f"Input table {source!r} does not exist; check --tables.")

    missing = [name for name in required if name not in found]
    if missing:
        raise ValueError(
            f"{table.source}: missing column(s) {', '.join(missing)}; found {', '.join(found) or 'none'}. "
            "Rename the columns, pass --input_schema for a header-less TSV, or set "
            "--first_sequence/--second_sequence/--label_name."
        )
    _check_rows(table, text_fields, max_chars, validators)
    return table


def _check_rows(table: Table, text_fields: Sequence[str], max_chars: Optional[int], validators) -> None:
    rows, numbers = table.rows, table.row_numbers
    table.rows, table.row_numbers = [], []
    for number, row in zip(numbers, rows):
        reason = None
        for name in text_fields:
            value = row.get(name)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                reason = f"field {name!r} is missing"
            elif not isinstance(value, str):
                reason = f"field {name!r} is not text ({type(value).__name__})"
            elif is_blank(value):
                reason = (f"field {name!r} is empty" if not value.strip()
                          else f"field {name!r} holds only invisible or control characters ({value[:20]!r})")
            elif max_chars is not None and len(value) > max_chars:
                reason = f"field {name!r} has {len(value)} characters, more than the limit {max_chars}"
            if reason:
                break
        if reason is None:
            for validate in validators:
                reason = validate(row)
                if reason:
                    break
        if reason:
            table.reject(number, reason, row)
        else:
            table.keep(number, row)
    table.rejects.sort(key=lambda r: r.row)


# Scores and labels are small numbers (aesthetic 1-10, PickScore ~20); far beyond this, squaring them for a mean
# or an MSE overflows to inf and every statistic becomes NaN, so such a value is a broken row, not a label.
MAX_ABS_NUMBER = 1e12


def float_field_validator(name: str, required: bool = True, max_abs: float = MAX_ABS_NUMBER) -> RowValidator:
    """A validator that rejects rows whose ``name`` is not a finite number (NaN, inf, ``1_000``, text) or is
    larger in magnitude than ``max_abs`` (``1e308`` would overflow every mean and MSE computed from it).

    Numbers given as text must be plain ASCII decimals (see :mod:`easynlp_bp.finite_numbers`).
    """

    def validate(row: dict) -> Optional[str]:
        value = row.get(name)
        if value is None or value == "":
            return f"field {name!r} is missing" if required else None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return f"field {name!r}={value!r} is not a number"
        try:
            number = parse_float(value) if isinstance(value, str) else float(value)
        except NotFiniteError:
            return f"field {name!r}={value!r} is not finite"
        except ValueError:
            return f"field {name!r}={value!r} is not a number"
        if not math.isfinite(number):
            return f"field {name!r}={value!r} is not finite"
        if abs(number) > max_abs:
            return f"field {name!r}={value!r} is out of range (|value| <= {max_abs:g}); check the column"
        row[name] = number
        return None

    return validate
