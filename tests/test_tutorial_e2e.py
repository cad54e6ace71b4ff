"""End-to-end: the tutorial's application (examples/tutorial/app.py) under a real uvicorn.

What the tutorial tells a reader to do in a browser, done with real clients:
load the page, post the name form, and talk over the WebSocket with the
session cookie that the form's answer set.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.servers import RunningServer, run_uvicorn

pytestmark = pytest.mark.e2e

TIMEOUT = 5.0
SETTLE = 0.3  # time for the server to log anything it would log


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_uvicorn("examples.tutorial.app:app") as running:
        yield running


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    # trust_env=False: never through a proxy from the environment.
    with httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as client:
        yield client


def cookie(session_id: str) -> dict[str, str]:
    return {"Cookie": f"session_id={session_id}"}


def ws_connect(server: RunningServer, session_id: str | None = None) -> ClientConnection:
    headers = cookie(session_id) if session_id is not None else None
    return connect(
        f"{server.ws_url}/chat",
        proxy=None,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        additional_headers=headers,
    )


def log_in(http: httpx.Client, name: str) -> str:
    """Post the form as a browser would; return the session ID from the cookie it sets."""
    response = http.post("/login", data={"name": name})
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 1, cookies
    pair, *attributes = cookies[0].split("; ")
    assert pair.startswith("session_id=")
    assert sorted(attributes) == ["HttpOnly", "Path=/", "SameSite=Lax"]
    session_id = pair.removeprefix("session_id=")
    assert len(session_id) >= 43
    http.cookies.clear()  # the tests send the cookie themselves, as a header
    return session_id


def test_the_page_is_the_name_form(http: httpx.Client) -> None:
    response = http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<form method="post" action="/login">' in response.text
    assert '<input name="name" required>' in response.text
    assert "set-cookie" not in response.headers


def test_posting_the_form_sets_the_session_and_changes_the_page(
    server: RunningServer, http: httpx.Client
) -> None:
    mark = server.mark()
    session_id = log_in(http, "Ada")
    page = http.get("/", headers=cookie(session_id))
    assert page.status_code == 200
    assert "Signed in as Ada." in page.text
    assert '"/chat"' in page.text  # the script that opens the WebSocket
    assert "set-cookie" not in page.headers  # an unchanged session sets no cookie
    time.sleep(SETTLE)
    assert "Traceback" not in server.output_since(mark)


def test_the_name_is_escaped_in_the_page(http: httpx.Client) -> None:
    session_id = log_in(http, "<script>alert(1)</script>")
    page = http.get("/", headers=cookie(session_id)).text
    assert "Signed in as &lt;script&gt;alert(1)&lt;/script&gt;." in page
    assert "<script>alert(1)</script>" not in page


def test_login_refuses_get_and_ignores_a_blank_name(http: httpx.Client) -> None:
    response = http.get("/login")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    response = http.post("/login", data={"name": "   "})
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert "set-cookie" not in response.headers


def test_the_websocket_greets_by_the_session_name_and_broadcasts(
    server: RunningServer, http: httpx.Client
) -> None:
    mark = server.mark()
    grace = log_in(http, "Grace")
    alan = log_in(http, "Alan")
    assert grace != alan
    with ws_connect(server, grace) as ws, ws_connect(server, alan) as other:
        assert ws.recv(timeout=TIMEOUT) == "Hello, Grace!"
        assert other.recv(timeout=TIMEOUT) == "Hello, Alan!"
        for message in ["hello", "", "héllo wörld ✓"]:
            ws.send(message)
            assert ws.recv(timeout=TIMEOUT) == f"Grace: {message}"
            assert other.recv(timeout=TIMEOUT) == f"Grace: {message}"
        other.send("hi Grace")
        assert ws.recv(timeout=TIMEOUT) == "Alan: hi Grace"
    time.sleep(SETTLE)
    printed = server.output_since(mark)
    assert "Traceback" not in printed
    assert "ERROR" not in printed


def test_the_websocket_turns_away_a_visitor_without_a_name(server: RunningServer) -> None:
    for session_id in (None, "not-a-session-the-server-made"):
        with ws_connect(server, session_id) as ws, pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            4001,
            "tell us your name first",
        )


def test_the_websocket_closes_on_a_binary_message(
    server: RunningServer, http: httpx.Client
) -> None:
    session_id = log_in(http, "Ada")
    with ws_connect(server, session_id) as ws:
        assert ws.recv(timeout=TIMEOUT) == "Hello, Ada!"
        ws.send(b"\x00\x01")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1003, "text messages only")
