"""MkDocs hook: generates the CLI reference and the list of code blocks the doc test does not run.

Both pages are rendered at build time from the code (the ``EasyNLPArgs`` dataclass, every app's params
dataclass in the ``APPS`` registry) and from the ``<!-- requires: ... -->`` markers in the pages, so they
cannot drift from what they describe. ``tests/test_docs_*.py`` import the same functions.

Code-block markers (an HTML comment on the line before the opening fence):

- ``<!-- requires: gpu -->`` / ``<!-- requires: hub -->``: not run by the doc test (needs a GPU, or network
  access to a model hub or a hosted service); listed on the generated page ``not_executed.md``.
- ``<!-- requires: checkout -->``: runs ``scripts/*.sh``, the test suite or a benchmark of the checkout
  (exercised by ``bash scripts/test.sh``, the benchmarks and the fresh-clone check instead).
- ``<!-- docs-test: fragment -->``: an API sketch with ``...`` placeholders, not meant to be run as is;
  listed there too.
- ``<!-- docs-test: slow -->``: run only by ``pytest -m slow``.
- ``<!-- docs-test: background -->``: a long-running server; the test starts it in the background, runs the
  page's next blocks against it and stops it at the end of the page.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import typing
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNNABLE_LANGUAGES = ("bash", "python")
SKIP_REASONS = {"gpu": "needs a GPU", "hub": "needs a model hub or a hosted service (network)",
                "checkout": "runs the project's setup, test suite or benchmarks in a checkout",
                "fragment": "an API sketch with `...` placeholders"}
RUN_FLAGS = ("slow", "background")
GENERATED_PAGES = ("cli_reference.md", "not_executed.md")

_MARKER = re.compile(r"<!--\s*(requires|docs-test):\s*([\w, -]+?)\s*-->")
_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class CodeBlock:
    """One fenced code block of a Markdown page and the markers on the line before it."""

    page: str            # path relative to the repository root, e.g. "docs/quickstart.md"
    line: int            # 1-based line of the opening fence
    language: str
    code: str
    markers: tuple[str, ...] = ()

    @property
    def skip_reason(self) -> str | None:
        """Why the doc test does not run this block (None: it runs)."""
        for marker in self.markers:
            if marker in SKIP_REASONS:
                return SKIP_REASONS[marker]
        return None

    @property
    def runnable(self) -> bool:
        return self.language in RUNNABLE_LANGUAGES and self.skip_reason is None

    @property
    def test_id(self) -> str:
        return f"{self.page}:{self.line}"


def extract_blocks(path: Path, relative_to: Path = REPO) -> list[CodeBlock]:
    """Every fenced code block of ``path`` with its markers; an unknown marker raises ``ValueError``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        page = str(path.resolve().relative_to(relative_to.resolve()))
    except ValueError:
        page = path.name
    blocks, i = [], 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, markers = i, _markers_before(lines, i, page)
        i += 1
        body = []
        while i < len(lines) and lines[i].rstrip() != "```":
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"{page}:{start + 1}: code block is never closed with ```.")
        blocks.append(CodeBlock(page, start + 1, fence.group(1), "\n".join(body) + "\n", markers))
        i += 1
    return blocks


def _markers_before(lines: list[str], fence_index: int, page: str) -> tuple[str, ...]:
    if fence_index == 0:
        return ()
    found = _MARKER.findall(lines[fence_index - 1])
    markers = tuple(m.strip() for _, values in found for m in values.split(","))
    unknown = [m for m in markers if m not in SKIP_REASONS and m not in RUN_FLAGS]
    if unknown:
        raise ValueError(
            f"{page}:{fence_index}: unknown code-block marker(s) {unknown}; "
            f"use requires: gpu|hub|checkout or docs-test: fragment|slow|background."
        )
    return markers


def documentation_pages(repo: Path = REPO) -> list[Path]:
    """README.md and every page under docs/ (``cli_reference.md`` is generated but committed, so that links to
    it resolve outside the built site; ``not_executed.md`` exists only in the built site)."""
    return [repo / "README.md"] + sorted((repo / "docs").glob("*.md"))


def all_blocks(repo: Path = REPO) -> list[CodeBlock]:
    return [block for page in documentation_pages(repo) for block in extract_blocks(page, repo)]


# --- generated pages -----------------------------------------------------------------------------

def _type_name(annotation: typing.Any) -> str:
    """``Optional[int]`` -> ``int``, ``Union[str, dict, None]`` -> ``str or dict`` (unset is shown in the default column)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union:
        return " or ".join(_type_name(arg) for arg in args)
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _default_text(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = field.default_factory()  # type: ignore[misc]
    else:
        return "(required)"
    if value is None:
        return "unset"
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    return f"`{value}`" if str(value) != "" else "`''` (empty)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fields_table(cls: type, prefix: str) -> list[str]:
    """One row per field: its declaration (type, default, accepted values, HTTP/OpenAI names, help)."""
    from easynlp_bp.options import spec_of

    hints = typing.get_type_hints(cls)
    served = any(spec_of(f).http or spec_of(f).openai for f in dataclasses.fields(cls))
    rows = ["| name | type | default | accepted | " + ("HTTP / OpenAI | " if served else "") + "meaning |",
            "|---|---|---|---|" + ("---|" if served else "") + "---|"]
    for field in dataclasses.fields(cls):
        spec = spec_of(field)
        names = ", ".join(([f"`{field.name}`"] if spec.http else []) + ([f"OpenAI `{spec.openai}`"] if spec.openai
                                                                          else []))
        rows.append(
            f"| `{prefix}{field.name}` | {_cell(_type_name(hints.get(field.name, field.type)))} "
            f"| {_cell(_default_text(field))} | {_cell(spec.describe())} | " + (f"{names} | " if served else "")
            + f"{_cell(field.metadata.get('help', ''))} |"
        )
    return rows


def render_cli_reference() -> str:
    """The CLI reference: every EasyNLP flag and every app's ``user_defined_parameters`` keys."""
    from easynlp_bp.appzoo import APPS
    from easynlp_bp.arguments import EasyNLPArgs

    out = [
        "# CLI reference",
        "",
        "*Generated by `scripts/mkdocs_hooks.py` (`.venv/bin/python scripts/mkdocs_hooks.py` rewrites this file; "
        "a test fails when it is stale) from `EasyNLPArgs` (`easynlp_bp/arguments.py`) and the params dataclass "
        "of every app in the `APPS` registry. `easynlp --help` and `easynlp --app_name=NAME --help` print the "
        "same declarations. The HTTP column names the request fields of `POST /v1/beautify` and the OpenAI "
        "parameters of `/v1/chat/completions` and `/v1/completions`.*",
        "",
        "```text",
        "easynlp --app_name=NAME --mode=MODE [flags] --user_defined_parameters='key=value key2=value2'",
        "```",
        "",
        "Unknown flags and unknown `user_defined_parameters` keys are errors that list the valid ones; "
        "abbreviated flags are refused. Exit code 0 on success, 2 on a usage or input error.",
        "",
        "## Flags (`EasyNLPArgs`)",
        "",
        *_fields_table(EasyNLPArgs, "--"),
        "",
        "## Apps",
        "",
        "| `--app_name` | modes | what |",
        "|---|---|---|",
    ]
    for name in APPS.names():
        app = APPS.get(name)
        out.append(f"| [`{name}`](#{name}) | {', '.join(app.modes)} | {_cell(app.description)} |")
    for name in APPS.names():
        app = APPS.get(name)
        params = app.params_cls
        out += [
            "",
            f"### {name}",
            "",
            f"`{app.__module__}.{app.__name__}` — {app.description}",
            "",
            f"Modes: {', '.join(f'`{m}`' for m in app.modes)}. "
            f"`user_defined_parameters` keys (`{params.__module__}.{params.__name__}`):",
            "",
            *_fields_table(params, ""),
        ]
    return "\n".join(out) + "\n"


def render_not_executed(repo: Path = REPO) -> str:
    """The one list of documentation code blocks that the doc test does not run, and why."""
    out = [
        "# Examples not run by the doc test",
        "",
        "*Generated at build time by `scripts/mkdocs_hooks.py` from the markers in the pages.* "
        "`tests/test_docs_examples.py` runs every other `bash` and `python` block of README.md and "
        "`docs/*.md` on the tiny embedded default (see [Contributing](contributing.md#the-doc-test)). "
        "These need what the test machine lacks:",
        "",
        "| page | line | marker | why | first line |",
        "|---|---|---|---|---|",
    ]
    for block in all_blocks(repo):
        if block.language in RUNNABLE_LANGUAGES and block.skip_reason:
            first = next((ln.strip() for ln in block.code.splitlines() if ln.strip()), "")
            marker = next(m for m in block.markers if m in SKIP_REASONS)
            out.append(f"| `{block.page}` | {block.line} | `{marker}` | {block.skip_reason} "
                       f"| `{_cell(first[:90])}` |")
    return "\n".join(out) + "\n"


class _QuotedSubscriptFilter(logging.Filter):
    """Drop autorefs' warning for ``x["key"][:3]`` in docstring examples: a subscript, not a link."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not re.search(r"Could not find cross-reference target '[\"']", message)


def on_startup(command, dirty):  # noqa: D103 - MkDocs hook signature
    for name in ("mkdocs.plugins.mkdocs_autorefs._internal.plugin", "mkdocs.plugins.mkdocs_autorefs.plugin",
                 "mkdocs.plugins.mkdocs_autorefs"):
        logging.getLogger(name).addFilter(_QuotedSubscriptFilter())


RENDERERS = {"cli_reference.md": render_cli_reference, "not_executed.md": render_not_executed}


def on_files(files, config):  # noqa: D103 - MkDocs hook signature
    from mkdocs.structure.files import File

    for name, render in RENDERERS.items():
        existing = files.get_file_from_path(name)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, name, content=render()))
    return files


if __name__ == "__main__":  # rewrite the committed generated pages
    for page, render in RENDERERS.items():
        if page == "cli_reference.md":
            (REPO / "docs" / page).write_text(render(), encoding="utf-8")
