"""The App when its collaborators fail: session backends, servers, lifespan handlers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from micropie import App, ConnectionClosed, Headers, WebSocket
from micropie.sessions import InMemorySessionBackend, SessionBackend, new_session_id
from micropie.testing import TestClient, WebSocketRejected


class BrokenBackend(SessionBackend):
    async def load(self, session_id: str) -> dict[str, Any] | None:
        raise ConnectionError("session store unreachable: secret-host:6379")

    async def save(self, session_id: str, data: dict[str, Any]) -> None:
        raise ConnectionError("session store unreachable: secret-host:6379")


class Site(App):
    def index(self) -> str:
        return "home"

    def remember(self) -> str:
        self.request.session["seen"] = True
        return "remembered"

    async def ws_echo(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(await ws.receive_text())

    async def ws_crash_after_change(self, ws: WebSocket) -> None:
        await ws.accept()
        self.request.session["half"] = "written"
        raise RuntimeError("boom")

    async def ws_room(self, ws: WebSocket, name: str) -> None:
        await ws.accept()
        await ws.send_text(name)


def micropie_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "micropie" and r.levelno >= logging.ERROR]


def test_websocket_handshake_with_a_failing_session_backend_is_rejected_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = TestClient(Site(session_backend=BrokenBackend()))
    client.cookies["session_id"] = "abc"
    with pytest.raises(WebSocketRejected) as info, client.websocket_connect("/echo"):
        pass
    assert info.value.status_code == 403
    assert any("loading the session" in r.getMessage() for r in micropie_errors(caplog))


def test_http_request_with_a_failing_session_backend_is_500_without_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = TestClient(Site(session_backend=BrokenBackend()))
    response = client.get("/remember")  # no cookie: saving the new session fails
    assert response.status_code == 500
    assert "secret-host" not in response.text
    client.cookies["session_id"] = "abc"
    response = client.get("/")  # a cookie: loading the session fails
    assert response.status_code == 500
    assert "secret-host" not in response.text
    messages = [r.getMessage() for r in micropie_errors(caplog)]
    assert any("loading the session for /" in m for m in messages)


def test_a_websocket_handler_that_crashes_does_not_save_its_half_changed_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = InMemorySessionBackend()
    session_id = new_session_id()
    asyncio.run(backend.save(session_id, {"before": 1}))
    client = TestClient(Site(session_backend=backend))
    client.cookies["session_id"] = session_id
    with client.websocket_connect("/crash_after_change") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.receive_text()
        assert closed.value.code == 1011
    assert asyncio.run(backend.load(session_id)) == {"before": 1}


def test_a_close_code_the_server_refuses_becomes_1000(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # daphne's protocol library refuses some close codes with a bare Exception.
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.close" and message["code"] == 1011:
            raise Exception("Invalid close code")  # what that server raises
        sent.append(message)

    scope = {"type": "websocket", "path": "/crash_after_change", "headers": [], "scheme": "ws"}
    asyncio.run(Site()(scope, receive, send))  # must not raise
    # The client still gets a close frame, with the one code every server sends.
    assert [(m["type"], m.get("code")) for m in sent] == [
        ("websocket.accept", None),
        ("websocket.close", 1000),
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("refused close code 1011" in m for m in warnings)


def test_failing_shutdown_handler_is_reported_as_lifespan_shutdown_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Site()

    def fail() -> None:
        raise OSError("cannot flush")

    app.shutdown_handlers.append(fail)
    client = TestClient(app)
    client.__enter__()
    with pytest.raises(RuntimeError, match="shutdown failed"):
        client.__exit__(None, None, None)
    assert any("shutdown" in r.getMessage() for r in micropie_errors(caplog))


def test_repeated_cookie_headers_join_as_cookies_do() -> None:
    # HTTP/2 clients send each cookie in a header of its own.
    headers = Headers([(b"cookie", b"a=1"), (b"cookie", b"session_id=xyz"), (b"x-n", b"1")])
    assert headers["cookie"] == "a=1; session_id=xyz"
    headers = Headers([(b"x-n", b"1"), (b"X-N", b"2")])
    assert headers["x-n"] == "1, 2"


def test_test_client_percent_decodes_the_path_as_servers_do() -> None:
    with TestClient(Site()).websocket_connect("/room/a%20b") as ws:
        assert ws.receive_text() == "a b"


def test_a_cancelled_handler_still_runs_after_hooks_and_saves_its_session() -> None:
    # What uvicorn does to a handler still busy past the graceful shutdown timeout.
    from micropie import WebSocketMiddleware

    events: list[str] = []

    class Hook(WebSocketMiddleware):
        async def after_websocket(self, request: Any) -> None:
            events.append("after_websocket")

    class Busy(App):
        async def ws_busy(self, ws: WebSocket) -> None:
            await ws.accept(session_id="busy-session")
            self.request.session["progress"] = 42
            events.append("waiting")
            await asyncio.Event().wait()  # stuck until cancelled

    app = Busy(middlewares=[Hook()])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not sent:
            return {"type": "websocket.connect"}
        await asyncio.Event().wait()
        return {}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def scenario() -> None:
        scope = {
            "type": "websocket",
            "path": "/busy",
            "headers": [],
            "asgi": {"version": "3.0", "spec_version": "2.4"},
        }
        task = asyncio.create_task(app(scope, receive, send))
        while "waiting" not in events:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert events == ["waiting", "after_websocket"]
    assert asyncio.run(app.session_backend.load("busy-session")) == {"progress": 42}
    # No close of its own: the server, which cancelled it, tears the connection down.
    assert [m["type"] for m in sent] == ["websocket.accept"]
