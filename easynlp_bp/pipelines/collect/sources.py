"""Read a raw prompt corpus (JSONL, JSON, CSV, TSV, TXT one prompt a line, parquet, a saved or hub HF
dataset) into rows ``{"row", "prompt", "image"?, scores?, "raw_prompt"?}`` with per-row rejects."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

from easynlp_bp.io.readers import Table, float_field_validator, read_table

TEXT_FIELD_CANDIDATES = ("prompt", "text", "Prompt", "caption", "detailed")
IMAGE_FIELD_CANDIDATES = ("image", "image_path", "img", "file_name")
SCORE_FIELDS = ("aesthetic_score", "pick_score")


def _read_lines(path: Path) -> Table:
    table = Table(source=str(path))
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                table.reject(number, "line is not valid UTF-8; re-encode the file as UTF-8", raw.decode("latin-1"))
                continue
            table.keep(number, {"prompt": text})
    return table


def _read_hub(name: str, config: Optional[str], split: str, max_rows: int) -> Table:
    import datasets

    loaded = datasets.load_dataset(name, config, split=split if not max_rows else f"{split}[:{max_rows}]")
    table = Table(source=f"{name}:{config}" if config else name)
    for number, row in enumerate(loaded, start=1):
        table.keep(number, dict(row))
    return table


def _pick(found: Sequence[str], given: Optional[str], candidates: Sequence[str], what: str,
          source: str, required: bool) -> Optional[str]:
    if given:
        if given not in found:
            raise ValueError(f"{source}: no column {given!r} for the {what}; found {', '.join(found) or 'none'}.")
        return given
    name = next((c for c in candidates if c in found), None)
    if name is None and required:
        raise ValueError(
            f"{source}: no {what} column among {', '.join(found) or 'none'}; name it with "
            f"text_field=<column> (looked for {', '.join(candidates)})."
        )
    return name


def read_corpus(source: str, text_field: Optional[str] = None, image_field: Optional[str] = None,
                raw_prompt_field: Optional[str] = None, dataset_config: Optional[str] = None,
                dataset_split: str = "train", max_rows: int = 0) -> Table:
    """Read ``source`` into normalised rows; rows with no usable text or a bad score are rejects.

    Args:
        source: a file, a directory saved by ``datasets``, or a hub dataset id (with ``dataset_config``,
            e.g. ``poloclub/diffusiondb`` + ``2m_random_1k``, for users with a hub).
        text_field: the prompt column (default: the first of prompt, text, Prompt, caption, detailed).
        image_field: the image column (paths, bytes, PIL images or data: URLs); default: image if present.
        raw_prompt_field: when given, the corpus already holds pairs: this column is the low-quality side.
        max_rows: read at most this many rows (0: all).

    Raises:
        FileNotFoundError: ``source`` does not exist. ValueError: a named column is missing.
    """
    path = Path(source)
    if dataset_config:
        table = _read_hub(source, dataset_config, dataset_split, max_rows)
    elif path.is_file() and path.suffix.lower() == ".txt":
        table = _read_lines(path)
    else:
        table = read_table(source)
    if max_rows and len(table.rows) + len(table.rejects) > max_rows:
        table.rows, table.row_numbers = table.rows[:max_rows], table.row_numbers[:max_rows]
        table.rejects = [r for r in table.rejects if r.row <= (table.row_numbers[-1] if table.row_numbers else 0)]
    found = list(dict.fromkeys(key for row in table.rows[:1000] for key in row))
    text = _pick(found, text_field, TEXT_FIELD_CANDIDATES, "prompt text", table.source, required=True)
    image = _pick(found, image_field, IMAGE_FIELD_CANDIDATES, "image", table.source, required=False)
    raw = _pick(found, raw_prompt_field, (), "low-quality prompt", table.source, required=False) \
        if raw_prompt_field else None
    validators = [float_field_validator(name, required=False) for name in SCORE_FIELDS if name in found]
    rows, numbers = table.rows, table.row_numbers
    table.rows, table.row_numbers = [], []
    for number, row in zip(numbers, rows):
        reason = next((r for r in (_text_problem(row.get(name), name) for name in (text, raw) if name) if r), None)
        reason = reason or next((r for r in (v(row) for v in validators) if r), None)
        if reason:
            table.reject(number, f"read: {reason}", row if not image else {k: v for k, v in row.items() if k != image})
            continue
        out = {"row": number, "prompt": " ".join(row[text].split())}
        if raw:
            out["raw_prompt"] = " ".join(row[raw].split())
        if image and not _missing(row.get(image)):
            out["image"] = row[image]
        out.update({name: row[name] for name in SCORE_FIELDS if not _missing(row.get(name))})
        table.keep(number, out)
    table.rejects.sort(key=lambda r: r.row)
    return table


def _missing(value: object) -> bool:
    """None, an empty string, or the NaN that pandas puts in empty cells."""
    return value is None or (isinstance(value, str) and not value) or (isinstance(value, float) and math.isnan(value))


def _text_problem(value: object, name: str) -> Optional[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"field {name!r} is missing"
    if not isinstance(value, str):
        return f"field {name!r} is not text ({type(value).__name__})"
    if not value.strip():
        return f"field {name!r} is empty"
    return None
