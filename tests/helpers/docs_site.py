"""The documentation site as readers get it: built by Sphinx, read as HTML.

Shared by the tests that build the site (``test_docs_links``,
``test_docs_examples``, ``test_site_browser``); it holds no tests itself.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.helpers.support import REPO_ROOT

ROOT = REPO_ROOT
DOCS_CONF = ROOT / "docs"
DOCS_SOURCE = DOCS_CONF / "source"
#: Where the browser test builds the site and saves its screenshots (gitignored).
SITE_DIR = ROOT / "build" / "site"
#: A whole build takes seconds; this only stops a hung one.
BUILD_TIMEOUT = 240
#: What the WebSocket reference page shows, section by section: the ids of its entries.
#: The last section is what the page adds below the reference text.
REFERENCE_SECTIONS = {
    "Constructor": ["micropie.WebSocket"],
    "Methods": [
        "micropie.WebSocket.accept",
        "micropie.WebSocket.receive_text",
        "micropie.WebSocket.receive_bytes",
        "micropie.WebSocket.send_text",
        "micropie.WebSocket.send_bytes",
        "micropie.WebSocket.close",
    ],
    "Attributes": ["micropie.WebSocket.accepted", "micropie.WebSocket.session_id"],
    "Exceptions": ["micropie.ConnectionClosed"],
    "Errors in detail": [
        "micropie.ConnectionClosed.code",
        "micropie.ConnectionClosed.reason",
        "micropie.MessageTypeError",
        "micropie.MessageTypeError.data",
    ],
    "Reading messages in a loop": [
        "micropie.WebSocket.iter_text",
        "micropie.WebSocket.iter_bytes",
    ],
}


def sphinx_build(builder: str, outdir: Path, *options: str, source: Path = DOCS_SOURCE) -> None:
    """``sphinx-build -W -n -E -b <builder> -c docs docs/source <outdir>``, as tox runs it.

    *source* builds other pages with the site's configuration. Fails the
    calling test with Sphinx's warnings when the build fails.
    """
    command = [
        sys.executable, "-m", "sphinx", "-W", "-n", "-E", "-q", "-b", builder, *options,
        "-c", str(DOCS_CONF), str(source), str(outdir),
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, cwd=ROOT, timeout=BUILD_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"sphinx-build -b {builder} took more than {BUILD_TIMEOUT}s")
    if result.returncode != 0:
        # Sphinx's own messages, without the Python deprecation warnings of its extensions.
        lines = [
            line
            for line in result.stderr.splitlines()
            if "Warning: " not in line and "set_application" not in line
        ]
        pytest.fail(
            f"sphinx-build -W -n -b {builder} failed (exit {result.returncode}):\n"
            + "\n".join(lines[-60:])
        )


@dataclass(frozen=True)
class Link:
    """One URL in a page: where it is, and whether it is part of the page's text."""

    tag: str
    attribute: str
    url: str
    line: int
    in_content: bool  # inside <article>, the page's own text, not the theme's frame


@dataclass
class Page:
    ids: set[str] = field(default_factory=set)
    links: list[Link] = field(default_factory=list)


# The attributes that hold a URL the browser follows or loads.
_URL_ATTRIBUTES = {
    "a": ("href",),
    "link": ("href",),
    "area": ("href",),
    "use": ("href", "xlink:href"),
    "script": ("src",),
    "img": ("src",),
    "iframe": ("src",),
    "source": ("src",),
    "form": ("action",),
}
# Elements that have no end tag: they never open a level of nesting.
_VOID = frozenset(
    ["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"]
)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._record(tag, attrs)
        if tag not in _VOID:
            self._open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._record(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            while self._open.pop() != tag:
                pass

    def _record(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        # An <a name="..."> is a fragment's target too, as old HTML has it.
        for name in ("id", "name") if tag == "a" else ("id",):
            if values.get(name):
                self.page.ids.add(str(values[name]))
        in_content = "article" in self._open or tag == "article"
        for attribute in _URL_ATTRIBUTES.get(tag, ()):
            url = values.get(attribute)
            if url is not None:
                line = self.getpos()[0]
                self.page.links.append(Link(tag, attribute, url, line, in_content))


def read_site(outdir: Path) -> dict[str, Page]:
    """Every HTML page of a built site, by its path relative to *outdir* (``a/b.html``)."""
    pages = {}
    for path in sorted(outdir.rglob("*.html")):
        parser = _PageParser()
        parser.feed(path.read_text(encoding="utf-8"))
        parser.close()
        pages[path.relative_to(outdir).as_posix()] = parser.page
    return pages
