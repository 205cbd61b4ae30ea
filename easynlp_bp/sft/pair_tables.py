"""SFT training tables: train/dev pair rows that remember their file row, the embedded default's generated pairs,
and the per-row rejections (filtered pairs, rows too long for ``--sequence_length``) listed next to the checkpoint.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from easynlp_bp.distributed import is_main_process
from easynlp_bp.io import Table, write_rejects, write_table
from easynlp_bp.io.writers import write_jsonl
from easynlp_bp.sft.data import PairFilterConfig, filter_pairs, too_long_rows

logger = logging.getLogger(__name__)

EMBEDDED_DEFAULT_SOURCE = "embedded default"


@dataclass
class PairRows:
    """One split's rows and, per row, where it came from: ``(source, 1-based file row)``.

    ``origins`` is None for generated rows (the embedded default); their reject entries are numbered by their
    position in ``rows``.
    """

    rows: list[dict] = field(default_factory=list)
    origins: Optional[list[tuple[str, int]]] = None

    @classmethod
    def from_table(cls, table: Table) -> "PairRows":
        return cls(list(table.rows), [(table.source, number) for number in table.row_numbers])

    def subset(self, indices: Sequence[int]) -> "PairRows":
        """The rows at ``indices`` (in that order), with their origins."""
        origins = None if self.origins is None else [self.origins[i] for i in indices]
        return PairRows([self.rows[i] for i in indices], origins)

    def origin(self, index: int) -> tuple[str, int]:
        return self.origins[index] if self.origins is not None else (EMBEDDED_DEFAULT_SOURCE, index + 1)


@dataclass
class SFTData:
    """Train and dev pairs, and the accounting written to the checkpoint card (rows read/kept/rejected)."""

    train: PairRows
    dev: PairRows
    accounting: dict

    def describe(self, table_names: Sequence[str]) -> str:
        """What the model was trained on, for its card: the tables, or the embedded default's pair count."""
        return ", ".join(table_names) or f"embedded default: {self.accounting.get('embedded_default_pairs')} generated pairs"


def sft_data_from_tables(tables: Sequence[Table]) -> SFTData:
    """``tables`` = [train] or [train, dev], already read (their rejects already listed)."""
    accounting = {table.source: {"read": table.n_read, "kept": len(table.rows), "rejected": len(table.rejects)}
                  for table in tables}
    dev = PairRows.from_table(tables[1]) if len(tables) > 1 else PairRows([], [])
    return SFTData(PairRows.from_table(tables[0]), dev, accounting)


def embedded_default_sft_data(n_pairs: int, seed: int, checkpoint_dir: str) -> SFTData:
    """``n_pairs`` generated pairs (a twentieth, at least 16, for dev), also written to ``<checkpoint_dir>/data``.

    Every process of a distributed run generates the same pairs; only the first writes the copy (two writers of
    one file would remove each other's temporary files)."""
    from easynlp_bp.default.pairs import make_pairs

    pairs = make_pairs(n_pairs, seed=seed)
    n_dev = max(16, len(pairs) // 20)
    if is_main_process():
        data_dir = Path(checkpoint_dir) / "data"
        write_table(str(data_dir / "train.jsonl"), pairs[n_dev:], ["raw_prompt", "prompt"])
        write_table(str(data_dir / "dev.jsonl"), pairs[:n_dev], ["raw_prompt", "prompt"])
        logger.info("No --tables: generated %d embedded-default pairs into %s.", len(pairs), data_dir)
    return SFTData(PairRows(pairs[n_dev:]), PairRows(pairs[:n_dev]), {"embedded_default_pairs": len(pairs)})


def pair_filter_config(settings: dict, seed: int) -> PairFilterConfig:
    """The filter of the resolved SFT ``settings`` (flags and keys as given, else the preset's)."""
    return PairFilterConfig(min_pick_score=settings["min_pick_score"], min_target_tokens=settings["min_target_tokens"],
                            short_target_tokens=settings["short_target_tokens"],
                            short_target_drop=settings["short_target_drop"], seed=seed)


def filter_training_pairs(pairs: PairRows, tokenizer, config: PairFilterConfig, target_field: str,
                          checkpoint_dir: str) -> PairRows:
    """The paper's pair filters; dropped pairs are listed in ``<checkpoint_dir>/filtered_pairs.jsonl``.

    Raises:
        ValueError: no pair is left.
    """
    rows = pairs.rows
    report = filter_pairs(rows, tokenizer, config, target_field)
    if report.dropped and is_main_process():
        path = Path(checkpoint_dir) / "filtered_pairs.jsonl"
        write_jsonl(str(path), ({"reason": reason, **rows[index]} for index, reason in report.dropped))
        logger.info("Data filter dropped %d of %d pairs (listed in %s).", len(report.dropped), len(rows), path)
    if not report.kept:
        raise ValueError("No training pairs left after filtering; see filtered_pairs.jsonl in --checkpoint_dir.")
    return pairs.subset(report.kept)


def reject_too_long(pairs: PairRows, tokenizer, sequence_length: int, first_sequence: str, checkpoint_dir: str,
                    accounting: dict) -> PairRows:
    """``pairs`` without the rows too long for ``sequence_length``; those go to
    ``<checkpoint_dir>/rejects.too_long.<table>.jsonl`` with their file row (one over-long row must not abort the
    run) and are counted in ``accounting["too_long"]``."""
    too_long = dict(too_long_rows(pairs.rows, tokenizer, sequence_length, first_sequence))
    accounting["too_long"] = accounting.get("too_long", 0) + len(too_long)
    if not too_long:
        return pairs
    by_source: dict[str, Table] = {}
    for index, reason in too_long.items():
        source, number = pairs.origin(index)
        by_source.setdefault(source, Table(source=source)).reject(number, reason, pairs.rows[index])
    for table in by_source.values() if is_main_process() else ():
        path = Path(checkpoint_dir) / f"rejects.too_long.{Path(table.source).name}.jsonl"
        write_rejects(str(path), table.rejects, table.source)
        logger.warning("%s: %d rows do not fit --sequence_length=%d; listed in %s.", table.source,
                       len(table.rejects), sequence_length, path)
    return pairs.subset([index for index in range(len(pairs.rows)) if index not in too_long])


def select_training_pairs(data: SFTData, tokenizer, settings: dict, seed: int, first_sequence: str,
                          second_sequence: str, checkpoint_dir: str) -> tuple[list[dict], list[dict]]:
    """(train rows, dev rows) to tokenise: the train pairs filtered (:func:`filter_training_pairs`), then both
    splits without the rows too long for ``settings["sequence_length"]`` (:func:`reject_too_long`)."""
    config = pair_filter_config(settings, seed)
    kept = filter_training_pairs(data.train, tokenizer, config, second_sequence, checkpoint_dir)
    length = settings["sequence_length"]
    train = reject_too_long(kept, tokenizer, length, first_sequence, checkpoint_dir, data.accounting)
    dev = reject_too_long(data.dev, tokenizer, length, first_sequence, checkpoint_dir, data.accounting)
    return train.rows, dev.rows


def reject_too_long_in_table(table: Table, tokenizer, sequence_length: int, first_sequence: str) -> None:
    """Move ``table``'s rows too long for ``sequence_length`` to its rejects, with their file row, in row order."""
    too_long = dict(too_long_rows(table.rows, tokenizer, sequence_length, first_sequence))
    if not too_long:
        return
    for index, reason in too_long.items():
        table.reject(table.row_numbers[index], reason, table.rows[index])
    keep = [i for i in range(len(table.rows)) if i not in too_long]
    table.rows, table.row_numbers = [table.rows[i] for i in keep], [table.row_numbers[i] for i in keep]
    table.rejects.sort(key=lambda r: r.row)
