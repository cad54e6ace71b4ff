"""Headless Chromium for the tests that look at pages: Debian's browser, driven by Playwright.

Debian's ``chromium`` package provides the browser (``.ci/run`` installs it);
Playwright never downloads one. Shared by the site's browser test and the
chat example's browser test; it holds no tests itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.support import require_program

#: Every wait is bounded, far below any CI time limit: a page here loads in well under a second.
TIMEOUT_MS = 15_000
#: The width at which the documentation is checked for sideways scrolling.
VIEWPORT = {"width": 1280, "height": 900}
# Without the background-networking flags Chromium tries hosts that this
# machine cannot reach, many at a time.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def playwright_api() -> ModuleType:
    """Playwright's sync API, which the ``test`` extra installs (fails in CI when missing)."""
    try:
        from playwright import sync_api
    except ImportError:
        message = "the playwright package is not installed (pip install '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(f"{message}, and CI must run this test")
        pytest.skip(message)
    return sync_api


def chromium_path() -> str:
    """The browser's path; skips (fails in CI) where it or Playwright is missing."""
    path = require_program("chromium")
    playwright_api()
    return path


@contextlib.contextmanager
def launch_chromium() -> Iterator[Any]:
    """A headless Chromium browser (Playwright's ``Browser``), closed on exit."""
    executable = chromium_path()
    with playwright_api().sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS * 2
        )
        try:
            yield browser
        finally:
            browser.close()
