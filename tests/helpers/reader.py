"""Follow a documentation page as a reader does: save its files, run its examples.

A reader has MicroPie installed and nothing else: no clone of the repository
on ``sys.path``, no ``examples`` package, no hidden setup. Walking a page's
doctree top to bottom, in a fresh directory:

* a code block whose caption is a file name (``app.py``,
  ``templates/index.html``, ``Dockerfile``) is a file the reader saves under
  that name; a later block with the same caption replaces it;
* ``>>>`` examples (doctest blocks in the text and in docstrings, and
  ``.. doctest::`` blocks) run in one interpreter session, in page order,
  with the directory current and first on ``sys.path``;
* a paragraph that begins with "Start a new Python session" ends the
  session: what follows runs in a new interpreter, in the same directory.

Hidden code (``testsetup``, ``testcleanup``, ``:hide:``) and ``testcode``
blocks have no place on such a page: the reader never sees the former and
cannot tell the latter from a fragment.

Each session runs in a subprocess (``tests/helpers/reader_session.py``, started with
``python -I``: no current directory, script directory or ``PYTHONPATH`` on
``sys.path``). This module holds no tests itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from docutils import nodes

from docs.reader_pages import file_caption, file_text, starts_new_session
from tests.helpers.support import REPO_ROOT

ROOT = REPO_ROOT
SESSION_SCRIPT = Path(__file__).with_name("reader_session.py")
#: One page's session: its examples start servers and run pytest at most.
SESSION_TIMEOUT = 300

_HIDDEN = {"testsetup", "testcleanup", "testcode", "testoutput"}


class PageError(Exception):
    """The page breaks the reader contract (not: an example failed)."""


@dataclass(frozen=True)
class SaveFile:
    name: str
    text: str
    where: str


@dataclass(frozen=True)
class RunExamples:
    text: str
    where: str
    source: str
    line: int


@dataclass(frozen=True)
class SessionResult:
    examples: int
    files: list[str]


Step = SaveFile | RunExamples


def _where(node: nodes.Element, docname: str) -> str:
    return f"{node.get('source') or docname}:{node.line or '?'}"


def reader_sessions(doctree: nodes.document, docname: str) -> list[list[Step]]:
    """The page's steps, in page order, split into interpreter sessions."""
    sessions: list[list[Step]] = [[]]
    for node in doctree.findall(nodes.Element):
        where = _where(node, docname)
        test_type = node.get("testnodetype")
        if test_type in _HIDDEN or (test_type == "doctest" and isinstance(node, nodes.comment)):
            raise PageError(
                f"{where}: a {test_type} block{' (hidden)' if test_type == 'doctest' else ''}: "
                "the reader runs only what the page shows; show the code as a "
                "doctest or a file with a caption"
            )
        if isinstance(node, nodes.doctest_block) or (
            isinstance(node, nodes.literal_block) and test_type == "doctest"
        ):
            text = node.get("test", node.astext())
            source = str(node.get("source") or docname)
            sessions[-1].append(RunExamples(text, where, source, (node.line or 1) - 1))
        elif isinstance(node, nodes.literal_block) and (name := file_caption(node)):
            sessions[-1].append(SaveFile(name, _whole_file_text(node, where), where))
        elif starts_new_session(node):
            sessions.append([])
    return [session for session in sessions if session]


def _whole_file_text(node: nodes.literal_block, where: str) -> str:
    """The block's text, which must be all of the included file when it is a literalinclude."""
    text = node.astext()
    included = node.get("source")
    if included and Path(included).is_file() and node.get("language") != "pycon":
        whole = Path(included).read_text(encoding="utf-8")
        if text.strip("\n") != whole.strip("\n"):
            raise PageError(
                f"{where}: the block captioned as a file shows part of {included}; "
                "a reader saves exactly what the page shows, so include the whole file"
            )
    return file_text(node)


def run_session(steps: list[Step], directory: Path) -> SessionResult:
    """Run one interpreter session of a page in *directory*; AssertionError on a failure."""
    payload = {"root": str(ROOT), "steps": [{"kind": type(s).__name__, **asdict(s)} for s in steps]}
    steps_file = directory.parent / f"{directory.name}-steps.json"
    steps_file.write_text(json.dumps(payload), encoding="utf-8")
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # Steps rewrite a file within a second, keeping its size: a cached .pyc
    # (validated by whole-second mtime and size) would hide the new version.
    # -B for the session itself (-I ignores the environment), the variable
    # for the servers its examples start.
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        result = subprocess.run(
            [sys.executable, "-I", "-B", str(SESSION_SCRIPT), str(steps_file)],
            cwd=directory,
            env=environment,
            capture_output=True,
            text=True,
            timeout=SESSION_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"the page's examples ran for more than {SESSION_TIMEOUT}s:\n{exc.stdout or ''}"
        ) from None
    last = result.stdout.rstrip("\n").rpartition("\n")[2]
    if result.returncode != 0 or not last.startswith("{"):
        raise AssertionError(
            f"a reader following the page fails (exit {result.returncode}):\n"
            + result.stdout[-8000:]
            + result.stderr[-4000:]
        )
    summary = json.loads(last)
    return SessionResult(summary["examples"], summary["files"])
