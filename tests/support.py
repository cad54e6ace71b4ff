"""Shared test helpers: programs that some tests need, and what pages show."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
from pathlib import Path

import pytest


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
