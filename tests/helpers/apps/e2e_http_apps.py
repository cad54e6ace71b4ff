"""An application for the HTTP end-to-end tests (tests/e2e/test_e2e_http.py).

Served with ``uvicorn tests.helpers.apps.e2e_http_apps:app`` from the repository root.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

from micropie import App, UploadFile, WebSocket

#: Raised by ``boom``; the client must never see this text.
SECRET_ERROR_TEXT = "do-not-leak: http handler secret 7f3a"
#: Bodies larger than this are refused with 413.
MAX_BODY_SIZE = 4 * 1024 * 1024
#: How long ``stream`` waits for its release before giving up, in seconds.
STREAM_WAIT = 10.0


class HttpE2EApp(App):
    def __init__(self) -> None:
        super().__init__(max_body_size=MAX_BODY_SIZE)
        self.released: set[str] = set()

    def greet(self, name: str, greeting: str = "Hello") -> str:
        return f"{greeting}, {name}!"

    def add(self, a: int, b: int) -> dict[str, Any]:
        return {"sum": a + b}

    def upload(self, title: str, doc: UploadFile) -> dict[str, Any]:
        content = doc.read()
        return {
            "title": title,
            "filename": doc.filename,
            "content_type": doc.content_type,
            "size": doc.size,
            "sha256": hashlib.sha256(content).hexdigest(),
        }

    async def stream(self, token: str) -> AsyncIterator[str]:
        """Sends "first", then holds the response open until ``/release/<token>``."""

        async def produce() -> AsyncIterator[str]:
            yield "first"
            loop = asyncio.get_running_loop()
            deadline = loop.time() + STREAM_WAIT
            while token not in self.released and loop.time() < deadline:
                await asyncio.sleep(0.01)
            yield "second" if token in self.released else "timed out"
            yield "third"

        return produce()

    def release(self, token: str) -> str:
        self.released.add(token)
        return "released"

    def page(self) -> tuple[int, str, dict[str, str]]:
        return 200, "<h1>a page</h1>", {"X-Page": "yes"}

    def go(self) -> Any:
        return self._redirect("/page")

    def login(self, user: str) -> str:
        self.request.session["user"] = user
        return "logged in"

    async def ws_whoami(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(str(self.request.session.get("user", "anonymous")))

    def boom(self) -> str:
        raise RuntimeError(SECRET_ERROR_TEXT)


app = HttpE2EApp()
