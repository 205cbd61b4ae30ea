"""The EasyNLP command-line flags as one typed dataclass, and ``--user_defined_parameters`` parsing.

Each field is documented once (its ``help`` metadata); ``easynlp --help`` is generated from it. Apps
declare their own ``user_defined_parameters`` keys as a dataclass; :func:`parse_user_defined_parameters`
turns ``"key=value key2=value2"`` into that dataclass and rejects unknown keys, listing the valid ones.
"""
from __future__ import annotations

import dataclasses
import shlex
import typing
from dataclasses import dataclass, field
from typing import Any, Optional, TypeVar

from easynlp_bp.finite_numbers import parse_float, parse_int, require_finite


def _flag(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class EasyNLPArgs:
    """All EasyNLP flags. ``None`` means "not given": the app picks its documented default."""

    # What to run.
    mode: str = _flag("train", "What to do: train, evaluate or predict (apps list which they support).")
    app_name: Optional[str] = _flag(None, "Registered app to run, e.g. beautiful_prompt.")
    # Data in and out.
    tables: Optional[str] = _flag(
        None, "Input file(s), comma separated: train[,dev] for train; the table to read for evaluate/predict."
    )
    outputs: Optional[str] = _flag(None, "Output file for predict (TSV, JSONL, CSV or parquet by extension).")
    input_schema: Optional[str] = _flag(
        None, "Columns of a header-less TSV, EasyNLP style: 'name:type:len,...', e.g. 'raw_prompt:str:1'."
    )
    first_sequence: Optional[str] = _flag(None, "Input text column (default: raw_prompt).")
    second_sequence: Optional[str] = _flag(None, "Second text column: the target prompt (default: prompt).")
    label_name: Optional[str] = _flag(None, "Label column (reward models: aesthetic_score or pick_score).")
    output_schema: Optional[str] = _flag(None, "Comma separated output columns, e.g. 'predictions,beams'.")
    append_cols: Optional[str] = _flag(None, "Comma separated input columns copied to the output.")
    skip_first_line: bool = _flag(False, "Skip the first line of a TSV (a header that the schema replaces).")
    # Model and checkpoints.
    checkpoint_dir: Optional[str] = _flag(
        None, "Where train writes the model (a HF model directory); what evaluate/predict load."
    )
    user_defined_parameters: Optional[str] = _flag(
        None, "App options as 'key=value key2=value2' (see `easynlp --app_name=X --help`)."
    )
    resume_from_checkpoint: Optional[str] = _flag(
        None, "Resume training from a checkpoint directory, or 'last' for the newest one in --checkpoint_dir."
    )
    # Optimisation.
    sequence_length: Optional[int] = _flag(None, "Maximum tokens per training example.")
    micro_batch_size: Optional[int] = _flag(None, "Examples per device per step.")
    epoch_num: Optional[float] = _flag(None, "Training epochs.")
    learning_rate: Optional[float] = _flag(None, "Peak learning rate.")
    weight_decay: Optional[float] = _flag(None, "AdamW weight decay.")
    max_grad_norm: Optional[float] = _flag(None, "Gradient clipping norm.")
    warmup_proportion: Optional[float] = _flag(None, "Share of steps with linear warm-up.")
    gradient_accumulation_steps: Optional[int] = _flag(None, "Micro-batches per optimizer step.")
    save_checkpoint_steps: Optional[int] = _flag(None, "Save a resumable checkpoint every N optimizer steps.")
    logging_steps: Optional[int] = _flag(None, "Log every N optimizer steps.")
    random_seed: int = _flag(42, "Seed for data order, initialisation and sampling.")
    # Distribution.
    worker_gpu: Optional[int] = _flag(
        None, "Processes per machine (GPUs; on a CPU-only machine, CPU processes with gloo). >1 launches "
              "accelerate. 0 runs on CPU even where a GPU exists (EasyNLP's CPU switch); -1: not given."
    )
    worker_count: int = _flag(1, "Number of machines for a multi-node run (with --worker_gpu).")

    def __post_init__(self) -> None:
        require_finite(self, prefix="--")
        if self.worker_gpu == -1:  # EasyNLP's default, "not given"
            self.worker_gpu = None
        if self.worker_gpu is not None and self.worker_gpu < 0:
            raise ValueError(f"--worker_gpu={self.worker_gpu} must be 0 (CPU) or more.")
        for name in ("micro_batch_size", "gradient_accumulation_steps", "sequence_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name}={value} must be at least 1.")
        if self.worker_count < 1:
            raise ValueError(f"--worker_count={self.worker_count} must be at least 1.")
        for name in ("learning_rate", "epoch_num", "weight_decay", "max_grad_norm"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"--{name}={value} must not be negative.")
        if self.warmup_proportion is not None and not 0 <= self.warmup_proportion <= 1:
            raise ValueError(f"--warmup_proportion={self.warmup_proportion} must lie in [0, 1].")

    @property
    def table_list(self) -> list[str]:
        """``--tables`` split on commas (empty when not given)."""
        return [t.strip() for t in (self.tables or "").split(",") if t.strip()]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


P = TypeVar("P")


def _convert(raw: str, annotation: Any, key: str) -> Any:
    """Convert the string ``raw`` to the type a params dataclass declares for ``key``."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Union and len(args) == 1:
        if raw.lower() in ("none", "null", ""):
            return None
        annotation = args[0]
    if annotation is bool:
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"user_defined_parameters {key}={raw!r} is not a boolean; use true or false.")
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


def split_user_defined_parameters(text: Optional[str]) -> dict[str, str]:
    """Split ``"a=1 b='x y'"`` into ``{"a": "1", "b": "x y"}``; a token without ``=`` is an error."""
    pairs: dict[str, str] = {}
    for token in shlex.split(text or ""):
        if "=" not in token:
            raise ValueError(
                f"--user_defined_parameters entry {token!r} is not key=value; write e.g. 'seed=42'."
            )
        key, value = token.split("=", 1)
        if key in pairs:
            raise ValueError(f"--user_defined_parameters gives {key!r} twice.")
        pairs[key] = value
    return pairs


def parse_user_defined_parameters(text: Optional[str] | dict, params_cls: type[P]) -> P:
    """Build ``params_cls`` from ``key=value`` text (or a dict); unknown keys raise ``ValueError``.

    A dict may have EasyNLP's parsed shape (``{"app_parameters": {...}, ...}``); EasyNLP's seq-gen keys
    are mapped or warned about (:mod:`easynlp_bp.easynlp_compat`).

    Raises:
        ValueError: an unknown key (the message lists the valid ones) or a value of the wrong type.
    """
    from easynlp_bp.easynlp_compat import flatten_parsed_parameters, translate_easynlp_keys

    raw = flatten_parsed_parameters(text) if isinstance(text, dict) else split_user_defined_parameters(text)
    hints = typing.get_type_hints(params_cls)
    valid = [f.name for f in dataclasses.fields(params_cls)]
    raw = translate_easynlp_keys(raw, valid)
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise ValueError(
            f"Unknown --user_defined_parameters key(s) {', '.join(unknown)} for this app. "
            f"Valid keys: {', '.join(valid)}."
        )
    values = {
        key: (_convert(value, hints[key], key) if isinstance(value, str) else value)
        for key, value in raw.items()
    }
    require_finite(values)  # also values given as Python floats (the Python API passes a dict)
    return params_cls(**values)


def describe_params(params_cls: type) -> str:
    """One line per ``user_defined_parameters`` key: name, default and help (for ``--help``)."""
    lines = []
    for f in dataclasses.fields(params_cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = _show_default(f.default_factory())  # type: ignore[misc]
        else:
            default = "(required)"
        lines.append(f"  {f.name}={default}\n      {f.metadata.get('help', '')}")
    return "\n".join(lines)


def _show_default(value: Any) -> Any:
    """A list default as the user writes it (``a,b``; empty: nothing)."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
