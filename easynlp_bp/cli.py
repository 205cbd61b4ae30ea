"""The ``easynlp`` command: parse the EasyNLP flags once, then run the registered app's mode.

``main(argv)`` returns an exit code (0 ok, 2 bad usage or input) so tests run it in-process.
"""
from __future__ import annotations

import json
import os
import sys
import textwrap
from typing import Optional, Sequence

from easynlp_bp.arguments import EasyNLPArgs, describe_params
from easynlp_bp.command_line import (
    build_parser, check_mode, configure_logging, parse_args, run_reporting_errors, third_party_output,
)

__all__ = ["build_parser", "main", "main_entry", "parse_args"]


def _app_help(app_cls) -> str:
    """The app's modes and its ``user_defined_parameters`` keys, grouped by the modes they apply to."""
    swaps = "".join(f"  {kind}_class={default}\n      Swap in a subclass: a name registered in "
                    f"easynlp_bp.components.COMPONENTS, or module.path:ClassName.\n"
                    for kind, default in app_cls.components.items())
    return (
        f"App {app_cls.__name__}: {app_cls.description}\n"
        f"Modes: {', '.join(app_cls.modes)}\n"
        f"user_defined_parameters keys (--user_defined_parameters='key=value ...'):\n"
        + "\n".join(describe_params(cls, app_cls.modes) for cls in app_cls.help_params()) + "\n"
        + (f" Pluggable classes (every mode):\n{swaps}" if swaps else "")
    )


def _help(app_cls=None) -> str:
    """``easynlp --help``: the flags by mode, the app's keys by mode (with ``--app_name``), then the EasyNLP flags
    that are accepted and ignored, listed once at the very end."""
    from easynlp_bp.appzoo import APPS

    parser = build_parser()
    ignored, parser.epilog = parser.epilog, None
    middle = _app_help(app_cls) if app_cls is not None else f"Apps: {', '.join(APPS.names())}\n"
    return parser.format_help() + "\n" + middle + "\n" + textwrap.fill(ignored, width=100) + "\n"


def _launch_distributed(args: EasyNLPArgs, argv: Sequence[str]) -> int:
    """Re-run this command with --worker_gpu processes per machine (see easynlp_bp/distributed.py)."""
    from easynlp_bp.distributed import launch_distributed

    return launch_distributed(args, argv)


def _run(argv: list[str]) -> int:
    args, wants_help = parse_args(argv)
    with third_party_output(verbose=args.verbose):
        return _run_parsed(args, wants_help, argv)


def _run_parsed(args: EasyNLPArgs, wants_help: bool, argv: list[str]) -> int:
    from easynlp_bp.appzoo import APPS

    if wants_help and args.app_name is None:
        sys.stdout.write(_help())
        return 0
    if args.app_name is None:
        raise ValueError(f"--app_name is required; choose one of {', '.join(APPS.names())}.")
    app_cls = APPS.get(args.app_name)
    if wants_help:
        sys.stdout.write(_help(app_cls))
        return 0
    check_mode(args.mode, app_cls.modes, args.app_name)
    if args.worker_gpu == 0:
        from easynlp_bp.devices import hide_gpus

        hide_gpus("--worker_gpu=0")
    if (args.worker_gpu or 1) * args.worker_count > 1 and "LOCAL_RANK" not in os.environ:
        return _launch_distributed(args, argv)
    result = app_cls(args).run()
    if "LOCAL_RANK" in os.environ:
        from easynlp_bp.distributed import finish_distributed

        finish_distributed()
    _show(result)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``easynlp``. Returns 0 on success, 2 on a usage or input error."""
    configure_logging()
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_reporting_errors(lambda: _run(argv))


def _show(result: object) -> None:
    """Print what an app asks to show: beautified rows (the README's main job), scored rows, or its results."""
    if not isinstance(result, dict):
        return
    if result.get("summary"):
        sys.stdout.write(result["summary"] + "\n")
    if result.get("print_json"):
        shown = {k: v for k, v in result.items() if k != "print_json"}
        sys.stdout.write(json.dumps(shown, indent=2, ensure_ascii=False, default=str) + "\n")
    for row in result.get("print_rows") or []:
        if "print_columns" in result:
            cells = [row.get(c, "") for c in result["print_columns"]]
            sys.stdout.write("\t".join(f"{c:.4f}" if isinstance(c, float) else str(c) for c in cells) + "\n")
            continue
        sys.stdout.write(f"\n>>> {row.get('raw_prompt', '')}\n")
        for text in row.get("beams", [row.get("predictions")]):
            sys.stdout.write(f"  - {text}\n")
        for warning in row.get("warnings") or []:
            sys.stdout.write(f"  note: {warning}\n")
    if result.get("print_table"):  # --outputs=-: the predictions table itself, logs stay on stderr
        from easynlp_bp.io.writers import write_rows

        write_rows(sys.stdout, result["print_table"]["rows"], result["print_table"]["columns"])
    if result.get("print_rows") is not None and result.get("rejects"):
        for reject in result["rejects"]:
            sys.stdout.write(f"rejected row {reject.row}: {reject.reason}\n")
        sys.stdout.write(f"\n{len(result['rejects'])} rows rejected.\n")


def main_entry() -> None:
    """Console-script wrapper: exit with :func:`main`'s code."""
    sys.exit(main())


if __name__ == "__main__":
    main_entry()
