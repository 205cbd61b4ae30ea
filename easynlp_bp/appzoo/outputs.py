"""What every app writes besides models: rejects files, prediction tables and their columns, ``eval_results.json``.

A mixin of :class:`easynlp_bp.appzoo.base.App` (it reads ``self.args`` and ``self.checkpoint_dir``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

from easynlp_bp.io import (
    Table, check_writable, refuse_overwriting_inputs, rejects_path_for, write_rejects, write_table_and_rejects,
)
from easynlp_bp.io.writers import write_json

logger = logging.getLogger(__name__)


class AppOutputs:
    """Output helpers of an app: where rejects, predictions and evaluation results go."""

    def log_rejects(self, table: Table, directory: Optional[str] = None) -> Optional[str]:
        """Write ``table``'s rejects to ``<directory>/rejects.<file>.jsonl`` (default the checkpoint dir)."""
        if not table.rejects:
            return None
        path = Path(directory or self.checkpoint_dir) / f"rejects.{Path(table.source).name}.jsonl"
        write_rejects(str(path), table.rejects, table.source)
        logger.warning("%s: %d of %d rows rejected, listed in %s.", table.source, len(table.rejects), table.n_read, path)
        return str(path)

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
        """Rows to ``--outputs`` (and rejects beside it), or back to the CLI to print; rows in = out + rejects."""
        result = {"rows": rows, "columns": list(columns), "rejects": table.rejects, "read": table.n_read}
        if not self.args.outputs:
            return {**result, "print_rows": rows}
        rejects_path = write_table_and_rejects(self.args.outputs, rows, columns, table.rejects, table.source)
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
        if self.args.outputs:
            check_writable(self.args.outputs)
            refuse_overwriting_inputs([self.args.outputs, rejects_path_for(self.args.outputs)],
                                      [*self.args.table_list, *reads])

    def write_eval_results(self, results: dict, is_main_process: bool = True) -> Path:
        """``--outputs``, else ``<checkpoint_dir>/eval_results.json`` (written by the main process only)."""
        out_path = self.eval_results_path
        if is_main_process:
            write_json(str(out_path), results)  # strict JSON: a NaN metric is written as null
        return out_path
