"""A real server on 127.0.0.1 and Debian's chromium driven by Playwright (never downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.service.server import running
from tools import system_assets

ROOT = Path(__file__).resolve().parents[2]
# The service under uvicorn on 127.0.0.1, with the options ``callsense serve`` uses.
serve = running
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def update_screenshots() -> bool:
    """Committed screenshots are rewritten only on request, so CI never dirties the tree."""
    return os.environ.get("CALLSENSE_UPDATE_SCREENSHOTS") == "1"


@pytest.fixture(scope="session")
def browser():  # -> playwright.sync_api.Browser
    from playwright.sync_api import sync_playwright

    chromium = system_assets.program("chromium")  # a missing browser fails, never skips
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):  # -> playwright.sync_api.Page
    """A fresh context per test (its own localStorage); page errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.set_default_timeout(20_000)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
