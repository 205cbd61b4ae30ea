"""The App base class and the app registry: an app is train / evaluate / predict over typed configs.

``App`` holds the plumbing every app shares, written once: parsing ``--user_defined_parameters`` into the
app's frozen params (and the ``<kind>_class`` keys that swap a pluggable class), presets for unset flags,
``--checkpoint_dir`` defaults, ``--tables`` counts, the input columns, and the end of a training run (finished model
folder and ``run_config.json``); rejects files, output columns and ``eval_results.json`` are :mod:`.outputs`.
Constructors only parse; files are read when a mode runs.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional

from easynlp_bp.arguments import EasyNLPArgs, parse_user_defined_parameters, split_user_defined_parameters
from easynlp_bp.appzoo.outputs import STDOUT_OUTPUT, AppOutputs
from easynlp_bp.components import COMPONENTS, resolve_component
from easynlp_bp.easynlp_compat import flatten_parsed_parameters
from easynlp_bp.io.writers import write_json
from easynlp_bp.registry import Registry

APPS: Registry[type["App"]] = Registry("app")
#: The modules whose classes register themselves in ``COMPONENTS`` (``@COMPONENTS.register``). They are imported
#: on the first class lookup, so their decorators run, and not before, so that ``--help`` loads no model code.
COMPONENT_MODULES = ("easynlp_bp.sft.data", "easynlp_bp.sft.evaluator", "easynlp_bp.models.causal_lm",
                     "easynlp_bp.models.reward_model", "easynlp_bp.reward.data", "easynlp_bp.reward.evaluator",
                     "easynlp_bp.prompting.predictor", "easynlp_bp.ppo.trainer")


def with_preset(preset: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The preset's values, replaced by every given (not ``None``) value: how every app fills unset settings."""
    return {**preset, **{key: value for key, value in given.items() if value is not None}}


class App(AppOutputs):
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
    #: Pluggable classes: kind -> the default's name in ``COMPONENTS``. ``<kind>_class=`` swaps in a subclass of it.
    components: ClassVar[Mapping[str, str]] = {}

    def __init__(self, args: EasyNLPArgs):
        self.args = args
        raw = self._raw_user_parameters(args.user_defined_parameters)
        self.component_specs = {kind: raw.pop(f"{kind}_class") for kind in self.components if f"{kind}_class" in raw}
        self.config_overrides = self._pop_config_keys(raw)
        self.given_params = frozenset(raw)  # the params keys the user gave (presets fill only the others)
        self.params = parse_user_defined_parameters(raw, self.params_cls)

    # ----------------------------------------------------------------- parsing
    @staticmethod
    def _raw_user_parameters(value) -> dict[str, Any]:
        if isinstance(value, Mapping):  # EasyNLP's parsed dict, possibly nested under app_parameters
            return flatten_parsed_parameters(value)
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
        for module in COMPONENT_MODULES:
            importlib.import_module(module)
        default = COMPONENTS.get(self.components[kind])
        return resolve_component(self.component_specs.get(kind, default), kind, default)

    @property
    def checkpoint_dir(self) -> str:
        """``--checkpoint_dir``, else the app's default output directory."""
        return self.args.checkpoint_dir or self.default_checkpoint_dir

    @property
    def first_sequence(self) -> str:
        """The raw prompt column: ``--first_sequence``, else ``raw_prompt``."""
        return self.args.first_sequence or "raw_prompt"

    @property
    def second_sequence(self) -> str:
        """The beautified prompt column: ``--second_sequence``, else ``prompt``."""
        return self.args.second_sequence or "prompt"

    def resolve_base_model(self):
        """``pretrain_model_name_or_path`` resolved (a ``ModelSource``); a named folder is checked as the user
        wrote it, before any loader touches it."""
        from easynlp_bp.models.folder_checks import check_base_model
        from easynlp_bp.models.modelzoo import resolve_model_source

        source = resolve_model_source(self.params.pretrain_model_name_or_path)
        if not source.is_from_scratch:
            check_base_model(source.location, self.checkpoint_dir)
        return source

    # ----------------------------------------------------------------- tables
    def table_sources(self, mode: str, at_least: int, at_most: int, meaning: str) -> list[str]:
        """``--tables`` split, with a clear error when it holds fewer or more files than ``mode`` takes."""
        tables = self.args.table_list
        if not at_least <= len(tables) <= at_most:
            raise ValueError(f"--tables takes {meaning} for --mode={mode}; got {len(tables)} file(s): "
                             f"{self.args.tables or '(none)'}.")
        return tables

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

    def finish_training(self, card, directory: Optional[str | Path] = None, **resolved: Any) -> None:
        """The end of every ``train``: make the model folder a finished one (portable files and the model card of
        ``card``, a :class:`~easynlp_bp.models.finished_checkpoint.CheckpointCard`) when a model was saved there,
        and write ``run_config.json`` with ``resolved``. ``directory``: the staging folder the final save fills
        before it moves into ``--checkpoint_dir`` (default: ``--checkpoint_dir`` itself). Main process only."""
        from easynlp_bp.models.finished_checkpoint import finalize_checkpoint

        directory = Path(directory or self.checkpoint_dir)
        if (directory / "config.json").is_file():
            finalize_checkpoint(directory, card, model_dir=self.checkpoint_dir)
        self.write_run_config(str(directory), **resolved)


__all__ = ["APPS", "App", "with_preset"]
