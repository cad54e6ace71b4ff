"""The application that tests/unit/test_hostile_input.py attacks in process, and
tests/e2e/test_hostile_input_e2e.py over the wire.

Served with ``uvicorn tests.helpers.apps.hostile_app:app`` from the repository root.
"""

from __future__ import annotations

from typing import Any

from micropie import App, WebSocket
from micropie.sessions import new_session_id

#: Raised by failing handlers; no response and no close reason may ever carry it.
SECRET = "hostile-input-secret: the launch code is 0000"
#: The App's 500 body and 1011 close reason: fixed words, never the exception.
ERROR_BODY = b"Internal Server Error"
ERROR_REASON = "Internal server error"
MAX_BODY_SIZE = 64 * 1024
#: Text that only tracebacks and exception reports contain.
TRACEBACK_MARKERS = ("Traceback", 'File "', SECRET)
#: What App documents of itself: no path may reach any of these.
DOCUMENTED_APP_NAMES = (
    "request",
    "startup_handlers",
    "shutdown_handlers",
    "session_backend",
    "middlewares",
    "max_body_size",
)


class Target(App):
    """The handlers that both hostile test modules attack: some answer, some fail, some
    are private. ``_secret`` is what the failing and the private ones carry, which no
    answer may ever show."""

    _secret = SECRET

    def index(self) -> str:
        return "home"

    def echo(self, word: str = "", *rest: str) -> str:
        return word

    def boom(self) -> str:
        raise RuntimeError(self._secret)

    def _private(self) -> str:
        return self._secret

    async def ws_boom(self, ws: WebSocket) -> None:
        await ws.accept()
        raise RuntimeError(self._secret)

    async def ws__private(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(self._secret)

    async def ws_echo(self, ws: WebSocket) -> None:
        await ws.accept()
        while True:
            await ws.send_text(await ws.receive_text())


class Site(Target):
    """An app with a handler of each kind, and none named like anything App has."""

    def __init__(self) -> None:
        super().__init__(max_body_size=MAX_BODY_SIZE)

    def count(self) -> dict[str, Any]:
        query = self.request.query_params
        return {"params": len(query), "values": sum(map(len, query.values()))}

    def fields(self) -> dict[str, int]:
        return {"fields": len(self.request.body_params)}

    def add(self, a: int = 0, b: int = 0) -> dict[str, Any]:
        return {"json": type(self.request.json()).__name__}

    async def raw(self) -> str:
        return str(len(await self.request.body()))

    def upload(self, doc: Any = None) -> str:
        return str(getattr(doc, "size", None))

    def whoami(self) -> str:
        return str(self.request.session.get("user", "anonymous"))

    def login(self, user: str = "ada") -> str:
        self.request.session["user"] = user
        return "logged in"

    async def ws_query(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(str(len(self.request.query_params)))

    async def ws_login(self, ws: WebSocket) -> None:
        await ws.accept(session_id=new_session_id())
        self.request.session["user"] = "websocket"
        await ws.send_text("logged in")


app = Site()
