"""What EasyNLP scripts pass that this project spells differently or has no use for.

EasyNLP's parser (``easynlp/utils/arguments.py``) ignores unknown flags; ours rejects them so that a typo
fails with "did you mean". To keep EasyNLP command lines running anyway, this module lists every flag
EasyNLP defines: aliases map onto our flags, and flags with no meaning here are accepted with one warning
line that says why. Its sequence-generation ``user_defined_parameters`` keys are mapped the same way.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

logger = logging.getLogger(__name__)

# EasyNLP's second spelling of a flag -> our field (EasyNLP defines both names on one argument).
FLAG_ALIASES: dict[str, str] = {
    "checkpoint_path": "checkpoint_dir",
    "train_batch_size": "micro_batch_size",
    "wd": "weight_decay",
    "mn": "max_grad_norm",
}


@dataclass(frozen=True)
class IgnoredFlag:
    """An EasyNLP flag accepted for compatibility that changes nothing here (``reason`` says why)."""

    name: str
    reason: str
    is_switch: bool = False  # store_true in EasyNLP: given without a value
    allowed: Optional[tuple[str, ...]] = None  # values that are harmless to ignore; others are errors


_PAI_TF = "PAI-TF/ODPS cluster setting; runs here are launched by accelerate"
IGNORED_FLAGS: tuple[IgnoredFlag, ...] = (
    IgnoredFlag("export_tf_checkpoint_type", "no TensorFlow export: checkpoints are HF safetensors directories"),
    IgnoredFlag("worker_cpu", "CPU threads are torch's default; --worker_gpu=0 is the CPU switch"),
    IgnoredFlag("distributed_backend", "accelerate picks nccl on GPUs and gloo on CPU", allowed=("nccl", "gloo")),
    IgnoredFlag("local_rank", "the rank comes from the LOCAL_RANK environment variable (torchrun/accelerate)"),
    IgnoredFlag("master_port", "the launcher chooses the port (set MASTER_PORT to fix it)"),
    IgnoredFlag("user_script", "apps are chosen with --app_name"),
    IgnoredFlag("user_entry_file", "apps are chosen with --app_name"),
    IgnoredFlag("buckets", "OSS buckets are not read; give local paths"),
    IgnoredFlag("odps_config", "ODPS tables are not read; give local files"),
    IgnoredFlag("modelzoo_base_dir", "models resolve through modelzoo/index.json, local dirs or hub ids"),
    IgnoredFlag("do_lower_case", "the tokenizer saved with the model decides casing", is_switch=True),
    IgnoredFlag("save_all_checkpoints", "HF Trainer keeps the last two checkpoints", is_switch=True),
    IgnoredFlag("optimizer_type", "training always uses AdamW", allowed=("AdamW", "adamw")),
    IgnoredFlag("optimizer", "training always uses AdamW", allowed=("AdamW", "adamw")),
    IgnoredFlag("label_enumerate_values", "labels are regression scores or text, not classes"),
    IgnoredFlag("use_amp", "mixed precision is user_defined_parameters bf16=auto (on with a CUDA GPU or a CPU with native bf16)",
                is_switch=True),
    IgnoredFlag("use_torchacc", "torchacc is not supported", is_switch=True),
    IgnoredFlag("data_threads", "data loading runs in the main process"),
    IgnoredFlag("predict_slice_size", "batch predict reads the whole table; batch_size sets the batch"),
    IgnoredFlag("predict_queue_size", "batch predict has no reader queue"),
    IgnoredFlag("predict_thread_num", "batch predict has no reader threads"),
    IgnoredFlag("predict_table_read_thread_num", "batch predict has no reader threads"),
    IgnoredFlag("restore_works_dir", _PAI_TF),
    IgnoredFlag("ps_hosts", _PAI_TF),
    IgnoredFlag("chief_hosts", _PAI_TF),
    IgnoredFlag("job_name", _PAI_TF),
    IgnoredFlag("task_index", _PAI_TF),
    IgnoredFlag("task_count", _PAI_TF),
    IgnoredFlag("is_chief", _PAI_TF),
    IgnoredFlag("worker_hosts", _PAI_TF),
)
IGNORED_FLAG_DEST_PREFIX = "ignored_easynlp_flag__"


def warn_ignored_flags(given: Mapping[str, Any]) -> list[str]:
    """Log one warning per ignored EasyNLP flag that was given; returns the warning lines.

    Raises:
        ValueError: a flag whose value would change the run if it were honoured (``--optimizer_type=SGD``).
    """
    by_name = {flag.name: flag for flag in IGNORED_FLAGS}
    lines = []
    for name, value in given.items():
        flag = by_name[name]
        if flag.allowed is not None and str(value) not in flag.allowed:
            raise ValueError(
                f"--{name}={value} is not supported: {flag.reason}. Drop the flag (or use {flag.allowed[0]})."
            )
        shown = f"--{name}" if flag.is_switch else f"--{name}={value}"
        lines.append(f"{shown} has no meaning here and is ignored ({flag.reason}).")
    for line in lines:
        logger.warning(line)
    return lines


# ----------------------------------------------------------------- user_defined_parameters
# EasyNLP's sequence_generation keys -> our PredictorParams field. EasyNLP counts decoder lengths in
# new tokens for decoder-only models (max_length = prompt length + max_decoder_length).
UDP_KEY_ALIASES: dict[str, str] = {
    "max_decoder_length": "max_new_tokens",
    "min_decoder_length": "min_new_tokens",
}
UDP_IGNORED_KEYS: dict[str, str] = {
    "copy": "EasyNLP's copy mode restricts outputs to input tokens; a beautifier adds words by design",
    "max_encoder_length": "raw prompts longer than max_input_chars are rejected per row, never truncated",
    "language": "the model's language is fixed by its training data (the published models know English)",
    "service": "EasyNLP's serving switch; serve with --mode=serve",
}
# EasyNLP's get_application_predictor gets user_defined_parameters parsed into this shape.
NESTED_UDP_GROUPS = ("app_parameters", "model_parameters")


def flatten_parsed_parameters(parsed: Mapping[str, Any]) -> dict[str, Any]:
    """EasyNLP's parsed dict (``{"k": "v", "app_parameters": {...}, "model_parameters": {...}}``) made flat."""
    flat: dict[str, Any] = {}
    for key, value in parsed.items():
        if key in NESTED_UDP_GROUPS:
            if not isinstance(value, Mapping):
                raise ValueError(f"user_defined_parameters[{key!r}] must be a dict, got {value!r}.")
            for inner_key, inner_value in value.items():
                if inner_key in flat:
                    raise ValueError(f"user_defined_parameters gives {inner_key!r} twice (top level and {key}).")
                flat[inner_key] = inner_value
        elif key in flat:
            raise ValueError(f"user_defined_parameters gives {key!r} twice.")
        else:
            flat[key] = value
    return flat


def translate_easynlp_keys(raw: Mapping[str, Any], valid: Iterable[str]) -> dict[str, Any]:
    """Map EasyNLP's seq-gen keys onto ``valid`` names; warn about (and drop) those with no meaning here.

    A key the params class itself declares is never translated. Giving both spellings is an error.
    """
    valid = set(valid)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        target = UDP_KEY_ALIASES.get(key)
        if key not in valid and target in valid:
            if target in raw:
                raise ValueError(
                    f"user_defined_parameters gives both {key} (EasyNLP's name) and {target}; keep one."
                )
            logger.info("user_defined_parameters %s=%s is EasyNLP's name for %s.", key, value, target)
            out[target] = value
        elif key not in valid and key in UDP_IGNORED_KEYS:
            logger.warning("user_defined_parameters %s=%s has no meaning here and is ignored (%s).",
                           key, value, UDP_IGNORED_KEYS[key])
        else:
            out[key] = value
    return out
