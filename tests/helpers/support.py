"""Shared test helpers: programs that some tests need, and what pages show."""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
import shutil
import string
from collections.abc import Mapping
from pathlib import Path

import pytest

#: The repository root: servers run there, so ``examples.echo.app:app`` imports.
REPO_ROOT = Path(__file__).resolve().parents[2]


def require_program(name: str) -> str:
    """The path of the program *name*, or skip the test where it is missing.

    In CI (``CI`` set), a missing program fails the test instead: ``.ci/run``
    installs every program the tests need, so a skip there would hide a gap.
    """
    path = shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is not None:
        return path
    message = f"{name} is not installed (Debian package: see .ci/run)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI must run this test")
    pytest.skip(message)


def require_module(name: str) -> None:
    """Skip the test where the Python package *name* is not installed; in CI, fail it.

    For packages of the ``test`` extra that a test runs as a program
    (``python -m gunicorn``), as :func:`require_program` does for programs.
    """
    if importlib.util.find_spec(name) is not None:
        return
    message = f"the Python package {name} is not installed (the test extra has it)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI must run this test")
    pytest.skip(message)


def micropie_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The ERROR records (and worse) of the ``micropie`` logger that *caplog* caught."""
    return [r for r in caplog.records if r.name == "micropie" and r.levelno >= logging.ERROR]


def assert_logged_once(caplog: pytest.LogCaptureFixture, text: str) -> None:
    """The ``micropie`` logger logged one error, with its traceback, and *text* in it."""
    assert text in str(the_logged_error(caplog))
    assert text in caplog.text


def the_logged_error(caplog: pytest.LogCaptureFixture) -> BaseException:
    """The exception of the one ERROR record of the ``micropie`` logger, logged with its
    traceback; fails if there is not exactly one such record."""
    logged = micropie_errors(caplog)
    assert len(logged) == 1, [record.getMessage() for record in logged]
    assert logged[0].exc_info is not None and logged[0].exc_info[1] is not None
    return logged[0].exc_info[1]


def captions_of_file(page: Path, included: str) -> list[str]:
    """The captions of the ``literalinclude`` blocks of *page* that show *included*.

    *included* is a path from the repository root (``examples/echo/app.py``);
    an include without a caption counts as ``""``.
    """
    pattern = re.compile(
        rf"^\.\. literalinclude:: (?:\.\./)+{re.escape(included)}\n((?:   .*\n)*)", re.M
    )
    text = page.read_text(encoding="utf-8")
    found = []
    for options in pattern.findall(text):
        caption = re.search(r"^   :caption: (.*)$", options, re.M)
        found.append(caption.group(1).strip() if caption else "")
    return found


def save_files(directory: Path, files: Mapping[str, str]) -> Path:
    """Save repository files into *directory* as a reader of a page does; return it.

    *files* maps each file's path from the repository root
    (``examples/sse/app.py``) to the name the page saves it under (``app.py``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    for source, name in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / source, directory / name)
    return directory


#: The alphabet of secrets.token_urlsafe: base64url without padding.
URLSAFE_ALPHABET = frozenset(string.ascii_letters + string.digits + "-_")


def assert_strong_session_id(session_id: str | None) -> None:
    """*session_id* is base64url, and long enough to carry 128 bits at least."""
    assert session_id is not None
    assert set(session_id) <= URLSAFE_ALPHABET, session_id
    bits = len(session_id) * math.log2(len(URLSAFE_ALPHABET))
    assert bits >= 128, f"{session_id!r} carries {bits:.0f} bits"


class FakeClock:
    """Stands in for ``time`` inside micropie.sessions; move it with ``now``.

    The ``clock`` fixture (tests/unit/conftest.py) puts one in place.
    """

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now
