"""The published WebSocket page: built from the code's docstrings, word for word the reference.

What the page adds (the exceptions' attributes, the argument errors) comes after
the reference text, never inside it, and each object is described once.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.helpers.docs_site import REFERENCE_SECTIONS, sphinx_build
from tests.helpers.support import REPO_ROOT

ROOT = REPO_ROOT
VENDORED_REFERENCE = ROOT / "tests" / "data" / "websocket_reference.rst"
SHARED_REFERENCE = ROOT.parent / "shared" / "reference" / "websocket.rst"

_SECTIONS = list(REFERENCE_SECTIONS)
_FIRST_ADDED = _SECTIONS.index("Errors in detail")
DOCUMENTED = [entry for name in _SECTIONS[:_FIRST_ADDED] for entry in REFERENCE_SECTIONS[name]]
# What the page adds below the reference text, in the page's order.
ADDED = [entry for name in _SECTIONS[_FIRST_ADDED:] for entry in REFERENCE_SECTIONS[name]]
# Words the reference text never uses: none of them may show up inside it.
ADDED_WORDS = [
    "Errors in detail",
    "MessageTypeError",
    "TypeError",
    "1006",
    "123 bytes",
    "iter_text",
]


class _ArticleText(HTMLParser):
    """Collects the text inside the page's <article>, where furo puts the content."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.chunks: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "article" or self.depth:
            self.depth += 1
        self.ids.extend(value for name, value in attrs if name == "id" and value)

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.chunks.append(data)


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _rendered(paragraph: str) -> str:
    """What Sphinx shows for a paragraph of reST: the roles' text, no markup."""
    text = re.sub(r":class:`~?(?:[\w.]+\.)?(\w+)`", r"\1", paragraph)
    text = re.sub(r":meth:`~?(?:[\w.]+\.)?(\w+)`", r"\1()", text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"\*([^*]+)\*", r"\1", text)
    return _normalise(text)


def _reference_items(source: str) -> list[str]:
    """Headings and paragraphs of the reference page, in order, as rendered text."""
    items = []
    for block in re.split(r"\n\s*\n", source):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines or lines[0].lstrip().startswith(".. "):
            continue
        if len(lines) == 2 and re.fullmatch(r"[=\-~^]+", lines[1].strip()):
            items.append(lines[0].strip())  # a section title
            continue
        items.append(_rendered(" ".join(line.strip() for line in lines)))
    return items


@pytest.fixture(scope="module")
def built_page(tmp_path_factory: pytest.TempPathFactory) -> _ArticleText:
    out = tmp_path_factory.mktemp("html")
    sphinx_build("html", out)
    page = _ArticleText()
    page.feed((out / "reference" / "websocket.html").read_text(encoding="utf-8"))
    return page


def test_vendored_reference_is_the_published_one() -> None:
    if not SHARED_REFERENCE.exists():
        pytest.skip(f"{SHARED_REFERENCE} is not beside this checkout")
    assert VENDORED_REFERENCE.read_text() == SHARED_REFERENCE.read_text()


def test_reference_items_are_parsed() -> None:
    items = _reference_items(VENDORED_REFERENCE.read_text())
    # title, intro, 4 headings, 2 class bodies, 6 methods, 2 attributes
    assert len(items) == 16
    assert items[0] == "WebSocket class"
    assert items[-1].startswith("Raised by receive_text() and receive_bytes() when the client")


def test_every_paragraph_appears_verbatim_in_order(built_page: _ArticleText) -> None:
    text = _normalise("".join(built_page.chunks))
    position = 0
    for item in _reference_items(VENDORED_REFERENCE.read_text()):
        found = text.find(item, position)
        assert found != -1, f"not found (in order) on the built page: {item!r}"
        position = found + len(item)


@pytest.mark.parametrize("anchor", DOCUMENTED + ADDED)
def test_each_member_is_rendered_once(built_page: _ArticleText, anchor: str) -> None:
    assert built_page.ids.count(anchor) == 1


def test_additions_come_after_the_reference_text(built_page: _ArticleText) -> None:
    text = _normalise("".join(built_page.chunks))
    position = 0
    for item in _reference_items(VENDORED_REFERENCE.read_text()):
        position = text.index(item, position) + len(item)
    reference, rest = text[:position], text[position:]
    for word in ADDED_WORDS:
        assert word not in reference, f"{word!r} appears inside the reference text"
        assert word in rest, f"{word!r} is missing below the reference text"
    # The entries too: every added one after every one of the reference's.
    order = [anchor for anchor in built_page.ids if anchor in DOCUMENTED + ADDED]
    assert order == DOCUMENTED + ADDED


def test_docstrings_are_the_reference_text() -> None:
    import inspect

    import micropie

    source = VENDORED_REFERENCE.read_text()
    bodies = dict(
        (name.strip(), _normalise(body))
        for name, body in re.findall(
            r"^\.\. (?:class|method|attribute):: (\w+)[^\n]*\n\n((?:   .*\n?|\n)+)", source, re.M
        )
    )
    owners = {"WebSocket": micropie.WebSocket, "ConnectionClosed": micropie.ConnectionClosed}
    for name, body in bodies.items():
        obj = owners.get(name) or getattr(micropie.WebSocket, name)
        assert _normalise(inspect.getdoc(obj) or "") == body, name
