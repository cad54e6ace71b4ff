"""Sessions over HTTP: the cookie's lifecycle, fixation, sharing with
WebSockets, and InMemorySessionBackend's expiry, driven in-process."""

from __future__ import annotations

import asyncio
import string
from collections.abc import Callable
from typing import Any

import pytest

from micropie import App
from micropie.sessions import InMemorySessionBackend, new_session_id
from micropie.testing import HTTPResponse, TestClient
from tests.helpers.apps.session_apps import GuestApp, SessionWebApp, visit_without_cookie
from tests.helpers.support import FakeClock

TOKEN_ALPHABET = set(string.ascii_letters + string.digits + "-_")


@pytest.fixture
def app() -> SessionWebApp:
    return SessionWebApp()


@pytest.fixture
def client(app: SessionWebApp, make_client: Callable[[App], TestClient]) -> TestClient:
    return make_client(app)


def set_cookies(response: HTTPResponse) -> list[str]:
    return [
        value.decode("latin-1")
        for name, value in response.raw_headers
        if name.lower() == b"set-cookie"
    ]


def session_cookie_of(response: HTTPResponse) -> tuple[str, list[str]]:
    """The session ID a response set, and the cookie's attributes."""
    cookies = [c for c in set_cookies(response) if c.startswith("session_id=")]
    assert len(cookies) == 1, set_cookies(response)
    pair, *attributes = cookies[0].split("; ")
    return pair.removeprefix("session_id="), attributes


def load(app: App, session_id: str) -> dict[str, Any] | None:
    return asyncio.run(app.session_backend.load(session_id))


def stored(app: App) -> int:
    backend = app.session_backend
    assert isinstance(backend, InMemorySessionBackend)
    return len(backend)


# When the cookie is sent


def test_no_cookie_when_the_session_is_not_used(app: SessionWebApp, client: TestClient) -> None:
    for path in ("/plain", "/whoami"):
        response = client.get(path)
        assert response.status_code == 200
        assert set_cookies(response) == []
    assert stored(app) == 0


def test_cookie_is_set_when_a_session_is_created(
    make_client: Callable[[App], TestClient],
) -> None:
    app = SessionWebApp()
    response = make_client(app).get("/login/ada")
    session_id, attributes = session_cookie_of(response)
    assert set(attributes) == {"Path=/", "HttpOnly", "SameSite=Lax"}
    assert load(app, session_id) == {"user": "ada"}


@pytest.mark.parametrize(
    ("cookie", "first", "path", "text"),
    [
        pytest.param(None, "/login/ada", "/whoami", "ada", id="a request that only reads"),
        pytest.param(
            None, "/login/ada", "/login/ada", "welcome", id="setting what the session holds"
        ),
        pytest.param(None, None, "/logout", "bye", id="emptying a session that never existed"),
        pytest.param("forged-id", None, "/whoami", "anonymous", id="an unknown ID, read only"),
    ],
)
def test_no_cookie_and_nothing_stored_when_nothing_changes(
    make_client: Callable[[App], TestClient],
    cookie: str | None,
    first: str | None,
    path: str,
    text: str,
) -> None:
    app = SessionWebApp()
    client = make_client(app, session_id=cookie)
    if first is not None:
        client.get(first)
    response = client.get(path)
    assert response.text == text
    assert set_cookies(response) == []
    assert stored(app) == (0 if first is None else 1)  # only the first request's session


def test_cookie_is_sent_again_with_the_same_id_when_the_session_changes(
    app: SessionWebApp,
    client: TestClient,
) -> None:
    first_id, _ = session_cookie_of(client.get("/visit"))
    response = client.get("/visit")
    assert response.text == "2"
    second_id, _ = session_cookie_of(response)
    assert second_id == first_id
    assert load(app, first_id) == {"visits": 2}


def test_emptied_session_clears_cookie_and_deletes_backend_entry(
    app: SessionWebApp,
    client: TestClient,
) -> None:
    session_id, _ = session_cookie_of(client.get("/login/ada"))
    response = client.get("/logout")
    cookies = set_cookies(response)
    assert len(cookies) == 1
    pair, *attributes = cookies[0].split("; ")
    assert pair == "session_id="
    assert "Max-Age=0" in attributes
    assert "Path=/" in attributes
    assert load(app, session_id) is None
    assert stored(app) == 0
    assert "session_id" not in client.cookies
    assert client.get("/whoami").text == "anonymous"


# Session IDs and fixation


def test_session_ids_are_long_random_tokens(make_client: Callable[[App], TestClient]) -> None:
    app = SessionWebApp()
    ids = [session_cookie_of(make_client(app).get(f"/login/u{i}"))[0] for i in range(40)]
    assert len(set(ids)) == len(ids)
    for session_id in ids:
        assert len(session_id) >= 32
        assert set(session_id) <= TOKEN_ALPHABET
    # No shared prefix, as a counter or timestamp would leave.
    assert len({session_id[:4] for session_id in ids}) > 30


@pytest.mark.parametrize("forged", ["forged-id", new_session_id()], ids=["word", "token-shaped"])
def test_unknown_session_id_is_replaced_never_adopted(
    make_client: Callable[[App], TestClient], forged: str
) -> None:
    app = SessionWebApp()
    client = make_client(app, session_id=forged)
    response = client.get("/login/mallory-victim")
    new_id, _ = session_cookie_of(response)
    assert new_id != forged
    assert load(app, forged) is None
    assert load(app, new_id) == {"user": "mallory-victim"}
    assert stored(app) == 1
    assert client.cookies["session_id"] == new_id


def test_expired_session_id_is_not_reused(
    make_client: Callable[[App], TestClient], clock: FakeClock
) -> None:
    app = SessionWebApp(session_backend=InMemorySessionBackend(max_age=60))
    client = make_client(app)
    old_id, _ = session_cookie_of(client.get("/login/ada"))
    clock.now += 61
    assert client.get("/whoami").text == "anonymous"
    new_id, _ = session_cookie_of(client.get("/login/bob"))
    assert new_id != old_id
    assert load(app, old_id) is None


# Secure cookies


def test_session_cookie_is_secure_over_https(make_client: Callable[[App], TestClient]) -> None:
    client = make_client(SessionWebApp())
    _, attributes = session_cookie_of(client.get("/login/ada", secure=True))
    assert "Secure" in attributes
    cleared = set_cookies(client.get("/logout", secure=True))
    assert len(cleared) == 1
    assert "Secure" in cleared[0].split("; ")


def test_session_cookie_is_not_secure_over_http(make_client: Callable[[App], TestClient]) -> None:
    _, attributes = session_cookie_of(make_client(SessionWebApp()).get("/login/ada"))
    assert "Secure" not in attributes


# One session for HTTP and WebSocket


def test_websocket_handler_sees_session_from_http_login(
    make_client: Callable[[App], TestClient],
) -> None:
    client = make_client(SessionWebApp())
    with client.websocket_connect("/whoami") as ws:
        assert ws.receive_text() == "anonymous"
    client.get("/login/grace")
    with client.websocket_connect("/whoami") as ws:
        assert ws.receive_text() == "grace"


def test_session_changes_over_websocket_are_seen_over_http(
    app: SessionWebApp,
    client: TestClient,
) -> None:
    session_id, _ = session_cookie_of(client.get("/login/grace"))
    with client.websocket_connect("/rename/hopper") as ws:
        assert ws.receive_text() == "renamed"
    assert client.get("/whoami").text == "hopper"
    assert load(app, session_id) == {"user": "hopper", "renamed_over": "websocket"}


# InMemorySessionBackend: expiry and cleanup


def test_session_expires_over_http_after_max_age(
    make_client: Callable[[App], TestClient], clock: FakeClock
) -> None:
    app = SessionWebApp(session_backend=InMemorySessionBackend(max_age=30))
    client = make_client(app)
    client.get("/login/ada")
    clock.now += 29
    assert client.get("/whoami").text == "ada"
    clock.now += 2
    assert client.get("/whoami").text == "anonymous"


def test_cleanup_forgets_expired_sessions_and_keeps_live_ones(clock: FakeClock) -> None:
    backend = InMemorySessionBackend(max_age=10, cleanup_interval=1000)

    async def scenario() -> None:
        await backend.save("old-1", {"n": 1})
        await backend.save("old-2", {"n": 2})
        clock.now += 8
        await backend.save("young", {"n": 3})

    asyncio.run(scenario())
    clock.now += 5  # the first two are 13 s old, the last 5 s
    assert len(backend) == 3  # expired ones linger until swept or touched
    assert backend.cleanup() == 2
    assert len(backend) == 1
    assert asyncio.run(backend.load("young")) == {"n": 3}
    assert backend.cleanup() == 0


def test_expired_sessions_are_swept_on_save_after_cleanup_interval(
    make_client: Callable[[App], TestClient], clock: FakeClock
) -> None:
    backend = InMemorySessionBackend(max_age=10, cleanup_interval=100)
    app = SessionWebApp(session_backend=backend)
    make_client(app).get("/login/first")
    make_client(app).get("/login/second")
    clock.now += 50  # both have expired, but no sweep is due yet
    make_client(app).get("/login/third")
    assert len(backend) == 3
    clock.now += 51  # 101 s after the backend was made: the next save sweeps
    fourth_id, _ = session_cookie_of(make_client(app).get("/login/fourth"))
    assert len(backend) == 1  # all three earlier sessions had expired
    assert load(app, fourth_id) == {"user": "fourth"}


# Clients that never come back: a short first lifetime, and a bound


def test_cookieless_visitors_never_hold_more_than_max_sessions(
    make_client: Callable[[App], TestClient], clock: FakeClock
) -> None:
    backend = InMemorySessionBackend(max_sessions=100)
    app = GuestApp(session_backend=backend)
    regular = make_client(app)
    name = regular.get("/").text
    assert regular.get("/").text == name  # came back with the cookie
    flood = make_client(app)
    for n in range(600):
        visit_without_cookie(flood, n)
        assert len(backend) <= 100
    assert regular.get("/name").text == name  # the flood forgot its own sessions first
    clock.now += 601  # ten minutes on, what never came back is gone
    backend.cleanup()
    assert len(backend) == 1
    clock.now += 14 * 24 * 3600 - 601 - 1  # the regular's full lifetime, from its save
    assert regular.get("/name").text == name


def test_a_visitor_that_comes_back_within_ten_minutes_keeps_its_session(
    make_client: Callable[[App], TestClient], clock: FakeClock
) -> None:
    app = GuestApp()
    for n in range(2):  # started over HTTP, then at a WebSocket handshake
        visitor = make_client(app)
        started, name = visit_without_cookie(visitor, n + 1)
        clock.now += 599
        with visitor.websocket_connect("/chat") as ws:  # back, with its cookie
            assert ws.receive_text() == name
        clock.now += 24 * 3600
        assert visitor.get("/name").text == name
        assert visitor.cookies["session_id"] == started
    forgotten = make_client(app)
    visit_without_cookie(forgotten, 1)
    clock.now += 601
    assert forgotten.get("/name").text == "nobody"
