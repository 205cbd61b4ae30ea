"""The RL stage's prompt rows: raw prompts (and optional reference prompts) read from tables or from the SFT
run's own data, with one table split into training and held-out prompts."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from easynlp_bp.io import Table, read_table

logger = logging.getLogger(__name__)


def read_prompt_rows(source: str, *, raw_column: str, prompt_column: str, max_chars: int,
                     input_schema: Optional[str] = None, skip_first_line: bool = False) -> tuple[list[dict], Table]:
    """``({"raw_prompt", "prompt"} rows, the table with its rejects)``; a missing reference prompt is ``None``.

    Rows whose raw prompt is empty, or whose raw or reference prompt is longer than ``max_chars``, are rejects.
    """
    def reference_not_too_long(row: dict):
        text = row.get(prompt_column)
        if isinstance(text, str) and len(text) > max_chars:
            return f"field {prompt_column!r} has {len(text)} characters, more than max_input_chars={max_chars}"
        return None

    table = read_table(source, input_schema=input_schema, skip_first_line=skip_first_line, required=[raw_column],
                       text_fields=[raw_column], max_chars=max_chars, validators=[reference_not_too_long])
    rows = [{"raw_prompt": r[raw_column], "prompt": r.get(prompt_column) or None} for r in table.rows]
    return rows, table


def sft_data_tables(sft_dir: str) -> list[str]:
    """``train.jsonl`` and ``dev.jsonl`` that an SFT run on the embedded default wrote into its folder."""
    tables = [str(Path(sft_dir) / "data" / "train.jsonl"), str(Path(sft_dir) / "data" / "dev.jsonl")]
    for table in tables:
        if not Path(table).exists():
            raise FileNotFoundError(f"No --tables and no {table} (the embedded default's data) in the SFT dir.")
    return tables


def hold_out(rows: list[dict], eval_size: int, seed: int, source: str) -> tuple[list[dict], list[dict]]:
    """(training prompts, held-out prompts) of one table; too few prompts leave none held out, with a warning."""
    from easynlp_bp.ppo.training_loop import hold_out_prompts

    train, dev = hold_out_prompts(rows, eval_size, seed)
    if dev:
        logger.info("Held out %d of the %d prompts of %s for evaluation (--tables=train,dev chooses them).",
                    len(dev), len(train) + len(dev), source)
    else:
        logger.warning("%s has %d prompts, too few to hold any out: no held-out evaluation "
                       "(give --tables=train,dev).", source, len(train))
    return train, dev
