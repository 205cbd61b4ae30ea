"""docs/cli_reference.md is the generated declaration of every flag and key, committed, and never stale."""
from __future__ import annotations

from docs_runner import REPO  # noqa: F401 - same import path the doc tests use
from mkdocs_hooks import render_cli_reference


def test_committed_cli_reference_is_the_generated_one():
    committed = (REPO / "docs" / "cli_reference.md").read_text(encoding="utf-8")
    assert committed == render_cli_reference(), (
        "docs/cli_reference.md is stale: run `.venv/bin/python scripts/mkdocs_hooks.py` and commit it")


def test_cli_reference_shows_each_option_with_its_bounds_and_openai_name():
    page = render_cli_reference()
    assert "| `top_p` | float | `0.95` | 0 < x <= 1 | `top_p`, OpenAI `top_p` |" in page
    assert "| `max_input_chars` | int | `2000` | x >= 1 |" in page
    assert "| `decoding` | str | unset | one of sample, greedy, beam |" in page
