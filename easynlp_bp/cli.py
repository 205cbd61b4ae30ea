"""The ``easynlp`` command: parse the EasyNLP flags once, then run the registered app's mode.

``main(argv)`` returns an exit code (0 ok, 2 bad usage or input) so tests run it in-process.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import os
import sys
from typing import Optional, Sequence

from easynlp_bp.arguments import EasyNLPArgs, describe_params

logger = logging.getLogger("easynlp_bp")


def _flag_type(field: dataclasses.Field):
    text = str(field.type)
    for name, kind in (("int", int), ("float", float), ("bool", bool)):
        if name in text:
            return kind
    return str


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; use true or false")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser generated from :class:`EasyNLPArgs` (help text written once, there)."""
    parser = argparse.ArgumentParser(
        prog="easynlp", add_help=False, allow_abbrev=False,
        description="EasyNLP-style runner for BeautifulPrompt apps. "
                    "`easynlp --app_name=X --help` lists that app's modes and user_defined_parameters.",
    )
    parser.add_argument("-h", "--help", action="store_true", help="Show this help (with --app_name: the app's).")
    for field in dataclasses.fields(EasyNLPArgs):
        kind = _flag_type(field)
        kwargs = {"default": field.default, "help": field.metadata.get("help", ""), "dest": field.name}
        if kind is bool:
            kwargs.update(nargs="?", const=True, type=_parse_bool)
        else:
            kwargs["type"] = kind
        parser.add_argument(f"--{field.name}", **kwargs)
    return parser


def _reject_unknown(unknown: list[str], parser: argparse.ArgumentParser) -> None:
    valid = sorted(a for action in parser._actions for a in action.option_strings if a.startswith("--"))
    flags = [u.split("=", 1)[0] for u in unknown]
    hints = []
    for flag in flags:
        close = difflib.get_close_matches(flag, valid, n=1)
        hints.append(f"{flag} (did you mean {close[0]}?)" if close else flag)
    raise ValueError(f"Unknown argument(s): {', '.join(hints)}. Valid flags: {' '.join(valid)}.")


def _app_help(app_cls) -> str:
    return (
        f"App {app_cls.__name__}: {app_cls.description}\n"
        f"Modes: {', '.join(app_cls.modes)}\n"
        f"user_defined_parameters keys (--user_defined_parameters='key=value ...'):\n"
        f"{describe_params(app_cls.params_cls)}\n"
    )


def parse_args(argv: Optional[Sequence[str]] = None) -> tuple[EasyNLPArgs, bool]:
    """Parse ``argv`` into :class:`EasyNLPArgs`; returns (args, help requested)."""
    parser = build_parser()
    namespace, unknown = parser.parse_known_args(list(argv) if argv is not None else None)
    if unknown:
        _reject_unknown(unknown, parser)
    values = vars(namespace)
    wants_help = values.pop("help")
    return EasyNLPArgs(**values), wants_help


def _launch_distributed(args: EasyNLPArgs, argv: Sequence[str]) -> int:
    """Re-run this command with --worker_gpu processes per machine (see easynlp_bp/distributed.py)."""
    from easynlp_bp.distributed import launch_distributed

    return launch_distributed(args, argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``easynlp``. Returns 0 on success, 2 on a usage or input error."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, wants_help = parse_args(argv)
        from easynlp_bp.appzoo import APPS

        if wants_help and args.app_name is None:
            sys.stdout.write(parser.format_help() + f"\nApps: {', '.join(APPS.names())}\n")
            return 0
        if args.app_name is None:
            raise ValueError(f"--app_name is required; choose one of {', '.join(APPS.names())}.")
        app_cls = APPS.get(args.app_name)
        if wants_help:
            sys.stdout.write(parser.format_help() + "\n" + _app_help(app_cls))
            return 0
        if (args.worker_gpu or 1) * args.worker_count > 1 and "LOCAL_RANK" not in os.environ:
            return _launch_distributed(args, argv)
        result = app_cls(args).run()
        if "LOCAL_RANK" in os.environ:
            from easynlp_bp.distributed import finish_distributed

            finish_distributed()
    except (ValueError, KeyError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        sys.stderr.write(f"easynlp: error: {message}\n")
        return 2
    except OSError as err:  # transformers raises OSError when a model cannot be found or fetched
        sys.stderr.write(
            f"easynlp: error: {err}\nIf this names a hub id: this machine may have no hub access; "
            "download the model elsewhere and pass its local directory instead.\n"
        )
        return 2
    _show(result)
    return 0


def _show(result: object) -> None:
    """Print the rows an app asks to show (predictions not written to a file: the README's main job)."""
    if isinstance(result, dict) and result.get("print_rows"):
        for row in result["print_rows"]:
            sys.stdout.write(f"\n>>> {row.get('raw_prompt', '')}\n")
            for text in row.get("beams", [row.get("predictions")]):
                sys.stdout.write(f"  - {text}\n")
        if result.get("rejects"):
            sys.stdout.write(f"\n{len(result['rejects'])} rows rejected.\n")


def main_entry() -> None:
    """Console-script wrapper: exit with :func:`main`'s code."""
    sys.exit(main())


if __name__ == "__main__":
    main_entry()
