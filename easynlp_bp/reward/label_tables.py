"""RM training tables: labelled rows read with their checks (empty prompts and non-finite labels become rejects),
and the embedded default's rows, labelled by the heuristic stand-in scorer (not image-based scores)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

from easynlp_bp.distributed import is_main_process
from easynlp_bp.io import Table, read_table, write_table
from easynlp_bp.io.readers import float_field_validator

logger = logging.getLogger(__name__)


def read_reward_table(source: str, *, reward_type: str, label: Optional[str], prompt_field: str, raw_field: str,
                      max_chars: int, input_schema: Optional[str] = None, skip_first_line: bool = False) -> Table:
    """Read ``source``; rows with an empty prompt (or raw prompt, which only the pickscore RM reads) or a
    non-finite ``label`` (when given) become rejects."""
    fields = [prompt_field] + ([raw_field] if reward_type == "pickscore" else [])
    return read_table(source, input_schema=input_schema, skip_first_line=skip_first_line,
                      required=fields + ([label] if label else []), text_fields=fields, max_chars=max_chars,
                      validators=[float_field_validator(label)] if label else ())


def reward_input_texts(rows: Sequence[dict], reward_type: str, raw_field: str, prompt_field: str) -> list[str]:
    """The RM input text of each row (what a from-config backbone's tokenizer learns; EOS is a special token)."""
    from easynlp_bp.text.reward_formats import format_reward_input

    return [format_reward_input(reward_type, r.get(raw_field, ""), r[prompt_field], "") for r in rows]


def reward_rows_from_tables(tables: Sequence[Table]) -> tuple[list[dict], list[dict], dict]:
    """(train rows, dev rows, accounting) of ``tables`` = [train] or [train, dev], already read.

    Raises:
        ValueError: the train table has no usable row.
    """
    accounting = {table.source: {"read": table.n_read, "kept": len(table.rows), "rejected": len(table.rejects)}
                  for table in tables}
    if not tables[0].rows:
        raise ValueError(f"{tables[0].source}: no usable rows ({len(tables[0].rejects)} rejected); see the rejects file.")
    return tables[0].rows, (tables[1].rows if len(tables) > 1 else []), accounting


def embedded_default_reward_rows(n_pairs: int, seed: int, checkpoint_dir: str) -> tuple[list[dict], list[dict], dict]:
    """(train rows, dev rows, accounting): ``n_pairs`` embedded-default pairs, each with its heuristically labelled
    variants, split by whole pairs and written to ``<checkpoint_dir>/data``."""
    from easynlp_bp.default.heuristic_scorer import VARIANTS_PER_PAIR, make_reward_rows

    rows = make_reward_rows(n_pairs, seed=seed)
    # whole pairs: a pair's variants stay together
    n_dev = VARIANTS_PER_PAIR * max(10, n_pairs // 20)
    columns = ["raw_prompt", "prompt", "aesthetic_score", "pick_score"]
    data_dir = Path(checkpoint_dir) / "data"
    if is_main_process():  # every process has the same rows; two writers of one file collide
        write_table(str(data_dir / "train.jsonl"), rows[n_dev:], columns)
        write_table(str(data_dir / "dev.jsonl"), rows[:n_dev], columns)
    logger.warning(
        "No --tables: labelled %d embedded-default prompts with the HEURISTIC stand-in scorer "
        "(modifier counts, length, relevance; easynlp_bp/default/heuristic_scorer.py) into %s. These "
        "are not image-based aesthetic or PickScore labels; train on real labels for a real RM.",
        len(rows), data_dir,
    )
    return rows[n_dev:], rows[:n_dev], {"embedded_default_rows": len(rows), "labels": "heuristic stand-in"}
