"""The tutorial (docs/source/tutorial.rst) as its tests take it: the step files, and the
files that the page itself shows."""

from __future__ import annotations

import contextlib
import re
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import RunningServer, run_uvicorn
from tests.helpers.support import REPO_ROOT

PAGE = REPO_ROOT / "docs" / "source" / "tutorial.rst"
#: Step number -> the file the page shows for it, which the reader saves as app.py.
STEP_FILES = {
    1: "examples/tutorial/step1/app.py",
    2: "examples/tutorial/step2/app.py",
    3: "examples/tutorial/step3/app.py",
    4: "examples/tutorial/step4/app.py",
}
FINAL = max(STEP_FILES)
#: The name the reader saves every step's file under.
APP_NAME = "app.py"


def page_text() -> str:
    return PAGE.read_text(encoding="utf-8")


def page_file(caption: str) -> str:
    """The text of the ``code-block`` captioned *caption*, as the reader saves it."""
    match = re.search(
        rf"^\.\. code-block:: \w+\n(?:   :[\w-]+:.*\n)*?   :caption: {re.escape(caption)}\n"
        rf"(?:   :[\w-]+:.*\n)*\n(?P<body>(?:   .*\n|\n)+)",
        page_text(),
        re.M,
    )
    assert match is not None, f"the tutorial shows no code block captioned {caption}"
    return textwrap.dedent(match["body"]).strip("\n") + "\n"


def save_step(step: int, directory: Path) -> Path:
    """Save the file the page shows for *step* in *directory*, under the page's name."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / STEP_FILES[step], directory / APP_NAME)
    return directory


@contextlib.contextmanager
def serve_step(step: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The file of *step*, alone in a directory of its own as ``app.py``, served there
    with the page's command, ``uvicorn app:app``."""
    directory = save_step(step, tmp_path_factory.mktemp(f"tutorial-step{step}"))
    assert sorted(p.name for p in directory.iterdir()) == [APP_NAME]
    with run_uvicorn("app:app", cwd=directory) as server:
        yield server
