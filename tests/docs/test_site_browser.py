"""The built site in a real browser: headless Chromium, driven by Playwright.

The module builds the site once into ``build/site`` (gitignored) with the
command tox uses, serves it over HTTP on 127.0.0.1, and reads it as a reader
would: the WebSocket reference page with its sections and members, the
search page finding ``receive_text``, every page's code blocks fitting the
text column at 1280 pixels, the copy buttons copying what a reader types, and
the benchmark chart legible at the width the Performance page shows it.
Screenshots are saved in ``build/site/_screenshots/``.

Debian's ``chromium`` package provides the browser (``.ci/run`` installs it);
Playwright never downloads one. Nothing leaves 127.0.0.1: the pages'
requests to any other address are refused and reported.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import TIMEOUT_MS, VIEWPORT, chromium_path, launch_chromium
from tests.helpers.docs_site import REFERENCE_SECTIONS as SECTIONS
from tests.helpers.docs_site import SITE_DIR, sphinx_build

SCREENSHOTS = SITE_DIR / "_screenshots"
WEBSOCKET_PAGE = "reference/websocket.html"
RECEIVE_TEXT = "micropie.WebSocket.receive_text"

LOCK_TIMEOUT = 300  # another pytest run building build/site at the same time


@pytest.fixture(scope="module")
def chromium() -> str:
    """Checked first, so that a machine without the browser skips before building."""
    return chromium_path()


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold *lock_file*, so that two test runs never write build/site at once."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as lock:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{lock_file} stayed locked for {LOCK_TIMEOUT}s")
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def site(chromium: str) -> Iterator[Path]:
    with _exclusive(SITE_DIR.parent / ".site.lock"):
        sphinx_build("html", SITE_DIR)
        shutil.rmtree(SCREENSHOTS, ignore_errors=True)  # only this run's screenshots
        SCREENSHOTS.mkdir()
        yield SITE_DIR


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # failed requests are reported by the browser's side


@pytest.fixture(scope="module")
def site_url(site: Path) -> Iterator[str]:
    with _serve(site) as url:
        yield url


@contextlib.contextmanager
def _serve(site: Path) -> Iterator[str]:
    """*site* served on 127.0.0.1, on a port the system picks."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="docs-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    with launch_chromium() as browser:
        yield browser


@dataclass
class Tab:
    """A page in a fresh browser context, and what went wrong while it loaded."""

    page: Any
    problems: list[str] = field(default_factory=list)


@pytest.fixture
def tab(browser: Any, site_url: str) -> Iterator[Tab]:
    with _open_tab(browser, site_url) as tab:
        yield tab


@contextlib.contextmanager
def _open_tab(browser: Any, site_url: str) -> Iterator[Tab]:
    """A tab that loads nothing but *site_url*'s pages, and may use the clipboard."""
    context = browser.new_context(
        viewport=VIEWPORT,
        color_scheme="light",
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    tab = Tab(context.new_page())

    def only_this_site(route: Any) -> None:
        url = route.request.url
        if url.startswith((site_url, "data:", "blob:")):
            route.continue_()
        else:
            tab.problems.append(f"request off the site refused: {url}")
            route.abort()

    def http_error(response: Any) -> None:
        if response.status >= 400:
            tab.problems.append(f"HTTP {response.status}: {response.url}")

    context.route("**/*", only_this_site)
    tab.page.on("response", http_error)
    tab.page.on("requestfailed", lambda r: tab.problems.append(f"failed: {r.url} {r.failure}"))
    tab.page.on("pageerror", lambda error: tab.problems.append(f"script error: {error}"))
    try:
        yield tab
    finally:
        context.close()


def _screenshot(page: Any, name: str) -> Path:
    # Fonts and images first, so that the picture shows the page as it settles.
    page.evaluate("() => document.fonts.ready.then(() => true)")
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path


def test_websocket_reference_page_renders_its_sections_and_members(tab: Tab, site_url: str) -> None:
    from playwright.sync_api import expect

    page = tab.page
    response = page.goto(site_url + WEBSOCKET_PAGE, wait_until="load")
    assert response is not None and response.ok

    # Headings and entries as the reader sees them, the theme's "¶" links left out.
    title = page.locator("article h1")
    expect(title).to_have_count(1)
    assert _heading_text(title) == "WebSocket class"
    assert page.title().startswith("WebSocket class")
    sections = page.evaluate(
        """() => Array.from(document.querySelectorAll("article section > h2")).map(h => {
            const heading = h.cloneNode(true);
            heading.querySelectorAll(".headerlink").forEach(link => link.remove());
            const ids = Array.from(h.parentElement.querySelectorAll("dt[id]")).map(dt => dt.id);
            return [heading.textContent.trim(), ids];
        })"""
    )
    assert [name for name, _ in sections] == list(SECTIONS)
    assert dict(sections) == SECTIONS
    for members in SECTIONS.values():
        for member in members:
            entry = page.locator(f'dt[id="{member}"]')
            expect(entry).to_be_visible()
            expect(entry.locator(".sig-name")).to_have_text(member.rsplit(".", 1)[1])

    # furo, not a bare page: its stylesheet applies and its sidebar shows the site.
    assert page.evaluate(
        "() => getComputedStyle(document.body).getPropertyValue('--color-brand-primary')"
    ).strip(), "furo's stylesheet did not apply"
    expect(page.locator(".sidebar-drawer")).to_be_visible()
    expect(page.locator(".sidebar-brand-text")).to_contain_text("MicroPie")
    expect(page.locator(".sidebar-tree a.current")).to_contain_text("WebSocket class")

    _check_screenshot(_screenshot(page, "websocket.png"))
    assert not tab.problems, tab.problems


def test_search_finds_receive_text(tab: Tab, site_url: str) -> None:
    from playwright.sync_api import expect

    page = tab.page
    response = page.goto(site_url + "search.html?q=receive_text", wait_until="load")
    assert response is not None and response.ok
    # searchtools.js writes this line once every result is listed.
    expect(page.locator("#search-results .search-summary")).to_contain_text("Search finished")

    target = f"{WEBSOCKET_PAGE}#{RECEIVE_TEXT}"
    result = page.locator(f'#search-results ul.search a[href$="{target}"]')
    expect(result).to_have_count(1)
    expect(result).to_be_visible()
    expect(result).to_contain_text("receive_text")
    _check_screenshot(_screenshot(page, "search.png"))

    # The result leads to the method's entry on the reference page.
    result.click()
    page.wait_for_url(f"**/{target}")
    expect(page.locator(f'dt[id="{RECEIVE_TEXT}"]')).to_be_in_viewport()
    assert not tab.problems, tab.problems


# Every <pre> in the page's text that is wider than its box: [its first line,
# its longest line, its scrollWidth, its clientWidth].
_OVERFLOWING_CODE = """() => Array.from(document.querySelectorAll("article pre"))
    .filter(pre => pre.scrollWidth > pre.clientWidth)
    .map(pre => {
        const lines = pre.textContent.split("\\n");
        const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), "");
        return [lines[0], longest, pre.scrollWidth, pre.clientWidth];
    })"""


def test_no_code_block_scrolls_sideways_at_1280_pixels(tab: Tab, site: Path, site_url: str) -> None:
    page = tab.page
    assert page.viewport_size == {"width": 1280, "height": 900}
    pages = sorted(
        path.relative_to(site).as_posix()
        for path in site.rglob("*.html")
        if not path.relative_to(site).parts[0].startswith("_")
    )
    assert WEBSOCKET_PAGE in pages and "howto/testing.html" in pages, pages
    overflowing = []
    for name in pages:
        response = page.goto(site_url + name, wait_until="load")
        assert response is not None and response.ok, name
        # The code's font decides the widths: measure once it has loaded.
        page.evaluate("() => document.fonts.ready.then(() => true)")
        assert page.locator("article").count() == 1, f"{name} has no <article>"
        for first, longest, wide, box in page.evaluate(_OVERFLOWING_CODE):
            overflowing.append(
                f"{name}: the block starting {first.strip()[:80]!r} is {wide}px wide"
                f" in a {box}px box; its longest line ({len(longest)} characters):"
                f" {longest.strip()!r}"
            )
    assert not overflowing, "code that scrolls sideways at 1280 px:\n" + "\n".join(overflowing)
    assert not tab.problems, tab.problems


def _copy(page: Any, block: Any) -> str:
    """Click *block*'s copy button, as a reader does, and read the clipboard."""
    from playwright.sync_api import expect

    block.hover()
    button = block.locator("button.copybtn")
    expect(button).to_be_visible()
    button.click()
    expect(button).to_have_attribute("data-tooltip", "Copied!")
    return str(page.evaluate("() => navigator.clipboard.readText()"))


def test_copying_an_example_leaves_out_prompts_and_output(tab: Tab, site_url: str) -> None:
    page = tab.page
    response = page.goto(site_url + WEBSOCKET_PAGE, wait_until="load")
    assert response is not None and response.ok
    block = page.locator("article div.highlight", has_text="issubclass(MessageTypeError")
    expect_text = (
        "from micropie import MessageTypeError\n"
        "issubclass(MessageTypeError, ValueError)\n"
        'png = {"type": "websocket.receive", "bytes": b"\\x89PNG"}\n'
        "run(lambda ws: ws.receive_text(), png)"
    )
    # The doctest flag, the output ("True") and the traceback are left behind.
    assert _copy(page, block) == expect_text
    assert not tab.problems, tab.problems


COPY_PAGE = """Copying
=======

>>> class Greeter:
...     greeting = "Hello"
...
>>> Greeter.greeting
'Hello'

.. code-block:: console

   $ python3 -m venv .venv
   $ .venv/bin/pip install uvicorn \\
         websockets
   Successfully installed uvicorn websockets
   $ .venv/bin/uvicorn app:app
   INFO:     Uvicorn running

.. code-block:: python

   print("no prompts: copied as it is")
   print(">>> not a prompt here")
"""


def test_copy_buttons_copy_what_a_reader_types(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The site's configuration on a page with each kind of block, built apart from the site."""
    source = tmp_path_factory.mktemp("copy-source")
    (source / "index.rst").write_text(COPY_PAGE, encoding="utf-8")
    built = tmp_path_factory.mktemp("copy-html")
    sphinx_build("html", built, source=source)
    with _serve(built) as url, _open_tab(browser, url) as tab:
        page = tab.page
        response = page.goto(url + "index.html", wait_until="load")
        assert response is not None and response.ok
        blocks = page.locator("article div.highlight")
        assert blocks.count() == 3
        # The "..." line stays as the empty line that ends the class at a prompt.
        greeter = 'class Greeter:\n    greeting = "Hello"\n\nGreeter.greeting'
        assert _copy(page, blocks.nth(0)) == greeter
        # "$ " goes, the output goes, a command continued with "\\" stays whole.
        assert _copy(page, blocks.nth(1)) == (
            "python3 -m venv .venv\n"
            ".venv/bin/pip install uvicorn \\\n"
            "      websockets\n"
            ".venv/bin/uvicorn app:app"
        )
        assert _copy(page, blocks.nth(2)) == (
            'print("no prompts: copied as it is")\nprint(">>> not a prompt here")'
        )
        assert not tab.problems, tab.problems


def test_the_benchmark_chart_is_legible_on_the_performance_page(tab: Tab, site_url: str) -> None:
    from benchmarks import report

    page = tab.page
    response = page.goto(site_url + "performance.html", wait_until="load")
    assert response is not None and response.ok
    chart = page.locator('article img[src$="results.png"]')
    chart.scroll_into_view_if_needed()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=chart.element_handle()
    )
    shown, natural = chart.evaluate("img => [img.getBoundingClientRect().width, img.naturalWidth]")
    # The PNG is the one benchmarks/report.py draws now, at the size it says.
    assert natural == report.CHART_WIDTH_INCHES * report.CHART_DPI
    assert shown >= 700, f"the chart is shown only {shown}px wide"
    # Its smallest text, in CSS pixels as shown: points -> image pixels -> scaled.
    smallest = min(report.FONT_SIZES.values()) / 72 * report.CHART_DPI * shown / natural
    assert smallest >= 12, f"the chart's smallest text is {smallest:.1f}px on the page"
    _check_screenshot(_screenshot(page, "performance.png"))
    assert not tab.problems, tab.problems


def test_screenshots_are_saved(site: Path) -> None:
    """Runs after the tests above (pytest keeps the file's order): their pictures exist."""
    for name in ("websocket.png", "search.png", "performance.png"):
        _check_screenshot(SCREENSHOTS / name)


def _heading_text(locator: Any) -> str:
    return str(
        locator.evaluate(
            """h => { const c = h.cloneNode(true);
                      c.querySelectorAll(".headerlink").forEach(l => l.remove());
                      return c.textContent.trim(); }"""
        )
    )


def _check_screenshot(path: Path) -> None:
    """A real picture of a page: a PNG of the viewport's width, not blank."""
    assert path.is_file(), f"no screenshot at {path}"
    width, height, colours = _png_summary(path.read_bytes())
    assert width == VIEWPORT["width"] and height >= 400, (width, height)
    assert path.stat().st_size > 20_000, f"{path} is only {path.stat().st_size} bytes"
    assert colours > 16, f"{path} is nearly uniform: a blank page?"


def _png_summary(data: bytes) -> tuple[int, int, int]:
    """Width, height, and how many distinct byte values its pixel data holds."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    position, width, height, pixels = 8, 0, 0, b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            pixels += body
        position += 12 + length
    return width, height, len(set(zlib.decompress(pixels)))
