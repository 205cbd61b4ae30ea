"""Write rows to TSV, CSV, JSONL or parquet (by extension) atomically, and rejects as JSONL."""
from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Optional, Sequence

from easynlp_bp.io.readers import Reject


BEAM_SEPARATOR = "||"  # EasyNLP joins beams with "||" (no spaces)


def _cell(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return BEAM_SEPARATOR.join(_cell(v) for v in value)
    text = "" if value is None else str(value)
    return text.replace("\t", " ").replace("\n", " ")


def write_table(path: str, rows: Sequence[dict], columns: Sequence[str]) -> None:
    """Write ``rows`` (only ``columns``, in order) to ``path``; the format follows the extension.

    TSV has no header (EasyNLP style, columns as ``--output_schema`` + ``--append_cols``), list values
    are joined with ``"||"`` as EasyNLP does. JSONL keeps lists as lists. The file appears only when complete.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix.lower()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            if suffix in (".jsonl", ".json"):
                for row in rows:
                    handle.write(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False) + "\n")
            elif suffix == ".csv":
                writer = csv.writer(handle)
                writer.writerow(columns)
                for row in rows:
                    writer.writerow([_cell(row.get(c)) for c in columns])
            elif suffix == ".parquet":
                pass
            else:
                for row in rows:
                    handle.write("\t".join(_cell(row.get(c)) for c in columns) + "\n")
        if suffix == ".parquet":
            import pandas as pd

            pd.DataFrame([{c: row.get(c) for c in columns} for row in rows]).to_parquet(tmp)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def output_columns(
    output_schema: Optional[str], append_cols: Optional[str], *, known: Sequence[str], default: str,
    input_columns: Sequence[str], source: str,
) -> list[str]:
    """The columns predict writes, in EasyNLP's order: ``--output_schema`` then ``--append_cols``.

    Raises:
        ValueError: an output column the app does not produce, or an appended column not in the input.
    """
    outputs = [c.strip() for c in (output_schema or default).split(",") if c.strip()]
    for name in outputs:
        if name not in known:
            raise ValueError(f"--output_schema column {name!r} is unknown; this app writes {', '.join(known)}.")
    append = [c.strip() for c in (append_cols or "").split(",") if c.strip()]
    for name in append:
        if input_columns and name not in input_columns:
            raise ValueError(
                f"--append_cols column {name!r} is not in {source} (its columns: {', '.join(input_columns)})."
            )
    return outputs + append


def rejects_path_for(output_path: str) -> str:
    """Where the rejects of ``output_path`` go: ``<output>.rejects.jsonl``."""
    return f"{output_path}.rejects.jsonl"


def write_rejects(path: str, rejects: Iterable[Reject], source: str = "") -> int:
    """Write rejects as JSONL (``source``, ``row``, ``reason``, ``content``); returns how many."""
    rejects = list(rejects)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for reject in rejects:
            handle.write(json.dumps({"source": source, **reject.to_dict()}, ensure_ascii=False) + "\n")
    return len(rejects)
