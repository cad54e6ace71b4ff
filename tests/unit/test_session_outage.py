"""When the session store cannot be reached: 503 with Retry-After, 1013 on a
WebSocket, one log line per outage, and everything back when the store is."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from micropie import App, ConnectionClosed, SessionBackend, Unavailable, WebSocket
from micropie.testing import TestClient
from tests.helpers.redis import run_redis


class FlakyBackend(SessionBackend):
    """A store that can be switched off; what it raises then is what a real one raises."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise Unavailable("the store is down", retry_after=2.5)

    async def load(self, session_id: str) -> dict[str, Any] | None:
        self._check()
        return self.data.get(session_id)

    async def save(self, session_id: str, data: dict[str, Any]) -> None:
        self._check()
        self.data[session_id] = data


class Visits(App):
    def count(self) -> str:
        self.request.session["n"] = self.request.session.get("n", 0) + 1
        return str(self.request.session["n"])

    def busy(self) -> str:
        raise Unavailable("the search index is rebuilding", retry_after=30)

    async def ready(self) -> tuple[int, str]:
        """The readiness check a load balancer polls."""
        if await self.session_backend.ready():
            return 200, "ready"
        return 503, "not ready"

    async def ws_count(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(str(self.request.session.get("n", 0)))

    async def ws_busy(self, ws: WebSocket) -> None:
        await ws.accept()
        raise Unavailable("the broadcast is down")


def close_of(client: TestClient, path: str) -> tuple[int, str]:
    with client.websocket_connect(path) as ws, pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.receive_text()
    return closed.value.code, closed.value.reason


def test_a_store_that_is_down_gets_503_with_retry_after_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = FlakyBackend()
    client = TestClient(Visits(session_backend=backend))
    assert client.get("/count").text == "1"
    backend.down = True
    with caplog.at_level(logging.INFO, logger="micropie"):
        for _ in range(3):
            response = client.get("/count")  # the cookie makes it load: 503
            assert (response.status_code, response.headers["retry-after"]) == (503, "3")
            assert "try again" in response.text
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    backend.down = False
    assert client.get("/count").text == "2"  # back, with nothing restarted


def test_a_save_that_fails_is_503_too() -> None:
    backend = FlakyBackend()
    client = TestClient(Visits(session_backend=backend))
    backend.down = True
    response = client.get("/count")  # no cookie: nothing to load, the save fails
    assert response.status_code == 503
    assert "set-cookie" not in response.headers


def test_a_handler_may_raise_unavailable_itself() -> None:
    response = TestClient(Visits()).get("/busy")
    assert (response.status_code, response.headers["retry-after"]) == (503, "30")


def test_a_websocket_is_closed_with_1013_when_the_store_or_the_handler_is_unavailable() -> None:
    backend = FlakyBackend()
    client = TestClient(Visits(session_backend=backend))
    assert client.get("/count").text == "1"
    backend.down = True
    reason = "the service is unavailable; try again shortly"
    assert close_of(client, "/count") == (1013, reason)
    backend.down = False
    assert close_of(TestClient(Visits()), "/busy") == (1013, reason)
    with client.websocket_connect("/count") as ws:
        assert ws.receive_text() == "1"


def test_unavailable_needs_a_positive_retry_after() -> None:
    with pytest.raises(ValueError, match="retry_after must be positive"):
        Unavailable("x", retry_after=0)


def test_redis_sessions_through_an_outage_of_a_real_redis(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("redis")
    from micropie.redis_sessions import RedisSessionBackend

    with run_redis() as first:
        port = first.port
        backend = RedisSessionBackend(first.url, timeout=1.0, retry_after=4)
        client = TestClient(Visits(session_backend=backend))
        assert client.get("/count").text == "1"
        assert client.get("/ready").status_code == 200
    # Redis has stopped: every request with a session answers 503 at once.
    with caplog.at_level(logging.WARNING, logger="micropie"):
        statuses = [client.get("/count") for _ in range(5)]
        assert [(r.status_code, r.headers["retry-after"]) for r in statuses] == [(503, "4")] * 5
        assert client.get("/ready").status_code == 503
        with run_redis(port=port):
            # The same port, a new and empty Redis: the old session is gone, a
            # new one starts; no restart of the application.
            assert client.get("/count").text == "1"
            assert client.get("/count").text == "2"
            assert client.get("/ready").status_code == 200
    down = [r for r in caplog.records if "cannot be reached" in r.getMessage()]
    back = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert (len(down), len(back)) == (1, 1)  # once per outage, not per request
