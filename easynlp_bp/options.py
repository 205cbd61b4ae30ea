"""Options declared once: a dataclass field carries its help, bounds, choices and where it is exposed.

:func:`option` is ``dataclasses.field`` plus the declaration every interface derives from (the CLI's
``--help``, the HTTP request schema, the OpenAI parameter mapping, the docs table);
:func:`check_options` is the one validator of those declarations (ranges, choices, types), called by a
params class's ``__post_init__``, so an option is checked the same way whether it came from the command line,
``user_defined_parameters``, a Python call's ``overrides`` or an HTTP request.

Example:
    >>> @dataclass(frozen=True)
    ... class Params:
    ...     top_p: float = option(0.95, "Nucleus sampling mass.", gt=0, le=1)
    ...     def __post_init__(self):
    ...         check_options(self)
    >>> Params(top_p=2.0)
    Traceback (most recent call last):
    ValueError: top_p=2.0 must be at most 1.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from easynlp_bp.finite_numbers import parse_float, parse_int

_BOUND_WORDS = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}


class OptionTypeError(TypeError, ValueError):
    """An option of the wrong type (a ``TypeError``, and a ``ValueError`` so every interface reports it as one
    bad option, like a value out of range)."""


@dataclass(frozen=True)
class OptionSpec:
    """What an option accepts and where it is exposed (``field.metadata["option"]``).

    Attributes:
        ge, gt, le, lt: numeric bounds (None: unbounded on that side).
        choices: the only accepted values of a text option.
        max_items: most entries of a list option.
        http: a per-request field of the server's ``/v1/beautify`` (and reported back in its ``options``).
        openai: the OpenAI request parameter that sets it (``n``, ``max_tokens``, ...), or None.
        fixed: set when the object is built (a device, a trust flag); a per-call override is refused.
        fix: what to do instead, appended to a bound's error (e.g. "use decoding=greedy").
        modes: the ``--mode`` values the option applies to (None: those of the class that declares it, see
            :func:`option_modes`), for the help grouped by mode.
    """

    ge: Optional[float] = None
    gt: Optional[float] = None
    le: Optional[float] = None
    lt: Optional[float] = None
    choices: Optional[tuple] = None
    max_items: Optional[int] = None
    http: bool = False
    openai: Optional[str] = None
    fixed: bool = False
    fix: Optional[str] = None
    modes: Optional[tuple[str, ...]] = None

    def bounds(self) -> dict[str, float]:
        """The set numeric bounds by pydantic's names (``ge``, ``gt``, ``le``, ``lt``)."""
        return {name: getattr(self, name) for name in _BOUND_WORDS if getattr(self, name) is not None}

    def describe(self) -> str:
        """The bounds and choices in words, e.g. ``"0 < x <= 1"`` or ``"one of sample, greedy, beam"``."""
        parts = []
        if self.choices:
            parts.append("one of " + ", ".join(map(str, self.choices)))
        lower = ("<=", self.ge) if self.ge is not None else ("<", self.gt) if self.gt is not None else None
        upper = ("<=", self.le) if self.le is not None else ("<", self.lt) if self.lt is not None else None
        if lower and upper:
            parts.append(f"{_number(lower[1])} {lower[0]} x {upper[0]} {_number(upper[1])}")
        elif lower:
            parts.append(f"x {lower[0].replace('<', '>')} {_number(lower[1])}")
        elif upper:
            parts.append(f"x {upper[0]} {_number(upper[1])}")
        if self.max_items is not None:
            parts.append(f"at most {self.max_items} items")
        return "; ".join(parts)


def option(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING,
           repr: bool = True, **spec: Any) -> Any:
    """A dataclass field with ``help`` and an :class:`OptionSpec` built from ``spec`` (bounds, choices, exposure)."""
    metadata = {"help": help, "option": OptionSpec(**spec)}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, repr=repr, metadata=metadata)
    return field(default=default, repr=repr, metadata=metadata)


def spec_of(f: dataclasses.Field) -> OptionSpec:
    """The field's :class:`OptionSpec` (an empty one for plain fields)."""
    return f.metadata.get("option") or OptionSpec()


def options_where(params_cls: type, **wanted: Any) -> list[dataclasses.Field]:
    """Fields of ``params_cls`` whose spec has every attribute in ``wanted`` (e.g. ``http=True``), in order."""
    return [f for f in dataclasses.fields(params_cls)
            if all(getattr(spec_of(f), key) == value for key, value in wanted.items())]


def option_modes(params_cls: type, f: dataclasses.Field) -> Optional[tuple[str, ...]]:
    """The ``--mode`` values option ``f`` of ``params_cls`` applies to: its own ``modes=``, else the
    ``option_modes`` class attribute of the class that declares it (a subclass adds keys of other modes to its
    bases' keys); None: every mode."""
    if spec_of(f).modes is not None:
        return spec_of(f).modes or None  # modes=(): every mode, whatever its class declares
    for klass in params_cls.__mro__:
        if f.name in vars(klass).get("__annotations__", {}):
            return vars(klass).get("option_modes")
    return None


def options_by_mode(params_cls: type) -> list[tuple[Optional[tuple[str, ...]], list[dataclasses.Field]]]:
    """``params_cls``'s fields grouped by the modes they apply to (:func:`option_modes`), in declaration order
    of each group's first field; the group of every mode (None) first."""
    groups: dict[Optional[tuple[str, ...]], list[dataclasses.Field]] = {}
    for f in dataclasses.fields(params_cls):
        groups.setdefault(option_modes(params_cls, f), []).append(f)
    return sorted(groups.items(), key=lambda item: item[0] is not None)


def check_options(params: Any, prefix: str = "") -> None:
    """Check every declared field of the dataclass instance ``params``: type, choices, bounds, list length.

    Raises:
        ValueError: naming the field as the user writes it (``prefix`` + name), the value and what is accepted.
    """
    hints = typing.get_type_hints(type(params))
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if value is None:
            continue
        name = f"{prefix}{f.name}"
        check_type(name, value, hints.get(f.name))
        spec = spec_of(f)
        if spec.choices is not None and value not in spec.choices:
            raise ValueError(f"{name}={value!r} is not one of {', '.join(map(str, spec.choices))}.")
        if spec.max_items is not None and len(value) > spec.max_items:
            raise ValueError(f"{name} has {len(value)} entries; at most {spec.max_items} are allowed.")
        for bound, limit in spec.bounds().items():
            if not _within(value, bound, limit):
                fix = f"; {spec.fix}" if spec.fix else ""
                raise ValueError(f"{name}={value!r} must be {_BOUND_WORDS[bound]} {_number(limit)}{fix}.")


BOOLEAN_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def parse_boolean(text: str) -> Optional[bool]:
    """``True``/``False`` for a yes/no word of :data:`BOOLEAN_WORDS` (any case), ``None`` for anything else:
    the one reading of a boolean in flags, ``user_defined_parameters`` and environment variables."""
    return BOOLEAN_WORDS.get(text.strip().lower())


def convert_option_text(raw: str, annotation: Any, key: str) -> Any:
    """The text ``raw`` (a command line's or a config's value) as the type ``annotation`` that ``key`` declares."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Union and len(args) == 1:
        if raw.lower() in ("none", "null", ""):
            return None
        annotation = args[0]
    if annotation is bool:
        value = parse_boolean(raw)
        if value is None:
            raise ValueError(f"user_defined_parameters {key}={raw!r} is not a boolean; use true or false.")
        return value
    if annotation in (int, float):
        try:
            return parse_int(raw) if annotation is int else parse_float(raw)
        except ValueError as err:
            raise ValueError(
                f"user_defined_parameters {key}={raw!r} is not a valid {annotation.__name__}: {err}."
            ) from err
    if typing.get_origin(annotation) is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw



def check_type(name: str, value: Any, annotation: Any) -> None:
    """``TypeError`` unless ``value`` fits ``annotation`` (int, float, bool, str, list[str], Optional of those)."""
    wanted = _plain_type(annotation)
    if wanted is None:
        return
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        list: lambda v: isinstance(v, (list, tuple)),
    }[wanted](value)
    if not ok:
        raise OptionTypeError(f"{name}={value!r} is not a valid {wanted.__name__}.")


def _plain_type(annotation: Any) -> Optional[type]:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is list:
        return list
    return annotation if annotation in (bool, int, float, str) else None


def _within(value: float, bound: str, limit: float) -> bool:
    return {"ge": value >= limit, "gt": value > limit, "le": value <= limit, "lt": value < limit}[bound]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else str(value)


def options_table(params_cls: type, names: Optional[Sequence[str]] = None) -> str:
    """A Markdown table of ``params_cls``'s options: name, default, accepted values, HTTP/OpenAI names, help."""
    rows = ["| key | default | accepted | HTTP | OpenAI | what it does |", "|---|---|---|---|---|---|"]
    for f in dataclasses.fields(params_cls):
        if names is not None and f.name not in names:
            continue
        spec = spec_of(f)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")  # type: ignore[misc]
        default = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        cells = [f"`{f.name}`", f"`{default}`", spec.describe(), "yes" if spec.http else "",
                 f"`{spec.openai}`" if spec.openai else "", f.metadata.get("help", "").replace("|", "\\|")]
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(rows)


def unknown_names_message(unknown: Sequence[str], valid: Sequence[str], what: str, where: str = "") -> str:
    """``"Unknown <what> foo (did you mean: food?)<where>. Valid: ..."`` for names that are not declared."""
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=2, cutoff=0.75)
        hints.append(f"{name} (did you mean: {', '.join(close)}?)" if close else name)
    return f"Unknown {what} {', '.join(hints)}{where}. Valid: {', '.join(valid)}."


def convert_options(values: dict, params_cls: type) -> dict:
    """``values`` with text given for a non-text option converted as the command line would (``"42"`` -> 42)."""
    hints = typing.get_type_hints(params_cls)
    return {key: convert_option_text(value, hints[key], key) if isinstance(value, str) and key in hints
            and hints[key] is not str else value for key, value in values.items()}
