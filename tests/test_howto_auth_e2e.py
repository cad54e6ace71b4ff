"""End-to-end: examples/auth/app.py (docs/source/howto/auth.rst) under a real uvicorn.

A real HTTP client logs in; a real WebSocket client then opens ``/private``
with the session cookie, with or without an ``Origin`` header naming this
site, as a browser's page on this site or on another would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from tests.servers import RunningServer, run_uvicorn

pytestmark = pytest.mark.e2e

TIMEOUT = 5.0
SETTLE = 0.3  # time for the server to log anything it would log


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_uvicorn("examples.auth.app:app") as running:
        yield running


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    # trust_env=False: never through a proxy from the environment.
    with httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as client:
        yield client


def log_in(http: httpx.Client, name: str = "ada", password: str = "lovelace") -> str:
    """Post the login form; return the session ID that the answer's cookie carries."""
    response = http.post("/login", data={"name": name, "password": password})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/"
    [cookie] = response.headers.get_list("set-cookie")
    pair, *attributes = cookie.split("; ")
    assert sorted(attributes) == ["HttpOnly", "Path=/", "SameSite=Lax"]
    http.cookies.clear()  # the tests send the cookie themselves
    return pair.removeprefix("session_id=")


def ws_connect(
    server: RunningServer, *, session_id: str | None = None, origin: str | None = None
) -> ClientConnection:
    """Open /private with this session's cookie and this Origin header (each if given)."""
    headers = {"Cookie": f"session_id={session_id}"} if session_id is not None else None
    return connect(
        f"{server.ws_url}/private",
        proxy=None,
        origin=Origin(origin) if origin is not None else None,
        additional_headers=headers,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    )


def refusal(ws: ClientConnection) -> tuple[int, str]:
    """The close code and reason of a connection the server closes before saying anything."""
    with pytest.raises(ConnectionClosed) as closed:
        message = ws.recv(timeout=TIMEOUT)
        pytest.fail(f"expected the server to close, but it sent {message!r}")
    frame = closed.value.rcvd
    assert frame is not None, "the server dropped the connection without a close frame"
    return frame.code, frame.reason


def assert_no_errors(server: RunningServer, mark: int) -> None:
    time.sleep(SETTLE)
    printed = server.output_since(mark)
    assert "Traceback" not in printed, printed
    assert "ERROR" not in printed, printed


def test_logged_in_same_origin_client_is_accepted(
    server: RunningServer, http: httpx.Client
) -> None:
    mark = server.mark()
    session_id = log_in(http)
    with ws_connect(server, session_id=session_id, origin=server.http_url) as ws:
        assert ws.recv(timeout=TIMEOUT) == "signed in as ada"
        for text in ["hello", "", "héllo ✓"]:
            ws.send(text)
            assert ws.recv(timeout=TIMEOUT) == f"ada: {text}"
    assert_no_errors(server, mark)


@pytest.mark.parametrize("session_id", [None, "not-a-session-this-server-made"])
def test_no_session_is_refused(server: RunningServer, session_id: str | None) -> None:
    with ws_connect(server, session_id=session_id, origin=server.http_url) as ws:
        assert refusal(ws) == (4001, "log in first")


@pytest.mark.parametrize(
    "origin",
    [
        "http://attacker.example",
        "null",  # a sandboxed frame, or a page opened from a file
        "https://127.0.0.1:{port}",  # this host and port, but another scheme
        "http://localhost:{port}",  # the same machine, under another name
        None,  # no Origin header at all
    ],
)
def test_foreign_origin_is_refused_even_with_a_valid_cookie(
    server: RunningServer, http: httpx.Client, origin: str | None
) -> None:
    mark = server.mark()
    session_id = log_in(http)
    if origin is not None:
        origin = origin.format(port=server.port)
    with ws_connect(server, session_id=session_id, origin=origin) as ws:
        # The handler never ran: no greeting comes before the close.
        assert refusal(ws) == (4003, "cross-origin WebSocket handshakes are not allowed")
    # The session is untouched: the same cookie still works from the site's own page.
    with ws_connect(server, session_id=session_id, origin=server.http_url) as ws:
        assert ws.recv(timeout=TIMEOUT) == "signed in as ada"
    assert_no_errors(server, mark)


def test_the_origin_is_compared_without_regard_to_case(
    server: RunningServer, http: httpx.Client
) -> None:
    session_id = log_in(http)
    with ws_connect(server, session_id=session_id, origin=server.http_url.upper()) as ws:
        assert ws.recv(timeout=TIMEOUT) == "signed in as ada"


def test_wrong_password_sets_no_session(http: httpx.Client) -> None:
    for name, password in [("ada", "babbage"), ("nobody", "lovelace"), ("ada", "")]:
        response = http.post("/login", data={"name": name, "password": password})
        assert response.status_code == 401
        assert "Wrong name or password." in response.text
        assert "set-cookie" not in response.headers


def test_login_and_logout_take_post_only(http: httpx.Client) -> None:
    for path in ("/login", "/logout"):
        response = http.get(path)
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"


def test_pages_before_and_after_login(http: httpx.Client) -> None:
    page = http.get("/")
    assert '<form method="post" action="/login">' in page.text
    session_id = log_in(http)
    page = http.get("/", headers={"Cookie": f"session_id={session_id}"})
    assert "Signed in as ada." in page.text
    assert '"/private"' in page.text  # the script that opens the WebSocket


def test_after_logout_the_old_cookie_is_refused(server: RunningServer, http: httpx.Client) -> None:
    session_id = log_in(http)
    response = http.post("/logout", headers={"Cookie": f"session_id={session_id}"})
    assert response.status_code == 303
    assert response.headers["set-cookie"].startswith("session_id=; Max-Age=0;")
    with ws_connect(server, session_id=session_id, origin=server.http_url) as ws:
        assert refusal(ws) == (4001, "log in first")
