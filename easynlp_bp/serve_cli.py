"""``easynlp-serve``: serve a ``beautiful_prompt`` checkpoint from the command line.

The entry layer of the server: flags are parsed by :mod:`easynlp_bp.command_line` (as for ``easynlp``), then
:func:`easynlp_bp.serving.launch.serve_checkpoint` loads the Predictor and runs the HTTP server. Neither the AppZoo
nor the ``easynlp`` CLI is imported.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from easynlp_bp.serving.launch import ServeParams, serve_checkpoint


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
