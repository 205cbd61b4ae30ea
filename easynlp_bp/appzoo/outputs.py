"""What every app writes besides models: rejects files, prediction tables and their columns, ``eval_results.json``.

A mixin of :class:`easynlp_bp.appzoo.base.App` (it reads ``self.args`` and ``self.checkpoint_dir``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional, Sequence

from easynlp_bp.distributed import is_main_process
from easynlp_bp.io import (
    Table, check_writable, refuse_overwriting_inputs, rejects_path_for, write_rejects, write_table_and_rejects,
)
from easynlp_bp.io.writers import write_json

logger = logging.getLogger(__name__)

STDOUT_OUTPUT = "-"  # --outputs=- writes the predictions table to standard output
REJECT_REASON_COLUMN = "reject_reason"  # --keep_rejected_rows: why a row has no predictions ("" when it has)
_OUTPUT_COLUMNS = ("predictions", "beams", "statuses", "warnings", "scores", REJECT_REASON_COLUMN)


class AppOutputs:
    """Output helpers of an app: where rejects, predictions and evaluation results go."""

    def log_rejects(self, table: Table, directory: Optional[str] = None) -> Optional[str]:
        """Write ``table``'s rejects to ``<directory>/rejects.<file>.jsonl`` (default the checkpoint dir); in a
        distributed run the first process writes it."""
        if not table.rejects:
            return None
        path = Path(directory or self.checkpoint_dir) / f"rejects.{Path(table.source).name}.jsonl"
        if is_main_process():
            write_rejects(str(path), table.rejects, table.source)
        logger.warning("%s: %d of %d rows rejected, listed in %s.", table.source, len(table.rejects), table.n_read, path)
        return str(path)

    def read_each(self, sources: Sequence[str], read: Callable[[str], Table]) -> list[Table]:
        """Each of ``sources`` read by ``read``; a table's rejects are listed before the next table is read."""
        tables = []
        for source in sources:
            tables.append(read(source))
            self.log_rejects(tables[-1])
        return tables

    def output_columns(self, default: str, allowed: Sequence[str]) -> tuple[list[str], list[str]]:
        """(``--output_schema`` columns, ``--append_cols`` columns); an unknown output column is an error."""
        output_schema = [c.strip() for c in (self.args.output_schema or default).split(",") if c.strip()]
        for name in output_schema:
            if name not in allowed:
                raise ValueError(f"--output_schema column {name!r} is unknown; use {' and/or '.join(allowed)}.")
        append = [c.strip() for c in (self.args.append_cols or "").split(",") if c.strip()]
        return output_schema, append

    @staticmethod
    def check_append_cols(table: Table, append: Sequence[str]) -> None:
        for name in append:
            if table.rows and name not in table.rows[0]:
                raise ValueError(f"--append_cols column {name!r} is not in {table.source}.")

    def write_predictions(self, rows: list[dict], table: Table, columns: Sequence[str]) -> dict:
        """Rows to ``--outputs`` (and rejects beside it), to stdout (``--outputs=-``, via the CLI), or back to the
        CLI to print; rows in = out + rejects. ``table``'s ``row_numbers`` are those of ``rows``.

        ``--keep_rejected_rows``: the rejects are written in place, with empty predictions and a last
        ``reject_reason`` column, so output row i is input row i (EasyNLP users line them up by position)."""
        columns, rejects = list(columns), table.rejects
        if self.args.keep_rejected_rows:
            rows = rows_with_rejects_in_place(rows, table, columns)
            columns, rejects = columns + [REJECT_REASON_COLUMN], []
        result = {"rows": rows, "columns": columns, "rejects": table.rejects, "read": table.n_read}
        if self.args.outputs == STDOUT_OUTPUT:
            for reject in rejects:
                logger.warning("%s row %d rejected: %s", table.source, reject.row, reject.reason)
            return {**result, "print_table": {"rows": rows, "columns": columns}}
        if not self.args.outputs:
            return {**result, "print_rows": [r for r in rows if not r.get(REJECT_REASON_COLUMN)]}
        rejects_path = write_table_and_rejects(self.args.outputs, rows, columns, rejects, table.source)
        logger.info("Wrote %d rows to %s and %d rejects%s (read %d).", len(rows), self.args.outputs,
                    len(table.rejects), f" to {rejects_path}" if rejects_path else "", table.n_read)
        return {**result, "outputs": self.args.outputs}

    @property
    def eval_results_path(self) -> Path:
        """``--outputs``, else ``<checkpoint_dir>/eval_results.json``."""
        return Path(self.args.outputs or Path(self.checkpoint_dir) / "eval_results.json")

    def log_eval_rejects(self, table: Table) -> Optional[str]:
        """An evaluated table's rejects go beside the results (``<results>.rejects.jsonl``), never into the
        model directory that evaluate only reads."""
        if not table.rejects:
            return None
        path = rejects_path_for(str(self.eval_results_path))
        write_rejects(path, table.rejects, table.source)
        logger.warning("%s: %d of %d rows rejected, listed in %s.", table.source, len(table.rejects), table.n_read, path)
        return path

    def check_outputs_writable(self, reads: Sequence[str] = ()) -> None:
        """Fail before any work when ``--outputs`` cannot be written (:func:`easynlp_bp.io.check_writable`) or
        would land on a file this run reads: a ``--tables`` file or a file of a model folder in ``reads``."""
        if self.args.outputs and self.args.outputs != STDOUT_OUTPUT:
            check_writable(self.args.outputs)
            refuse_overwriting_inputs([self.args.outputs, rejects_path_for(self.args.outputs)],
                                      [*self.args.table_list, *reads])

    def write_eval_results(self, results: dict, is_main_process: bool = True) -> Path:
        """``--outputs``, else ``<checkpoint_dir>/eval_results.json`` (written by the main process only)."""
        out_path = self.eval_results_path
        if is_main_process:
            write_json(str(out_path), results)  # strict JSON: a NaN metric is written as null
        return out_path


def rows_with_rejects_in_place(rows: Sequence[dict], table: Table, columns: Sequence[str]) -> list[dict]:
    """``rows`` (numbered by ``table.row_numbers``) and ``table.rejects`` merged in input order: a reject becomes a
    row with its input columns where they were read, empty ``columns`` otherwise, and its reason in
    ``reject_reason``."""
    if len(rows) != len(table.row_numbers):
        raise ValueError(f"{len(rows)} predicted rows for {len(table.row_numbers)} row numbers; the table's rows "
                         "must be the predicted ones (see split_rejected_rows).")
    numbered = [(number, {**row, REJECT_REASON_COLUMN: ""}) for number, row in zip(table.row_numbers, rows)]
    for reject in table.rejects:
        placeholder = {c: None for c in columns}  # an empty TSV cell, JSON null
        placeholder.update({k: v for k, v in (reject.fields or {}).items() if k not in _OUTPUT_COLUMNS})
        numbered.append((reject.row, {**placeholder, REJECT_REASON_COLUMN: reject.reason}))
    return [row for _, row in sorted(numbered, key=lambda pair: pair[0])]
