"""The chat room of examples/room/app.py served as a reader has it: alone in a directory as
``app.py``, under ``uvicorn app:app`` (its in-process tests: tests/unit/test_howto_room.py)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.clients import chat_say, ws_connect
from tests.helpers.servers import run_uvicorn
from tests.helpers.support import save_files


def test_the_file_alone_serves_the_room(tmp_path: Path) -> None:
    save_files(tmp_path, {"examples/room/app.py": "app.py"})
    with run_uvicorn("app:app", cwd=tmp_path) as server, ws_connect(f"{server.ws_url}/chat") as ws:
        assert re.fullmatch(r"guest-\d{4}", chat_say(ws, "hello"))
