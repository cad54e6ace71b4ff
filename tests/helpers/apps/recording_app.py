"""An application that records what ran, for the in-process tests of the checks
made before anything runs: the Origin check (tests/unit/test_origin_check.py)
and the Host check (tests/unit/test_allowed_hosts.py); and what those tests
look at: whether a handshake got through, the sessions loaded, the WebSocket
middleware hooks that ran."""

from __future__ import annotations

from typing import Any

from micropie import App, WebSocket, WebSocketMiddleware, WebSocketRequest
from micropie.sessions import InMemorySessionBackend
from micropie.testing import TestClient, WebSocketRejected


class RecordingApp(App):
    """Records each handler that runs, so that a test can tell it never did."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.ran: list[str] = []

    def login(self) -> str:
        self.ran.append("login")
        self.request.session["user"] = "ada"
        return "logged in"

    async def ws_echo(self, ws: WebSocket) -> None:
        self.ran.append("ws_echo")
        await ws.accept()
        await ws.send_text(f"hello, {self.request.session.get('user', 'stranger')}")
        await ws.send_text(await ws.receive_text())


def accepted(
    client: TestClient,
    origin: str | None = None,
    *,
    host: str | None = None,
    secure: bool = False,
) -> bool:
    """Whether a handshake with this ``Origin`` (none for None), sent with this
    ``Host`` (the test client's own, ``testserver``, for None), reaches the
    ws_echo of a :class:`RecordingApp` and echoes; refused means HTTP 403."""
    headers = {"Origin": origin} if origin is not None else {}
    if host is not None:
        headers["Host"] = host
    try:
        with client.websocket_connect("/echo", headers=headers, secure=secure) as ws:
            assert ws.receive_text().startswith("hello, ")
            ws.send_text("ping")
            assert ws.receive_text() == "ping"
    except WebSocketRejected as rejected:
        assert rejected.status_code == 403
        return False
    return True


class CountingBackend(InMemorySessionBackend):
    """Records the ID of each session it is asked to load."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []

    async def load(self, session_id: str) -> dict[str, Any] | None:
        self.loads.append(session_id)
        return await super().load(session_id)


class HookLog(WebSocketMiddleware):
    """Records each of its hooks that runs: ``before``, ``after``."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def before_websocket(self, request: WebSocketRequest) -> None:
        self.events.append("before")

    async def after_websocket(self, request: WebSocketRequest) -> None:
        self.events.append("after")
