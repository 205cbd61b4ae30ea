"""The command-line layer shared by ``easynlp`` and ``easynlp-serve``.

The flag parser is generated from :class:`EasyNLPArgs` (help written once, there); :func:`run_reporting_errors`
turns the errors a user can fix (bad flags, bad input, a missing model) into one line on stderr and exit
code 2, so no traceback reaches a user.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import logging
import sys
import warnings
from typing import Callable, Iterator, Optional, Sequence

from easynlp_bp.arguments import EasyNLPArgs
from easynlp_bp.options import option_modes
from easynlp_bp.easynlp_compat import FLAG_ALIASES, IGNORED_FLAG_DEST_PREFIX, IGNORED_FLAGS, warn_ignored_flags
from easynlp_bp.options import parse_boolean


def _flag_type(field: dataclasses.Field):
    text = str(field.type)
    for name, kind in (("int", int), ("float", float), ("bool", bool)):
        if name in text:
            return kind
    return str


def _parse_bool(text: str) -> bool:
    value = parse_boolean(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; use true or false")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser generated from :class:`EasyNLPArgs` (help text written once, there), its flags
    grouped by the modes they apply to; EasyNLP's flags that change nothing here are accepted but listed once,
    at the end of the help, instead of one placeholder each."""
    parser = argparse.ArgumentParser(
        prog="easynlp", add_help=False, allow_abbrev=False,
        usage="easynlp --app_name=APP --mode=MODE [--flag=value ...] [--user_defined_parameters='key=value ...']",
        description="EasyNLP-style runner for BeautifulPrompt apps. "
                    "`easynlp --app_name=X --help` lists that app's modes and user_defined_parameters.",
        epilog="EasyNLP flags accepted for compatibility (each changes nothing here and logs one warning saying "
               "why): " + ", ".join(f"--{flag.name}" for flag in IGNORED_FLAGS) + ".",
    )
    parser.add_argument("-h", "--help", action="store_true", help="Show this help (with --app_name: the app's).")
    aliases: dict[str, list[str]] = {}
    for alias, target in FLAG_ALIASES.items():
        aliases.setdefault(target, []).append(f"--{alias}")
    groups: dict[Optional[tuple[str, ...]], argparse._ArgumentGroup] = {}
    for field in sorted(dataclasses.fields(EasyNLPArgs), key=lambda f: option_modes(EasyNLPArgs, f) is not None):
        modes = option_modes(EasyNLPArgs, field)
        if modes not in groups:
            groups[modes] = parser.add_argument_group("every mode" if modes is None else f"--mode={'|'.join(modes)}")
        kind = _flag_type(field)
        kwargs = {"default": field.default, "help": field.metadata.get("help", ""), "dest": field.name}
        if kind is bool:
            kwargs.update(nargs="?", const=True, type=_parse_bool, metavar="true|false")
        elif "list[" in str(field.type):  # a repeatable flag: each occurrence adds one value
            kwargs.update(action="append", type=kind, metavar=field.name.upper())
        else:
            kwargs.update(type=kind, metavar=field.name.upper())
        groups[modes].add_argument(f"--{field.name}", *aliases.get(field.name, []), **kwargs)
    for flag in IGNORED_FLAGS:
        switch = {"nargs": "?", "const": True} if flag.is_switch else {}
        parser.add_argument(f"--{flag.name}", dest=IGNORED_FLAG_DEST_PREFIX + flag.name, default=None,
                            help=argparse.SUPPRESS, **switch)
    return parser


def _reject_unknown(unknown: list[str], parser: argparse.ArgumentParser) -> None:
    valid = sorted(a for action in parser._actions for a in action.option_strings if a.startswith("--"))
    flags = [u.split("=", 1)[0] for u in unknown]
    hints = []
    for flag in flags:
        close = difflib.get_close_matches(flag, valid, n=1)
        hints.append(f"{flag} (did you mean {close[0]}?)" if close else flag)
    raise ValueError(f"Unknown argument(s): {', '.join(hints)}. Valid flags: {' '.join(valid)}.")


def parse_args(argv: Optional[Sequence[str]] = None) -> tuple[EasyNLPArgs, bool]:
    """Parse ``argv`` into :class:`EasyNLPArgs`; returns (args, help requested)."""
    parser = build_parser()
    namespace, unknown = parser.parse_known_args(list(argv) if argv is not None else None)
    if unknown:
        _reject_unknown(unknown, parser)
    values = vars(namespace)
    wants_help = values.pop("help")
    ignored = {
        key[len(IGNORED_FLAG_DEST_PREFIX):]: values.pop(key)
        for key in list(values) if key.startswith(IGNORED_FLAG_DEST_PREFIX)
    }
    warn_ignored_flags({name: value for name, value in ignored.items() if value is not None})
    return EasyNLPArgs(**values), wants_help


def check_mode(mode: str, modes: Sequence[str], app_name: str) -> None:
    """Raise ``ValueError`` (with "did you mean") when ``--mode`` is not one of the app's ``modes``."""
    if mode in modes:
        return
    close = difflib.get_close_matches(mode, modes, n=1)
    hint = f" (did you mean --mode={close[0]}?)" if close else ""
    raise ValueError(f"App {app_name!r} does not support --mode={mode}{hint}; it supports: {', '.join(modes)}.")


def configure_logging() -> None:
    """INFO logging to stderr unless the caller configured logging already (what else a run shows:
    :func:`third_party_output`)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# Loggers whose INFO lines are the run's own log; other libraries' INFO lines need --verbose.
_OWN_LOGGERS = ("easynlp_bp", "__main__")


class _OwnInfoOnly(logging.Filter):
    """Passes every WARNING or worse, and INFO or below only from this project's loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.split(".")[0] in _OWN_LOGGERS


@contextlib.contextmanager
def third_party_output(verbose: bool) -> Iterator[None]:
    """Quiet third-party libraries for one command unless ``verbose`` (``--verbose``), restoring all on exit.

    Quiet: no progress bars from transformers (the weight-loading bar on every run), the hub or datasets;
    transformers and datasets log errors only; Python warnings raised outside ``easynlp_bp`` are dropped; other
    libraries' INFO lines are kept off the root logger's handlers. This project's own log lines and its own
    bars (:mod:`easynlp_bp.progress`) are unchanged. Everything is put back when the block ends, so in-process
    calls (tests, a notebook) do not change each other's output.
    """
    if verbose:
        yield
        return
    from datasets import utils as datasets_utils
    from datasets.utils import logging as datasets_logging
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as transformers_logging

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.filterwarnings("default", module=r"easynlp_bp(\.|$)")
        bars = (transformers_logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled(),
                datasets_utils.are_progress_bars_disabled())
        verbosity = (transformers_logging.get_verbosity(), datasets_logging.get_verbosity())
        transformers_logging.disable_progress_bar()  # the hub's bars too
        datasets_utils.disable_progress_bars()
        transformers_logging.set_verbosity_error()
        datasets_logging.set_verbosity_error()
        only_own_info = _OwnInfoOnly()
        handlers = list(logging.getLogger().handlers)
        for handler in handlers:
            handler.addFilter(only_own_info)
        try:
            yield
        finally:
            for handler in handlers:
                handler.removeFilter(only_own_info)
            transformers_logging.set_verbosity(verbosity[0])
            datasets_logging.set_verbosity(verbosity[1])
            if bars[0]:
                transformers_logging.enable_progress_bar()  # (enables the hub's bars too: set just below)
            (hub_utils.disable_progress_bars if bars[1] else hub_utils.enable_progress_bars)()
            if not bars[2]:
                datasets_utils.enable_progress_bars()


def run_reporting_errors(command: Callable[[], int], prog: str = "easynlp") -> int:
    """Run ``command``; a user-fixable error becomes ``"<prog>: error: ..."`` on stderr and exit code 2."""
    try:
        return command()
    except (ValueError, KeyError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        sys.stderr.write(f"{prog}: error: {message}\n")
        return 2
    except OSError as err:  # transformers raises OSError when a model cannot be found or fetched
        sys.stderr.write(
            f"{prog}: error: {err}\nIf this names a hub id: this machine may have no hub access; "
            "download the model elsewhere and pass its local directory instead.\n"
        )
        return 2
