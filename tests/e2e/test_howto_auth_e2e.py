"""End-to-end: examples/auth/app.py (docs/source/howto/auth.rst) under a real uvicorn.

A real HTTP client logs in; a real WebSocket client then opens ``/private``
with the session cookie, with an ``Origin`` header naming this site or
another, as a browser's page on this site or on another would, or with none,
as a program would. MicroPie's own origin check answers foreign origins
with HTTP 403. A second server runs the example made with
``allowed_origins``, through ``tests.helpers.apps.auth_apps:allowing_www``,
which uvicorn calls as a factory.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection

from tests.helpers.apps.auth_apps import WWW
from tests.helpers.clients import TIMEOUT, close_frame_of, ws_connect
from tests.helpers.logs import quiet
from tests.helpers.servers import REPO_ROOT, RunningServer, run_uvicorn, serve_saved
from tests.helpers.support import captions_of_file

PAGE = REPO_ROOT / "docs" / "source" / "howto" / "auth.rst"
EXAMPLE = "examples/auth/app.py"


def test_the_page_shows_the_file_and_the_command_the_tests_run() -> None:
    assert captions_of_file(PAGE, EXAMPLE)[0] == "app.py"  # then excerpts, uncaptioned
    assert set(captions_of_file(PAGE, EXAMPLE)[1:]) == {""}
    assert "\n   uvicorn app:app\n" in PAGE.read_text(encoding="utf-8")


# The servers: none of the tests may make them log an error (checked once they stop).


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # The page's file, saved as the page says, served with the page's command.
    directory = tmp_path_factory.mktemp("reader")
    with quiet(serve_saved(directory, {EXAMPLE: "app.py"})) as running:
        yield running


@pytest.fixture(scope="module")
def server_allowing_www() -> Iterator[RunningServer]:
    app = "tests.helpers.apps.auth_apps:allowing_www"
    with quiet(run_uvicorn(app, "--factory")) as running:
        yield running


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    # trust_env=False: never through a proxy from the environment.
    with httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as client:
        yield client


def log_in(
    http: httpx.Client, name: str = "ada", password: str = "lovelace", session_id: str | None = None
) -> str:
    """Post the login form (with *session_id*'s cookie, if given); return the
    session ID that the answer's cookie carries."""
    headers = {"Cookie": f"session_id={session_id}"} if session_id is not None else None
    response = http.post("/login", data={"name": name, "password": password}, headers=headers)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/"
    [cookie] = response.headers.get_list("set-cookie")
    pair, *attributes = cookie.split("; ")
    assert sorted(attributes) == ["HttpOnly", "Path=/", "SameSite=Lax"]
    http.cookies.clear()  # the tests send the cookie themselves
    return pair.removeprefix("session_id=")


def private(
    server: RunningServer, *, session_id: str | None = None, origin: str | None = None
) -> ClientConnection:
    """Open /private with this session's cookie and this Origin header (each if given)."""
    cookie = f"session_id={session_id}" if session_id is not None else None
    return ws_connect(f"{server.ws_url}/private", cookie=cookie, origin=origin)


def handshake_status(
    server: RunningServer, *, session_id: str | None = None, origin: str | None = None
) -> int:
    """The HTTP status with which the server refuses this handshake."""
    with pytest.raises(InvalidStatus) as refused:
        private(server, session_id=session_id, origin=origin).close()
        pytest.fail("expected the server to refuse the handshake, but it accepted it")
    return refused.value.response.status_code


def test_logged_in_same_origin_client_is_accepted(
    server: RunningServer, http: httpx.Client
) -> None:
    session_id = log_in(http)
    with private(server, session_id=session_id, origin=server.http_url) as ws:
        assert ws.recv(timeout=TIMEOUT) == "signed in as ada"
        for text in ["hello", "", "héllo ✓"]:
            ws.send(text)
            assert ws.recv(timeout=TIMEOUT) == f"ada: {text}"


@pytest.mark.parametrize("session_id", [None, "not-a-session-this-server-made"])
def test_no_session_is_refused(server: RunningServer, session_id: str | None) -> None:
    with private(server, session_id=session_id, origin=server.http_url) as ws:
        assert close_frame_of(ws) == (4001, "log in first")


@pytest.mark.parametrize(
    "origin",
    [
        "http://attacker.example",
        "https://attacker.example",
        "null",  # a sandboxed frame, or a page opened from a file
        "http://localhost:{port}",  # the same machine, under another name
        "https://localhost:{port}",  # another scheme, on another name for this host
        "http://127.0.0.1:{other_port}",  # this host, another port
        "http://127.0.0.1",  # this host, the default port
        "http://127.0.0.1.attacker.example:{port}",  # a host that begins with this one
    ],
)
def test_foreign_origin_is_refused_with_403_even_with_a_valid_cookie(
    server: RunningServer, http: httpx.Client, origin: str
) -> None:
    session_id = log_in(http)
    origin = origin.format(port=server.port, other_port=server.port + 1)
    # Refused before the handler ran: no WebSocket at all, so no greeting.
    assert handshake_status(server, session_id=session_id, origin=origin) == 403
    # The session is untouched: the same cookie still works from the site's own page.
    with private(server, session_id=session_id, origin=server.http_url) as ws:
        assert ws.recv(timeout=TIMEOUT) == "signed in as ada"


@pytest.mark.parametrize(
    "origin",
    [
        "{url}",
        "{upper}",  # origins are compared without regard to case
        "https://127.0.0.1:{port}",  # this host and port: the scheme is not compared
    ],
)
def test_the_sites_own_origin_is_accepted(
    server: RunningServer, http: httpx.Client, origin: str
) -> None:
    origin = origin.format(url=server.http_url, upper=server.http_url.upper(), port=server.port)
    session_id = log_in(http)
    with private(server, session_id=session_id, origin=origin) as ws:
        assert ws.recv(timeout=TIMEOUT) == "signed in as ada"


def test_a_client_without_origin_is_accepted(server: RunningServer, http: httpx.Client) -> None:
    """Not a browser: it carries only the cookies its owner gave it."""
    session_id = log_in(http)
    with private(server, session_id=session_id) as ws:
        assert ws.recv(timeout=TIMEOUT) == "signed in as ada"
        ws.send("hello")
        assert ws.recv(timeout=TIMEOUT) == "ada: hello"


def test_allowed_origins_lets_the_origin_it_names_in(server_allowing_www: RunningServer) -> None:
    server = server_allowing_www
    with httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as http:
        session_id = log_in(http)
    for origin in (WWW, server.http_url):
        with private(server, session_id=session_id, origin=origin) as ws:
            assert ws.recv(timeout=TIMEOUT) == "signed in as ada"
    for origin in ("http://www.example.com", "https://example.com", "https://attacker.example"):
        assert handshake_status(server, session_id=session_id, origin=origin) == 403


def test_logging_in_again_renews_the_session(server: RunningServer, http: httpx.Client) -> None:
    before = log_in(http)
    after = log_in(http, session_id=before)
    assert after != before
    with private(server, session_id=before, origin=server.http_url) as ws:
        assert close_frame_of(ws) == (4001, "log in first")
    with private(server, session_id=after, origin=server.http_url) as ws:
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
    with private(server, session_id=session_id, origin=server.http_url) as ws:
        assert close_frame_of(ws) == (4001, "log in first")
