"""Launch the system Chromium through Playwright for browser tests (no browser download offline)."""
from __future__ import annotations

import contextlib
import shutil

import pytest

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@contextlib.contextmanager
def chromium_page():
    """Yield a Playwright page in headless Debian Chromium; skip with the reason if it is not installed."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Chromium is not installed (bash scripts/setup_browser.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e .[browser]")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()
