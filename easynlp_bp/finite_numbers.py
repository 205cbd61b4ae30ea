"""One strict reading of numbers for options and label columns: ASCII decimals, finite values only.

Python's ``float()`` accepts ``nan``, ``inf``, ``1_000`` and non-ASCII digits (``"١٢"`` is 12.0); none of these is
a number a user means in an option or a label, and NaN passes silently through every ``<``/``>=`` check
(``nan >= 18.5`` is False, ``nan < 0`` is False too). So options and labels are read here, and every float
option of a config is checked with :func:`require_finite` where the config is built.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Mapping

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_NON_FINITE_WORDS = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


class NotFiniteError(ValueError):
    """A well-formed number that is NaN or infinite (``nan``, ``inf``, ``1e999``)."""


def parse_float(text: str) -> float:
    """``text`` as a finite float; raises ``ValueError`` (``NotFiniteError`` for NaN/inf) saying why.

    >>> parse_float(" 18.5 "), parse_float("1e-5")
    (18.5, 1e-05)
    """
    stripped = text.strip()
    if _NON_FINITE_WORDS.fullmatch(stripped):
        raise NotFiniteError(f"{text!r} is not a finite number")
    if not _DECIMAL.fullmatch(stripped):
        raise ValueError(f"{text!r} is not a number (write plain ASCII digits, e.g. 0.5 or 1e-5)")
    value = float(stripped)
    if not math.isfinite(value):
        raise NotFiniteError(f"{text!r} is not a finite number")
    return value


def finite_or_nan(value: object) -> float:
    """``value`` (a number or text) as a finite float, or NaN for anything else: NaN fails every comparison,
    so a filter written ``if not value >= threshold: drop`` drops it."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return math.nan
    try:
        number = parse_float(value) if isinstance(value, str) else float(value)
    except ValueError:
        return math.nan
    return number if math.isfinite(number) else math.nan


def parse_int(text: str) -> int:
    """``text`` as an int written in plain ASCII digits (no ``1_000``, no other scripts' digits)."""
    stripped = text.strip()
    if not _INTEGER.fullmatch(stripped):
        raise ValueError(f"{text!r} is not a whole number (write plain ASCII digits, e.g. 16)")
    return int(stripped)


def non_finite_fields(values: Any) -> list[str]:
    """Names of the float values of a dataclass instance (or mapping) that are NaN or infinite."""
    items: Mapping[str, Any] = (
        {f.name: getattr(values, f.name) for f in dataclasses.fields(values)}
        if dataclasses.is_dataclass(values) else values
    )
    return [name for name, value in items.items() if isinstance(value, float) and not math.isfinite(value)]


def require_finite(values: Any, prefix: str = "") -> None:
    """Raise ``ValueError`` naming every NaN/inf float option of ``values`` (a dataclass or mapping).

    ``prefix`` is put before each name in the message (``"--"`` for command-line flags).
    """
    bad = non_finite_fields(values)
    if bad:
        items = values if isinstance(values, Mapping) else {n: getattr(values, n) for n in bad}
        shown = ", ".join(f"{prefix}{name}={items[name]}" for name in bad)
        raise ValueError(f"{shown}: options must be finite numbers (NaN and infinity are not allowed).")
