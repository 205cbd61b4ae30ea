"""The App base class and the app registry: an app is train / evaluate / predict over typed configs.

``App`` holds the plumbing every app shares, written once: parsing ``--user_defined_parameters`` into the
app's frozen params (and the ``<kind>_class`` keys that swap a pluggable class), presets for unset flags,
``--checkpoint_dir`` defaults, ``--tables`` counts, rejects files, output columns and ``eval_results.json``.
Constructors only parse; files are read when a mode runs.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional, Sequence

from easynlp_bp.arguments import EasyNLPArgs, parse_user_defined_parameters, split_user_defined_parameters
from easynlp_bp.components import resolve_component
from easynlp_bp.io import (
    Table, check_writable, refuse_overwriting_inputs, rejects_path_for, write_rejects, write_table_and_rejects,
)
from easynlp_bp.io.writers import write_json
from easynlp_bp.registry import Registry

logger = logging.getLogger(__name__)

STDOUT_OUTPUT = "-"  # --outputs=- writes the predictions table to standard output
REJECT_REASON_COLUMN = "reject_reason"  # --keep_rejected_rows: why a row has no predictions ("" when it has)
_OUTPUT_COLUMNS = ("predictions", "beams", "statuses", "warnings", "scores", REJECT_REASON_COLUMN)

APPS: Registry[type["App"]] = Registry("app")


def with_preset(preset: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The preset's values, replaced by every given (not ``None``) value: how every app fills unset settings."""
    return {**preset, **{key: value for key, value in given.items() if value is not None}}


def _flatten(parsed: Mapping[str, Any]) -> dict[str, Any]:
    """EasyNLP's parsed ``user_defined_parameters`` may nest keys (``{"app_parameters": {...}}``)."""
    flat = {}
    for key, value in parsed.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value))
        else:
            flat[key] = value
    return flat


class App:
    """Base of every ``--app_name``. Subclasses set ``modes``, ``params_cls`` and implement the modes.

    Example:
        >>> @APPS.register("echo")
        ... class EchoApp(App):
        ...     modes = ("predict",)
        ...     def predict(self): return 0
    """

    modes: ClassVar[tuple[str, ...]] = ()
    params_cls: ClassVar[type] = object
    description: ClassVar[str] = ""
    default_checkpoint_dir: ClassVar[Optional[str]] = None
    #: The algorithm's own config, given key by key in ``user_defined_parameters`` (PPO: ``PPOConfig``).
    config_cls: ClassVar[Optional[type]] = None
    #: Modes that read ``--prompt`` (one raw prompt given on the command line).
    prompt_modes: ClassVar[tuple[str, ...]] = ()
    #: Modes that write a predictions table (:meth:`write_predictions`): they take ``--outputs=-`` (stdout) and
    #: ``--keep_rejected_rows``.
    table_output_modes: ClassVar[tuple[str, ...]] = ()
    #: Pluggable classes: kind -> the default's "module:Class". ``<kind>_class=`` swaps in a subclass of it.
    components: ClassVar[Mapping[str, str]] = {}

    def __init__(self, args: EasyNLPArgs):
        self.args = args
        raw = self._raw_user_parameters(args.user_defined_parameters)
        self.component_specs = {kind: raw.pop(f"{kind}_class") for kind in self.components if f"{kind}_class" in raw}
        self.config_overrides = self._pop_config_keys(raw)
        self.params = parse_user_defined_parameters(raw, self.params_cls)

    # ----------------------------------------------------------------- parsing
    @staticmethod
    def _raw_user_parameters(value) -> dict[str, Any]:
        if isinstance(value, Mapping):
            return _flatten(value)
        return split_user_defined_parameters(value)

    def _pop_config_keys(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Typed values of the ``config_cls`` keys the user gave (validated now, combined with a preset later)."""
        if self.config_cls is None:
            return {}
        names = {f.name for f in dataclasses.fields(self.config_cls)}
        given = {key: raw.pop(key) for key in list(raw) if key in names}
        config = parse_user_defined_parameters(given, self.config_cls)
        return {key: getattr(config, key) for key in given}

    @classmethod
    def help_params(cls) -> list[type]:
        """The dataclasses whose fields are this app's ``user_defined_parameters`` keys (for ``--help``)."""
        return [cls.params_cls] + ([cls.config_cls] if cls.config_cls else [])

    # ----------------------------------------------------------------- running
    def run(self) -> Any:
        """Dispatch ``args.mode``; a mode this app lacks raises ``ValueError`` listing the ones it has."""
        if self.args.mode not in self.modes:
            raise ValueError(
                f"App {self.args.app_name!r} does not support --mode={self.args.mode}; "
                f"it supports: {', '.join(self.modes)}."
            )
        if self.args.prompt is not None and self.args.mode not in self.prompt_modes:
            raise ValueError(f"--prompt does not apply to --app_name={self.args.app_name} --mode={self.args.mode}; "
                             "it gives one raw prompt to --app_name=beautiful_prompt --mode=predict.")
        if self.args.mode not in self.table_output_modes:
            for given, flag in ((self.args.outputs == STDOUT_OUTPUT, "--outputs=-"),
                                (self.args.keep_rejected_rows, "--keep_rejected_rows")):
                if given:
                    raise ValueError(f"{flag} does not apply to --app_name={self.args.app_name} "
                                     f"--mode={self.args.mode}; it applies to the predictions table of "
                                     "--app_name=beautiful_prompt --mode=predict.")
        return getattr(self, self.args.mode)()

    def component(self, kind: str) -> type:
        """The class used for ``kind`` (``dataset``, ``model``, ``predictor``, ...): the user's or the default."""
        if kind not in self.components:
            raise KeyError(f"App {self.args.app_name!r} has no {kind!r} class; it has: {', '.join(self.components)}.")
        default = resolve_component(self.components[kind], kind, object)
        return resolve_component(self.component_specs.get(kind, default), kind, default)

    @property
    def checkpoint_dir(self) -> str:
        """``--checkpoint_dir``, else the app's default output directory."""
        return self.args.checkpoint_dir or self.default_checkpoint_dir

    # ----------------------------------------------------------------- tables
    def table_sources(self, mode: str, at_least: int, at_most: int, meaning: str) -> list[str]:
        """``--tables`` split, with a clear error when it holds fewer or more files than ``mode`` takes."""
        tables = self.args.table_list
        if not at_least <= len(tables) <= at_most:
            raise ValueError(f"--tables takes {meaning} for --mode={mode}; got {len(tables)} file(s): "
                             f"{self.args.tables or '(none)'}.")
        return tables

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

    # ----------------------------------------------------------------- run config
    def run_config(self, **resolved: Any) -> dict:
        """The resolved configuration of this run, as written to ``run_config.json``."""
        from easynlp_bp.serving.config import redact_secrets

        params = redact_secrets(asdict(self.params)) if is_dataclass(self.params) else {}
        return {"args": redact_secrets(self.args.to_dict()), "user_defined_parameters": params,
                "classes": dict(self.component_specs), "resolved": resolved}

    def write_run_config(self, directory: str, **resolved: Any) -> Path:
        path = Path(directory) / "run_config.json"
        write_json(str(path), self.run_config(**resolved))
        return path


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


__all__ = ["APPS", "App", "REJECT_REASON_COLUMN", "STDOUT_OUTPUT", "rows_with_rejects_in_place", "with_preset"]
