"""Serve a checkpoint: load the Predictor (and an optional diffusers pipeline), then run the HTTP server.

Both ``easynlp --app_name=beautiful_prompt --mode=serve`` and ``easynlp-serve`` end here, so the
``easynlp-serve`` entry point reaches the server without going through the AppZoo or the ``easynlp`` CLI.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional, Sequence

from easynlp_bp.prompting.predictor import BeautifulPromptPredictor, PredictorParams
from easynlp_bp.serving.config import ServeConfig, ServeFields

DEFAULT_MODEL_DIR = "outputs/beautiful_prompt"


@dataclass(frozen=True)
class ServeParams(PredictorParams, ServeFields):
    """``user_defined_parameters`` of ``easynlp-serve``: the generation keys plus the server keys."""


def predictor_params_of(params) -> PredictorParams:
    """The :class:`PredictorParams` fields of any params object that carries them."""
    return PredictorParams(**{f.name: getattr(params, f.name) for f in fields(PredictorParams)})


def load_predictor(model_dir: Optional[str], params: PredictorParams,
                   predictor_cls: type = BeautifulPromptPredictor, **kwargs) -> BeautifulPromptPredictor:
    """A ``predictor_cls`` for ``model_dir`` (default ``outputs/beautiful_prompt``); a missing default dir is a clear error."""
    if model_dir is None and not Path(DEFAULT_MODEL_DIR).exists():
        raise FileNotFoundError(
            f"No model at {DEFAULT_MODEL_DIR}. Train one first (easynlp --app_name=beautiful_prompt --mode=train) "
            "or pass --checkpoint_dir=<model dir or hub id>."
        )
    return predictor_cls(model_dir or DEFAULT_MODEL_DIR, params, **kwargs)


def serve_checkpoint(model_dir: Optional[str], params, predictor_cls: type = BeautifulPromptPredictor) -> dict:
    """Serve ``model_dir`` with the generation and server keys of ``params``; blocks until interrupted."""
    from easynlp_bp.serving.server import run_server

    config = ServeConfig.from_params(params)
    pipeline = None
    if config.diffusers_pipeline:
        from easynlp_bp.serving.diffusers_integration import load_pipeline

        pipeline = load_pipeline(config.diffusers_pipeline, params.device)
    return run_server(load_predictor(model_dir, predictor_params_of(params), predictor_cls), config, pipeline)


def _serve_from_argv(argv: list[str]) -> int:
    from easynlp_bp.arguments import parse_user_defined_parameters
    from easynlp_bp.command_line import parse_args, third_party_output

    args, wants_help = parse_args(argv)
    given = {a.split("=", 1)[0] for a in argv}
    if args.app_name not in (None, "beautiful_prompt") or ("--mode" in given and args.mode != "serve"):
        raise ValueError("easynlp-serve only serves beautiful_prompt checkpoints; drop --app_name/--mode "
                         "or use `easynlp --app_name=... --mode=...`.")
    if wants_help:
        from easynlp_bp.arguments import describe_params

        sys.stdout.write("easynlp-serve --checkpoint_dir=DIR --user_defined_parameters='key=value ...'\n"
                         f"keys:\n{describe_params(ServeParams)}\n")
        return 0
    with third_party_output(verbose=args.verbose):
        serve_checkpoint(args.checkpoint_dir, parse_user_defined_parameters(args.user_defined_parameters, ServeParams))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``easynlp-serve [flags]``: the same as ``easynlp --app_name=beautiful_prompt --mode=serve [flags]``."""
    from easynlp_bp.command_line import configure_logging, run_reporting_errors

    configure_logging()
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_reporting_errors(lambda: _serve_from_argv(argv), prog="easynlp-serve")


def main_entry() -> None:
    """Console-script wrapper of ``easynlp-serve``."""
    sys.exit(main())
