"""Shared test helpers: programs that some tests need."""

from __future__ import annotations

import logging
import os
import shutil

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


def micropie_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The ERROR records (and worse) of the ``micropie`` logger that *caplog* caught."""
    return [r for r in caplog.records if r.name == "micropie" and r.levelno >= logging.ERROR]
