"""The EasyNLP command-line flags as one typed dataclass, and ``--user_defined_parameters`` parsing.

Each field is documented once (its ``help`` metadata); ``easynlp --help`` is generated from it. Apps
declare their own ``user_defined_parameters`` keys as a dataclass; :func:`parse_user_defined_parameters`
turns ``"key=value key2=value2"`` into that dataclass and rejects unknown keys, listing the valid ones.
"""
from __future__ import annotations

import dataclasses
import shlex
import typing
from dataclasses import dataclass
from typing import Any, Optional, Sequence, TypeVar, Union

from easynlp_bp.finite_numbers import require_finite
from easynlp_bp.options import (
    check_options, convert_option_text, option, options_by_mode, spec_of, unknown_names_message,
)


# The modes a flag applies to (``easynlp --help`` groups the flags by them); unset: every mode.
TRAIN, PREDICT, READS_TABLES = ("train",), ("predict",), ("train", "evaluate", "predict")


def _flag(default: Any, help: str, **spec: Any) -> Any:
    return option(default, help, **spec)


@dataclass
class EasyNLPArgs:
    """All EasyNLP flags. ``None`` means "not given": the app picks its documented default."""

    # What to run.
    mode: str = _flag("train", "What to do: train, evaluate or predict (apps list which they support).")
    app_name: Optional[str] = _flag(None, "Registered app to run, e.g. beautiful_prompt.")
    # Data in and out.
    tables: Optional[str] = _flag(
        None, "Input file(s), comma separated: train[,dev] for train; the table to read for evaluate/predict. "
              "'-' reads standard input (an EasyNLP TSV: a header line, or --input_schema).",
        modes=READS_TABLES)
    outputs: Optional[str] = _flag(None, "Output file for predict (TSV, JSONL, CSV or parquet by extension); "
                                         "'-' writes the TSV to standard output (logs stay on stderr).",
                                    modes=("evaluate", "predict"))
    input_schema: Optional[str] = _flag(
        None, "Columns of a header-less TSV, EasyNLP style: 'name:type:len,...', e.g. 'raw_prompt:str:1'.",
        modes=READS_TABLES)
    first_sequence: Optional[str] = _flag(None, "Input text column (default: raw_prompt).",
                                          modes=READS_TABLES)
    second_sequence: Optional[str] = _flag(None, "Second text column: the target prompt (default: prompt).",
                                            modes=READS_TABLES)
    label_name: Optional[str] = _flag(None, "Label column (reward models: aesthetic_score or pick_score).",
                                       modes=READS_TABLES)
    output_schema: Optional[str] = _flag(None, "Comma separated output columns, e.g. 'predictions,beams'.",
                                          modes=PREDICT)
    append_cols: Optional[str] = _flag(None, "Comma separated input columns copied to the output.",
                                        modes=PREDICT)
    skip_first_line: bool = _flag(False, "Skip the first line of a TSV (a header that the schema replaces).",
                                  modes=READS_TABLES)
    keep_rejected_rows: bool = _flag(
        False, "predict: one output row per input row, in input order; a rejected row gets empty predictions and "
               "its reason in a last column, reject_reason (no rejects file). Off: rejected rows go to "
               "<outputs>.rejects.jsonl.", modes=PREDICT)
    prompt: Union[str, list[str], None] = _flag(
        None, "beautiful_prompt predict: a raw prompt to beautify instead of --tables (printed, or written to "
              "--outputs); repeat it for several (--prompt 'a cat' --prompt 'a dog').", modes=PREDICT)
    # Model and checkpoints.
    checkpoint_dir: Optional[str] = _flag(
        None, "Where train writes the model (a HF model directory); what evaluate/predict load."
    )
    # Text on the command line; the Python API (get_application_predictor) may pass EasyNLP's parsed dict.
    user_defined_parameters: Union[str, dict, None] = _flag(
        None, "App options as 'key=value key2=value2' (see `easynlp --app_name=X --help`)."
    )
    resume_from_checkpoint: Optional[str] = _flag(
        None, "Resume training from a checkpoint directory, or 'last' for the newest one in --checkpoint_dir.",
        modes=TRAIN)
    # Optimisation.
    sequence_length: Optional[int] = _flag(None, "Maximum tokens per training example.", ge=1,
                                            modes=("train", "evaluate"))
    micro_batch_size: Optional[int] = _flag(None, "Examples per device per step.", ge=1, modes=TRAIN)
    epoch_num: Optional[float] = _flag(None, "Training epochs.", gt=0, modes=TRAIN)
    learning_rate: Optional[float] = _flag(None, "Peak learning rate.", ge=0, modes=TRAIN)
    weight_decay: Optional[float] = _flag(None, "AdamW weight decay.", ge=0, modes=TRAIN)
    max_grad_norm: Optional[float] = _flag(None, "Gradient clipping norm.", ge=0, modes=TRAIN)
    warmup_proportion: Optional[float] = _flag(None, "Share of steps with linear warm-up.", ge=0, le=1,
                                               modes=TRAIN)
    gradient_accumulation_steps: Optional[int] = _flag(None, "Micro-batches per optimizer step.", ge=1, modes=TRAIN)
    save_checkpoint_steps: Optional[int] = _flag(None, "Save a resumable checkpoint every N optimizer steps.", ge=1,
                                                 modes=TRAIN)
    logging_steps: Optional[int] = _flag(None, "Log every N optimizer steps.", ge=1, modes=TRAIN)
    random_seed: int = _flag(42, "Seed for data order, initialisation and sampling.", ge=0, le=2**32 - 1)
    # Distribution.
    worker_gpu: Optional[int] = _flag(
        None, "Processes per machine (GPUs; on a CPU-only machine, CPU processes with gloo). >1 launches "
              "accelerate. 0 runs on CPU even where a GPU exists (EasyNLP's CPU switch); -1: not given."
    )
    worker_count: int = _flag(1, "Number of machines for a multi-node run (with --worker_gpu).", ge=1)
    # What a run shows.
    verbose: bool = _flag(
        False, "Also show third-party libraries' warnings, INFO logs and progress bars (transformers' weight "
               "loading, datasets' map, hub downloads). Off: this project's log lines and bars only.")

    def __post_init__(self) -> None:
        require_finite(self, prefix="--")
        if self.worker_gpu == -1:  # EasyNLP's default, "not given"
            self.worker_gpu = None
        if self.worker_gpu is not None and self.worker_gpu < 0:
            raise ValueError(f"--worker_gpu={self.worker_gpu} must be 0 (CPU) or more.")
        check_options(self, prefix="--")  # every flag's declared bounds

    @property
    def table_list(self) -> list[str]:
        """``--tables`` split on commas (empty when not given)."""
        return [t.strip() for t in (self.tables or "").split(",") if t.strip()]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


P = TypeVar("P")


def split_user_defined_parameters(text: Optional[str]) -> dict[str, str]:
    """Split ``"a=1 b='x y'"`` into ``{"a": "1", "b": "x y"}``; a token without ``=`` is an error."""
    pairs: dict[str, str] = {}
    try:
        tokens = shlex.split(text or "")
    except ValueError as err:  # shlex: "No closing quotation"
        raise ValueError(f"--user_defined_parameters={text!r}: {err}; close the quote or drop it "
                         "(e.g. banned_words='blood,gore').") from err
    for token in tokens:
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
        raise ValueError(unknown_names_message(unknown, valid, "--user_defined_parameters key(s)", " for this app"))
    values = {
        key: (convert_option_text(value, hints[key], key) if isinstance(value, str) else value)
        for key, value in raw.items()
    }
    require_finite(values)  # also values given as Python floats (the Python API passes a dict)
    return params_cls(**values)


def describe_params(params_cls: type, modes: Optional[Sequence[str]] = None) -> str:
    """The ``user_defined_parameters`` keys under one heading per mode group (``--mode=train``, ...): each key
    with its default, accepted values and help (for ``--help``). ``modes``: the app's modes (a group's heading
    names only these)."""
    order = list(modes or ())
    groups = []
    for group_modes, group in options_by_mode(params_cls):
        shown = [m for m in order if m in group_modes] if group_modes and order else list(group_modes or ())
        every = not group_modes or (order and len(shown) == len(order))
        if every or not order:
            rank = (-1, 0) if every else (0, 0)  # (sorted() is stable: declaration order otherwise)
        else:
            rank = (min(order.index(m) for m in shown) if shown else len(order), -len(shown))
        heading = "every mode" if every else "--mode=" + "|".join(shown or group_modes)
        groups.append((rank, f" For {heading}:\n" + _describe_fields(group)))
    return "\n".join(text for _, text in sorted(groups, key=lambda g: g[0]))


def _describe_fields(fields: Sequence[dataclasses.Field]) -> str:
    lines = []
    for f in fields:
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = _show_default(f.default_factory())  # type: ignore[misc]
        else:
            default = "(required)"
        accepted = spec_of(f).describe()
        lines.append(f"  {f.name}={default}" + (f"  [{accepted}]" if accepted else "")
                     + f"\n      {f.metadata.get('help', '')}")
    return "\n".join(lines)


def _show_default(value: Any) -> Any:
    """A list default as the user writes it (``a,b``; empty: nothing)."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
