"""Sessions shared by a long-lived WebSocket and HTTP requests made meanwhile."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from micropie import App, WebSocket
from micropie.redis_sessions import RedisSessionBackend
from micropie.sessions import InMemorySessionBackend, SessionBackend, new_session_id
from micropie.testing import TestClient, WebSocketRejected
from tests.helpers.asgi import Answer, http_call
from tests.helpers.support import the_logged_error


class Site(App):
    def login(self, user: str) -> str:
        self.request.renew_session()
        self.request.session["user"] = user
        return "in"

    def logout(self) -> str:
        self.request.session.clear()
        return "out"

    def theme(self, name: str) -> str:
        self.request.session["theme"] = name
        return "set"

    def me(self) -> dict[str, object]:
        return dict(self.request.session)

    async def ws_counter(self, ws: WebSocket) -> None:
        await ws.accept()
        self.request.session["clicks"] = 0
        while True:
            await ws.receive_text()
            self.request.session["clicks"] += 1
            await ws.send_text(str(self.request.session["clicks"]))


def test_a_logout_during_a_websocket_is_not_undone_when_it_ends() -> None:
    app = Site()
    client = TestClient(app)
    client.get("/login/ada")
    old_cookie = client.cookies["session_id"]
    with client.websocket_connect("/counter") as ws:
        ws.send_text("click")
        assert ws.receive_text() == "1"
        assert client.get("/logout").text == "out"
    assert asyncio.run(app.session_backend.load(old_cookie)) is None
    client.cookies["session_id"] = old_cookie  # an attacker replaying the old cookie
    assert client.get("/me").text == "{}"


def test_changes_made_over_http_meanwhile_survive_the_websockets_own() -> None:
    client = TestClient(Site())
    client.get("/login/ada")
    with client.websocket_connect("/counter") as ws:
        client.get("/theme/dark")
        ws.send_text("click")
        assert ws.receive_text() == "1"
    session = client.get("/me").text
    assert '"theme":"dark"' in session and '"clicks":1' in session and '"user":"ada"' in session


def test_renew_session_moves_the_session_to_a_new_id_and_retires_the_old() -> None:
    app = Site()
    client = TestClient(app)
    client.get("/theme/light")  # a session exists before the login
    before = client.cookies["session_id"]
    client.get("/login/ada")
    after = client.cookies["session_id"]
    assert after != before
    assert asyncio.run(app.session_backend.load(before)) is None
    assert asyncio.run(app.session_backend.load(after)) == {"theme": "light", "user": "ada"}


def test_renew_session_without_a_session_just_starts_one() -> None:
    client = TestClient(Site())
    client.get("/login/ada")
    assert client.get("/me").text == '{"user":"ada"}'


# A logout while a slow request, which touched the session, is still running:
# the slow request must not bring the session back when it saves it.


class LastSeen(App):
    """A slow page that notes when the user was last seen, and a logout."""

    def __init__(self, backend: SessionBackend) -> None:
        super().__init__(session_backend=backend)
        self.touched = asyncio.Event()
        self.release = asyncio.Event()

    async def login(self) -> str:
        self.request.session["user"] = "ada"
        return "in"

    async def me(self) -> str:
        return str(self.request.session.get("user", "nobody"))

    async def logout(self) -> str:
        self.request.session.clear()
        return "out"

    async def slow(self) -> str:
        self.request.session["last_seen"] = self.request.session.get("last_seen", 0) + 1
        self.touched.set()
        await self.release.wait()  # a slow database, say
        return "seen"


class JsonBackend(SessionBackend):
    """A backend written against the interface: load and save only."""

    def __init__(self) -> None:
        self.store: dict[str, str] = {}

    async def load(self, session_id: str) -> dict[str, Any] | None:
        text = self.store.get(session_id)
        return None if text is None else dict(json.loads(text))

    async def save(self, session_id: str, data: dict[str, Any]) -> None:
        if data:
            self.store[session_id] = json.dumps(data)
        else:
            self.store.pop(session_id, None)


class OldBackend(SessionBackend):
    """A backend written for MicroPie 0.x: save takes a timeout, load answers {}."""

    def __init__(self) -> None:
        self.store: dict[str, dict[str, Any]] = {}

    async def load(self, session_id: str) -> dict[str, Any]:
        return dict(self.store.get(session_id, {}))

    async def save(self, session_id: str, data: dict[str, Any], timeout: int) -> None:  # type: ignore[override]
        if data:
            self.store[session_id] = dict(data)
        else:
            self.store.pop(session_id, None)


BackendMaker = Callable[[], SessionBackend]


@pytest.fixture(params=["memory", "redis", "written-for-the-interface", "written-for-0.x"])
def make_backend(request: pytest.FixtureRequest) -> BackendMaker:
    """Makes a backend of each kind in turn (in the test's event loop, for Redis)."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_server").url
        prefix = f"lifecycle:{uuid.uuid4().hex}:"
        return lambda: RedisSessionBackend(url, prefix=prefix)
    kinds: dict[str, BackendMaker] = {
        "memory": InMemorySessionBackend,
        "written-for-the-interface": JsonBackend,
        "written-for-0.x": OldBackend,
    }
    return kinds[request.param]


def session_id_of(answer: Answer) -> str:
    [cookie] = answer.set_cookies()
    return cookie.split(";")[0].removeprefix("session_id=")


def test_a_logout_during_a_slow_request_is_not_undone_by_it(make_backend: BackendMaker) -> None:
    async def scenario() -> tuple[Answer, Answer, Answer, Any]:
        backend = make_backend()
        app = LastSeen(backend)
        try:
            old = session_id_of(await http_call(app, "/login"))
            slow = asyncio.create_task(http_call(app, "/slow", cookie=old))
            await asyncio.wait_for(app.touched.wait(), 5)  # loaded and touched: now slow
            logout = await http_call(app, "/logout", cookie=old)
            app.release.set()
            slow_answer = await asyncio.wait_for(slow, 5)
            replayed = await http_call(app, "/me", cookie=old)  # whoever holds the old cookie
            return logout, slow_answer, replayed, await backend.load(old)
        finally:
            if isinstance(backend, RedisSessionBackend):
                await backend.aclose()

    logout, slow, replayed, stored = asyncio.run(scenario())
    assert logout.text == "out"
    assert slow.text == "seen"
    assert replayed.text == "nobody"
    assert not stored  # None; {} from the 0.x backend
    # The slow answer tells the browser to forget the cookie, not to keep it.
    assert slow.set_cookies() == ["session_id=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"]


def test_the_deleted_session_is_logged_once_and_the_rest_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> str:
        app = LastSeen(InMemorySessionBackend())
        old = session_id_of(await http_call(app, "/login"))
        slow = asyncio.create_task(http_call(app, "/slow", cookie=old))
        await app.touched.wait()
        await http_call(app, "/logout", cookie=old)
        app.release.set()
        await slow
        again = session_id_of(await http_call(app, "/login"))  # a new login works as ever
        return (await http_call(app, "/me", cookie=again)).text

    with caplog.at_level(logging.INFO, logger="micropie"):
        assert asyncio.run(scenario()) == "ada"
    messages = [r.getMessage() for r in caplog.records if "deleted meanwhile" in r.getMessage()]
    assert messages == ["the session of /slow was deleted meanwhile; not restored"]


class Greeter(App):
    """A WebSocket that starts a session, and an HTTP logout."""

    def logout(self) -> str:
        self.request.session.clear()
        return "out"

    def me(self) -> dict[str, object]:
        return dict(self.request.session)

    async def ws_greet(self, ws: WebSocket) -> None:
        self.request.session["name"] = "guest-1"
        await ws.accept(session_id=new_session_id())  # stored now, and the cookie is sent
        await ws.send_text("hello")
        await ws.receive_text()
        self.request.session["greeted"] = True  # saved when the handler returns


def test_a_session_a_websocket_started_stays_deleted_after_a_logout_meanwhile() -> None:
    app = Greeter()
    client = TestClient(app)
    with client.websocket_connect("/greet") as ws:
        assert ws.receive_text() == "hello"
        started = client.cookies["session_id"]
        assert client.get("/me").text == '{"name":"guest-1"}'
        assert client.get("/logout").text == "out"
        ws.send_text("bye")
    assert asyncio.run(app.session_backend.load(started)) is None
    client.cookies["session_id"] = started
    assert client.get("/me").text == "{}"


# renew_session() has no cookie to send from a WebSocket: it says so.


class RenewOverWebSocket(App):
    def login(self) -> str:
        self.request.session["user"] = "ada"
        return "in"

    async def ws_renew(self, ws: WebSocket) -> None:
        await ws.accept()
        try:
            self.request.renew_session()
        except RuntimeError as refused:
            await ws.send_text(f"refused: {refused}")
        else:
            await ws.send_text("renewed")

    async def ws_renew_unguarded(self, ws: WebSocket) -> None:
        self.request.renew_session()
        await ws.accept()


def test_renew_session_in_a_websocket_handler_raises_a_clear_error() -> None:
    client = TestClient(RenewOverWebSocket())
    client.get("/login")
    before = client.cookies["session_id"]
    with client.websocket_connect("/renew") as ws:
        answer = ws.receive_text()
    assert answer.startswith("refused: renew_session() works over HTTP only")
    assert "renew the session in the HTTP request that logs the user in" in answer
    assert client.cookies["session_id"] == before  # nothing moved, nothing retired


def test_renew_session_left_uncaught_fails_the_handshake_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = TestClient(RenewOverWebSocket())
    with (
        caplog.at_level(logging.ERROR, logger="micropie"),
        pytest.raises(WebSocketRejected) as rejected,
        client.websocket_connect("/renew_unguarded"),
    ):
        pass
    assert rejected.value.status_code == 403
    error = the_logged_error(caplog)
    assert isinstance(error, RuntimeError)
    assert "renew_session() works over HTTP only" in str(error)
