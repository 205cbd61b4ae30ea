"""Write rows to TSV, CSV, JSONL or parquet (by extension) atomically, and rejects as JSONL.

Every JSON we write goes through :func:`to_json`: strict JSON (no ``NaN``/``Infinity``, which most JSON
parsers refuse; a non-finite float becomes ``null``, as JavaScript's ``JSON.stringify`` does).
"""
from __future__ import annotations

import contextlib
import csv
import glob
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, TextIO

from easynlp_bp.io.readers import Reject

# Characters that end a line for some reader (Python's str.splitlines, universal newlines, pandas): a TSV
# cell cannot hold them, so they become spaces (write JSONL to keep text exactly).
_TSV_BREAKS = re.compile("[\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by None, in nested dicts/lists too."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def to_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that always writes strict JSON (see the module docstring); ``kwargs`` go to dumps."""
    kwargs.setdefault("ensure_ascii", False)
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError:  # a NaN/inf somewhere: clean a copy (only then, to keep the common case cheap)
        return json.dumps(json_safe(value), allow_nan=False, **kwargs)


def _tsv_text(value: object) -> str:
    return _TSV_BREAKS.sub(" ", "" if value is None else str(value))


BEAM_SEPARATOR = "||"  # EasyNLP joins beams with "||" (no spaces)


def _cell(value: object) -> str:
    """One TSV cell: lists joined with ``"||"``; in TSV no value may break the line or the columns."""
    if isinstance(value, (list, tuple)):
        return BEAM_SEPARATOR.join(_tsv_text(v) for v in value)
    return _tsv_text(value)


def _csv_cell(value: object) -> str:
    """One CSV cell: quoting keeps tabs and newlines exactly (RFC 4180); lists joined with ``"||"``."""
    if isinstance(value, (list, tuple)):
        return BEAM_SEPARATOR.join("" if v is None else str(v) for v in value)
    return "" if value is None else str(value)


def file_mode_from_umask() -> int:
    """The mode ``open()`` would give a new file (0o666 less the umask); ``mkstemp`` always uses 0o600."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def _atomic_file(path: str, before_replace: Optional[Callable[[], None]] = None) -> Iterator[tuple[int, str]]:
    """(fd, temporary path) beside ``path``; on success the file replaces ``path`` (readers never see half a
    file; a symlink at ``path`` is replaced, never followed) with the mode ``open()`` would give it; on any error
    the temporary file is removed, and temporary files a killed earlier write of ``path`` left are removed first."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        yield fd, tmp
        os.chmod(tmp, file_mode_from_umask())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(path: str) -> None:
    """Remove the temporary files a killed earlier write of ``path`` left beside it (mkstemp adds 8 characters,
    so other files' names never match)."""
    target = Path(path)
    for stale in target.parent.glob(f".{glob.escape(target.name)}.????????.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


def write_table(path: str, rows: Sequence[dict], columns: Sequence[str],
                before_replace: Optional[Callable[[], None]] = None) -> None:
    """Write ``rows`` (only ``columns``, in order) to ``path``; the format follows the extension.

    TSV has no header (EasyNLP style, columns as ``--output_schema`` + ``--append_cols``), list values
    are joined with ``"||"`` as EasyNLP does. JSONL keeps lists as lists. The file appears only when complete
    (``before_replace`` runs just before it does).
    """
    suffix = Path(path).suffix.lower()
    with _atomic_file(path, before_replace) as (fd, tmp):
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            if suffix != ".parquet":
                write_rows(handle, rows, columns, suffix)
        if suffix == ".parquet":
            import pandas as pd

            pd.DataFrame([{c: row.get(c) for c in columns} for row in rows]).to_parquet(tmp)


def write_rows(handle: TextIO, rows: Iterable[dict], columns: Sequence[str], suffix: str = ".tsv") -> None:
    """Write ``rows`` (only ``columns``, in order) to the open text ``handle`` in the format of ``suffix``:
    ``.jsonl``/``.json`` (JSONL), ``.csv`` (with a header) or anything else as EasyNLP TSV (no header, lists
    joined with ``"||"``). ``--outputs=-`` writes this way to standard output."""
    if suffix in (".jsonl", ".json"):
        for row in rows:
            handle.write(to_json({c: row.get(c) for c in columns}) + "\n")
    elif suffix == ".csv":
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(row.get(c)) for c in columns])
    else:
        for row in rows:
            handle.write("\t".join(_cell(row.get(c)) for c in columns) + "\n")


def write_json(path: str, value: Any) -> None:
    """Write ``value`` as indented strict JSON to ``path`` atomically (readers never see half a file)."""
    _write_text_atomically(path, to_json(value, indent=2, default=str) + "\n")


def write_jsonl(path: str, records: Iterable[dict]) -> None:
    """Write ``records`` (each kept whole, any keys) as strict JSONL to ``path`` atomically."""
    _write_text_atomically(path, "".join(to_json(r, default=str) + "\n" for r in records))


def write_text_atomically(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: readers never see half a file; a symlink is replaced."""
    _write_text_atomically(path, text)


def _write_text_atomically(path: str, text: str) -> None:
    with _atomic_file(path) as (fd, _):
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)


def check_writable(path: str, *, directory: bool = False, flag: str = "--outputs") -> None:
    """Fail before any work when ``path`` cannot be written: a file path that is a directory, or a
    directory (the nearest existing parent) that this process may not write into.

    Args:
        directory: ``path`` is an output *directory* (created later), not a file.
    Raises:
        ValueError: with the path, the problem and the fix, naming ``flag``.
    """
    target = Path(path)
    if not directory and target.is_dir():
        raise ValueError(f"{flag}={path} is a directory; give a file path such as {target / 'predictions.tsv'}.")
    if directory and target.exists() and not target.is_dir():
        raise ValueError(f"{flag}={path} is a file; give a directory.")
    existing = target if directory and target.is_dir() else target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{flag}={path}: {existing} is not a directory; choose another path.")
    try:  # a real probe: permission bits, read-only mounts and ACLs all show up here
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".write_check.")
        os.close(fd)
        os.unlink(probe)
        if not directory and target.exists() and not os.access(target, os.W_OK):
            raise PermissionError(f"{target} is read-only")
    except OSError as err:
        raise ValueError(f"{flag}={path} is not writable ({err}); choose a writable path or fix the "
                         "permissions.") from err
def rejects_path_for(output_path: str) -> str:
    """Where the rejects of ``output_path`` go: ``<output>.rejects.jsonl``."""
    return f"{output_path}.rejects.jsonl"


def _rejects_text(rejects: Sequence[Reject], source: str) -> str:
    return "".join(to_json({"source": source, **reject.to_dict()}) + "\n" for reject in rejects)


def write_rejects(path: str, rejects: Iterable[Reject], source: str = "") -> int:
    """Write rejects as JSONL (``source``, ``row``, ``reason``, ``content``) atomically, replacing (never
    following) a symlink at ``path``; returns how many."""
    rejects = list(rejects)
    _write_text_atomically(path, _rejects_text(rejects, source))
    return len(rejects)


def write_table_and_rejects(path: str, rows: Sequence[dict], columns: Sequence[str], rejects: Sequence[Reject],
                            source: str = "") -> Optional[str]:
    """``rows`` to ``path`` and ``rejects`` to ``<path>.rejects.jsonl``, committed together.

    Both are written in full to temporary files first and renamed one right after the other. Two renames cannot
    be one atomic step, so the commit is marked: ``<path>.incomplete`` exists from before the first rename until
    after the second. A kill leaves the previous pair, the new pair, or the marker (the pair may be torn: run
    again) — never a torn pair that looks complete. No rejects: no rejects file, and a stale one from an earlier
    run is removed. Returns the rejects path or None.
    """
    rejects_path, marker = rejects_path_for(path), incomplete_marker_for(path)
    with contextlib.ExitStack() as stack:
        if rejects:
            fd, _ = stack.enter_context(_atomic_file(rejects_path))
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(_rejects_text(rejects, source))
        note = (f"{Path(path).name} and {Path(rejects_path).name} were being replaced when this run stopped: "
                "they may come from different runs. Run it again.\n")
        # the marker appears just before the first rename; the rejects' rename follows at the end of this block
        write_table(path, rows, columns, before_replace=lambda: _write_text_atomically(marker, note))
    if not rejects:
        remove_stale_temporaries(rejects_path)  # its writer never ran this time, so it cleaned nothing
        if os.path.lexists(rejects_path):
            os.unlink(rejects_path)
    os.unlink(marker)  # the pair is complete
    return rejects_path if rejects else None


def incomplete_marker_for(path: str) -> str:
    """The file that exists while ``path`` and its rejects file are being replaced (see
    :func:`write_table_and_rejects`)."""
    return f"{path}.incomplete"


def refuse_overwriting_inputs(outputs: Iterable[str], inputs: Iterable[str], flag: str = "--outputs") -> None:
    """``ValueError`` when a file the run writes is one it reads: the same path after resolving symlinks and
    ``..``, or the same file by device and inode (a hard link).

    Args:
        outputs: files this run writes (an output and its side files).
        inputs: files or directories this run reads (tables, model folders); an output inside an input folder
            is refused when it would replace a file that is already there.
    """
    for output in outputs:
        target = Path(output).resolve()
        for source in inputs:
            if not source:
                continue
            read = Path(source).resolve()
            inside = read.is_dir() and target.is_relative_to(read) and target.exists()
            if target == read or inside or (target.exists() and read.exists() and os.path.samefile(target, read)):
                raise ValueError(f"{flag}={output} would overwrite {source}, which this run reads; write the output "
                                 "to another path.")
