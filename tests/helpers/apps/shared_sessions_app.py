"""The chat room of examples/room/app.py, its sessions in a directory that every worker shares.

For tests/e2e/test_workers.py: ``MICROPIE_TEST_SESSION_DIR`` names the directory.
Not an example to copy: it shows that a backend shared by the workers is
what makes a session known to all of them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from examples.room.app import ChatRoom
from micropie.sessions import SessionBackend

_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class DirectoryBackend(SessionBackend):
    """Each session is a JSON file named after its ID."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, session_id: str) -> Path | None:
        if not _SESSION_ID.fullmatch(session_id):
            return None  # never a path outside the directory, whatever the cookie says
        return self.directory / f"{session_id}.json"

    async def load(self, session_id: str) -> dict[str, Any] | None:
        path = self._path(session_id)
        if path is None or not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    async def save(self, session_id: str, data: dict[str, Any]) -> None:
        path = self._path(session_id)
        if path is None:
            return
        if not data:
            path.unlink(missing_ok=True)
            return
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(data), encoding="utf-8")
        partial.replace(path)  # the other worker reads the old file or the new one


app = ChatRoom()
app.session_backend = DirectoryBackend(Path(os.environ["MICROPIE_TEST_SESSION_DIR"]))
