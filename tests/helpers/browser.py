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

from tests.helpers.support import require_program

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


def keep_to_origin(context: Any, page: Any, origin: str, problems: list[str]) -> None:
    """Refuse every request of *context* that leaves *origin*; note each refusal in
    *problems*, and every script error of *page* too."""

    def only_this_server(route: Any) -> None:
        url = route.request.url
        if url == origin or url.startswith(f"{origin}/"):
            route.continue_()
        else:
            problems.append(f"request elsewhere refused: {url}")
            route.abort()

    context.route("**/*", only_this_server)
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))


def wait_for_count(page: Any, selector: str, count: int) -> None:
    """Wait (at most :data:`TIMEOUT_MS`) until *page* shows *count* elements matching *selector*."""
    page.wait_for_function(
        "([selector, n]) => document.querySelectorAll(selector).length >= n",
        arg=[selector, count],
        timeout=TIMEOUT_MS,
    )


@contextlib.contextmanager
def open_page(
    browser: Any, origin: str, problems: list[str], *, init_script: str = "", **options: Any
) -> Iterator[Any]:
    """A page in a browser context of its own, at *origin*'s ``/``; closed on exit.

    Requests that leave *origin*, and script errors, are noted in *problems*
    (:func:`keep_to_origin`). *init_script* runs before the page's own
    scripts; *options* go to ``new_context``.
    """
    context = browser.new_context(viewport=VIEWPORT, **options)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        keep_to_origin(context, page, origin, problems)
        if init_script:
            context.add_init_script(init_script)
        page.goto(f"{origin}/")
        yield page
    finally:
        context.close()
