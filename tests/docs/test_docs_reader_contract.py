"""The reader test itself: what it saves, what it runs, and what it refuses.

Pages are built here by hand as the doctrees Sphinx makes of them, so that
each rule of ``tests/helpers/reader.py`` is shown to hold, and to fail where it must.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from docutils import nodes
from docutils.frontend import get_default_settings
from docutils.parsers.rst import Parser
from docutils.utils import new_document

from docs.reader_pages import file_caption
from tests.helpers.reader import PageError, reader_sessions, run_session
from tests.helpers.support import REPO_ROOT

ROOT = REPO_ROOT


def page(*children: nodes.Node) -> nodes.document:
    document = new_document("page.rst", get_default_settings(Parser))
    for child in children:
        document += child
    return document


def shown_file(caption: str, text: str, included: str | None = None) -> nodes.container:
    block = nodes.literal_block(text, text)
    if included:
        block["source"] = included
    container = nodes.container(literal_block=True)
    container += nodes.caption(caption, caption)
    container += block
    return container


def examples(text: str) -> nodes.doctest_block:
    return nodes.doctest_block(text, text)


def paragraph(text: str) -> nodes.paragraph:
    return nodes.paragraph(text, text)


def follow(document: nodes.document, directory: Path) -> list[int]:
    """Run every session of *document* in *directory*; the examples each one ran."""
    directory.mkdir(exist_ok=True)
    return [run_session(steps, directory).examples for steps in reader_sessions(document, "page")]


@pytest.mark.parametrize(
    ("caption", "name"),
    [
        ("app.py", "app.py"),
        ("templates/index.html", "templates/index.html"),
        ("Dockerfile", "Dockerfile"),
        ("micropie.service", "micropie.service"),
        ("Step 2: the app", None),
        ("Terminal", None),
        ("../outside.py", None),
        ("/etc/passwd", None),
    ],
)
def test_a_caption_names_a_file_only_when_it_is_a_relative_path(
    caption: str, name: str | None
) -> None:
    container = shown_file(caption, "x = 1\n")
    assert file_caption(container[1]) == name


def test_the_files_shown_are_saved_and_the_examples_run_in_order(tmp_path: Path) -> None:
    document = page(
        shown_file("greeting.py", 'WORD = "hello"\n'),
        examples(">>> from greeting import WORD\n>>> WORD\n'hello'\n"),
        shown_file("data/notes.txt", "first\n"),
        examples(">>> open('data/notes.txt').read()\n'first\\n'\n>>> WORD.upper()\n'HELLO'\n"),
    )
    assert follow(document, tmp_path / "reader") == [4]
    assert (tmp_path / "reader" / "data" / "notes.txt").read_text() == "first\n"


def test_a_failing_example_fails_the_page_and_says_where(tmp_path: Path) -> None:
    document = page(examples(">>> 1 + 1\n3\n"))
    with pytest.raises(AssertionError, match=r"(?s)examples at page:\?.*Expected:\s+3.*Got:\s+2"):
        follow(document, tmp_path / "reader")


@pytest.mark.parametrize("new_session", [True, False])
def test_a_changed_file_needs_a_new_session(tmp_path: Path, new_session: bool) -> None:
    """Why the tutorial starts a new Python session at each step: Python keeps
    the first import of a module, and the names of earlier examples."""
    restart = [paragraph("Start a new Python session in the same directory, and:")]
    document = page(
        shown_file("app.py", "VERSION = 1\n"),
        examples(">>> from app import VERSION\n>>> VERSION\n1\n"),
        shown_file("app.py", "VERSION = 2\n"),
        *(restart if new_session else []),
        examples(">>> import app\n>>> app.VERSION\n2\n>>> 'VERSION' in globals()\nFalse"),
    )
    if new_session:
        assert follow(document, tmp_path / "reader") == [2, 3]
    else:
        with pytest.raises(AssertionError, match=r"Expected:\s+2\s+Got:\s+1"):
            follow(document, tmp_path / "reader")


def test_the_repository_is_not_importable_but_micropie_is(tmp_path: Path) -> None:
    document = page(
        examples(
            ">>> import examples\nTraceback (most recent call last):\n"
            "ModuleNotFoundError: No module named 'examples'\n"
            ">>> import micropie, os\n>>> os.getcwd() == os.path.realpath('.')\nTrue\n"
        )
    )
    assert follow(document, tmp_path / "reader") == [3]


def test_a_captioned_literalinclude_must_show_the_whole_file(tmp_path: Path) -> None:
    included = tmp_path / "whole.py"
    included.write_text("A = 1\nB = 2\n")
    part = page(shown_file("whole.py", "A = 1", included=str(included)))
    with pytest.raises(PageError, match="shows part of"):
        reader_sessions(part, "page")
    whole = page(shown_file("whole.py", "A = 1\nB = 2", included=str(included)))
    assert reader_sessions(whole, "page")


@pytest.mark.parametrize("kind", ["testsetup", "testcleanup", "testcode", "testoutput"])
def test_hidden_or_unrunnable_test_blocks_are_refused(kind: str) -> None:
    node = nodes.comment("import secret", "import secret", testnodetype=kind)
    with pytest.raises(PageError, match=f"a {kind} block"):
        reader_sessions(page(node), "page")


def test_a_hidden_doctest_is_refused() -> None:
    node = nodes.comment(">>> 1\n1", ">>> 1\n1", testnodetype="doctest")
    with pytest.raises(PageError, match="hidden"):
        reader_sessions(page(node), "page")
