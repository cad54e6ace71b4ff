"""The live feed of docs/source/howto/server-sent-events.rst, saved as a reader saves it."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.support import save_files

#: Each file of the example, and the name the page saves it under.
FILES = {"examples/sse/app.py": "app.py", "examples/sse/index.html": "index.html"}


def save_feed(directory: Path) -> Path:
    """Save the page's files into *directory*, as a reader does; return it.

    Beside them, ``quick.py``: the feed with a heartbeat every 0.2 s instead
    of 15, for the tests that wait for one.
    """
    save_files(directory, FILES)
    (directory / "quick.py").write_text("from app import Feed\n\napp = Feed(heartbeat=0.2)\n")
    return directory
