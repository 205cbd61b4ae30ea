"""The evaluation table as JSON and Markdown (one row per method; image scores against the raw prompt)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

COLUMN_TITLES = {
    "pick_score": "PickScore", "aesthetic_score": "Aesthetic", "clip_score": "CLIPScore",
    "consistency": "Consistency", "subject_all": "Keeps all subject words", "subject_half": "Keeps ≥ half",
    "subject_mean": "Subject words kept", "clip_tokens_mean": "CLIP tokens", "over_77_rate": "> 77 tokens",
    "distinct_1": "Distinct-1", "distinct_2": "Distinct-2", "nsfw_rate": "NSFW rate",
}


def _cell(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown_table(table: Sequence[dict], columns: Sequence[str]) -> str:
    """A GitHub Markdown table of ``table`` rows (each with ``method``) over ``columns``."""
    titles = ["Method"] + [COLUMN_TITLES.get(c, c) for c in columns]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for row in table:
        lines.append("| " + " | ".join([row["method"]] + [_cell(row.get(c)) for c in columns]) + " |")
    return "\n".join(lines) + "\n"


def write_report(table: Sequence[dict], columns: Sequence[str], out_dir: str | Path, meta: dict) -> tuple[Path, Path]:
    """Write ``eval_table.json`` (rows + settings) and ``eval_table.md``; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "eval_table.json", out_dir / "eval_table.md"
    json_path.write_text(json.dumps({"table": list(table), "columns": list(columns), **meta}, indent=2,
                                    ensure_ascii=False), encoding="utf-8")
    notes = meta.get("notes", [])
    md_path.write_text(markdown_table(table, columns) + "".join(f"\n{n}" for n in notes) + "\n", encoding="utf-8")
    return json_path, md_path
