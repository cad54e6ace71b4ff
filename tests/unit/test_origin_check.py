"""The origin check of WebSocket handshakes (``App(allowed_origins=...)``), in process.

A browser names the page that opens a WebSocket in the handshake's ``Origin``
header. MicroPie refuses, with HTTP 403 and before anything else runs, a
handshake whose ``Origin`` is neither the site's own (the host and port of the
``Host`` header) nor one of ``App.allowed_origins``. Handshakes without an
``Origin`` are not a browser's, and are let through; HTTP requests are not
checked at all. docs/source/howto/auth.rst and docs/source/security.rst say so.
After a DNS rebinding, the ``Host`` itself is the attacker's: only
``App.allowed_hosts`` tells it apart (tests/unit/test_allowed_hosts.py).

:class:`~micropie.testing.TestClient` sends ``Host: testserver`` unless the
test gives a ``Host`` of its own; the one test that needs no ``Host`` at all
removes it from the scope with ``without_host`` (tests/helpers/asgi.py).
"""

from __future__ import annotations

import logging

import pytest

from micropie import App
from micropie.sessions import InMemorySessionBackend
from micropie.testing import TestClient, WebSocketRejected
from tests.helpers.apps.recording_app import CountingBackend, HookLog, RecordingApp, accepted
from tests.helpers.asgi import without_host
from tests.helpers.support import REPO_ROOT

ROOT = REPO_ROOT
NGINX_CONFIG = ROOT / "examples" / "deploy" / "nginx.conf"

FOREIGN_ORIGINS = [
    "https://evil.example",
    "http://evil.example",
    "null",  # a sandboxed frame, or a page opened from a file
    "http://testserver.evil.example",  # a host that begins with the site's
    "http://evil.testserver",  # a host that ends with it
    "http://testserver@evil.example",  # not what a browser sends, and not the site either
    "http://testserver:8000",  # the site's host, on another port
    "testserver",  # a bare host is not an origin
    "",
]


class Echo(RecordingApp):
    """Records each handler that runs (``login``, ``ws_echo``, and ``index``)."""

    def index(self) -> str:
        self.ran.append("index")
        return f"origin: {self.request.headers.get('origin')}"


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "micropie" and "refused" in r.getMessage()]


# The site's own origin


def test_the_sites_own_origin_is_accepted() -> None:
    app = Echo()
    assert accepted(TestClient(app), "http://testserver")
    assert app.ran == ["ws_echo"]


@pytest.mark.parametrize(
    ("origin", "secure"),
    [
        ("https://testserver", False),  # an https page, on a connection the app thinks plain
        ("https://testserver", True),
        ("HTTP://TestServer", False),
    ],
)
def test_host_and_port_are_compared_without_regard_to_case(origin: str, secure: bool) -> None:
    assert accepted(TestClient(Echo()), origin, secure=secure)


def test_over_tls_a_plain_http_page_of_the_same_host_is_refused() -> None:
    # Such a page may have been injected on the network; the wss handshake
    # it opens would carry the Secure session cookie.
    assert not accepted(TestClient(Echo()), "http://testserver", secure=True)


def test_each_handshake_is_judged_on_its_own_connection_and_host() -> None:
    # The check remembers its answers for an Origin and Host: the same
    # Origin must still be judged afresh for TLS, and for another Host.
    client = TestClient(Echo())
    answers = [
        accepted(client, "http://testserver"),
        accepted(client, "http://testserver", secure=True),
        accepted(client, "http://testserver", host="other.example"),
        accepted(client, "http://other.example", host="other.example"),
        accepted(client, "http://testserver"),
    ]
    assert answers == [True, False, False, True, True]


@pytest.mark.parametrize("origin", ["http://[", "http://testserver:99999", "http://:x"])
def test_a_malformed_origin_is_refused_with_403_not_an_error(
    origin: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="micropie"):
        assert not accepted(TestClient(Echo()), origin)
    assert not any(record.exc_info for record in caplog.records)


def test_allowed_origins_must_be_a_list_not_a_string() -> None:
    with pytest.raises(TypeError, match="list of origins"):
        Echo(allowed_origins="https://app.example.com")


def test_the_host_header_is_compared_without_regard_to_case() -> None:
    assert accepted(
        TestClient(Echo()), "https://chat.example.com:8443", host="Chat.Example.COM:8443"
    )


def test_a_logged_in_visitor_on_the_sites_own_page_keeps_the_session() -> None:
    client = TestClient(Echo())
    client.post("/login")
    with client.websocket_connect("/echo", headers={"Origin": "http://testserver"}) as ws:
        assert ws.receive_text() == "hello, ada"


# Foreign origins


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
def test_a_foreign_origin_is_refused_with_403_and_logged_at_info(
    origin: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = Echo()
    client = TestClient(app)
    client.post("/login")  # a valid session cookie is of no help
    app.ran.clear()
    with (
        caplog.at_level(logging.DEBUG, logger="micropie"),
        pytest.raises(WebSocketRejected) as rejected,
        client.websocket_connect("/echo", headers={"Origin": origin}),
    ):
        pytest.fail("the handshake was accepted")
    assert rejected.value.status_code == 403
    assert app.ran == []
    [record] = caplog.records
    assert record.name == "micropie"
    assert record.levelno == logging.INFO
    assert "/echo" in record.getMessage()
    assert repr(origin) in record.getMessage()


def test_a_refused_handshake_loads_no_session_and_runs_no_middleware() -> None:
    backend, log = CountingBackend(), HookLog()
    app = Echo(session_backend=backend, middlewares=[log])
    client = TestClient(app)
    client.post("/login")
    backend.loads.clear()
    app.ran.clear()
    assert not accepted(client, "https://evil.example")
    assert (backend.loads, log.events, app.ran) == ([], [], [])
    # The same client from the site's own page: everything runs.
    assert accepted(client, "http://testserver")
    assert len(backend.loads) == 1
    assert log.events == ["before", "after"]
    assert app.ran == ["ws_echo"]


def test_a_refusal_leaves_the_session_as_it_was() -> None:
    backend = InMemorySessionBackend()
    client = TestClient(Echo(session_backend=backend))
    client.post("/login")
    [stored] = backend._sessions.values()
    assert not accepted(client, "https://evil.example")
    assert list(backend._sessions.values()) == [stored]


def test_the_origin_check_alone_lets_a_rebound_page_in() -> None:
    """A page of attacker.example whose name now points at this site's address
    sends its own host as Host and in Origin: they match. Naming the hosts the
    site is reached by refuses it before the Origin is looked at."""
    rebound = {"origin": "http://attacker.example:8000", "host": "attacker.example:8000"}
    assert accepted(TestClient(Echo()), **rebound)
    assert not accepted(TestClient(Echo(allowed_hosts=["testserver"])), **rebound)
    assert accepted(TestClient(Echo(allowed_hosts=["testserver"])), "http://testserver")


# Ports


@pytest.mark.parametrize(
    ("host", "origin", "expected"),
    [
        ("example.com:8000", "http://example.com:8000", True),
        ("example.com:8000", "http://example.com:8001", False),
        ("example.com:8000", "http://example.com", False),
        ("example.com", "http://example.com:8000", False),
        ("127.0.0.1:8000", "http://127.0.0.1:8000", True),
        ("127.0.0.1:8000", "http://127.0.0.1:9000", False),
        ("127.0.0.1:8000", "http://localhost:8000", False),  # another name is another origin
        ("[::1]:8000", "http://[::1]:8000", True),
        ("[::1]:8000", "http://[::1]:8001", False),
    ],
)
def test_a_different_port_is_a_different_origin(host: str, origin: str, expected: bool) -> None:
    assert accepted(TestClient(Echo()), origin, host=host) is expected


# No Origin


def test_a_handshake_without_origin_is_accepted(caplog: pytest.LogCaptureFixture) -> None:
    app = Echo()
    client = TestClient(app)
    client.post("/login")
    with caplog.at_level(logging.DEBUG, logger="micropie"), client.websocket_connect("/echo") as ws:
        assert ws.receive_text() == "hello, ada"
    assert refusals(caplog) == []


def test_without_a_host_header_only_handshakes_without_origin_are_accepted() -> None:
    client = TestClient(without_host(Echo()))
    assert not accepted(client, "http://testserver")
    assert not accepted(client, "null")
    assert accepted(client, None)


# allowed_origins


def test_allowed_origins_are_stored_in_lower_case_without_a_trailing_slash() -> None:
    app = App(allowed_origins=["https://App.Example.com/", "http://localhost:3000"])
    assert app.allowed_origins == frozenset({"https://app.example.com", "http://localhost:3000"})
    assert App().allowed_origins == frozenset()


@pytest.mark.parametrize(
    "origin",
    ["https://app.example.com", "HTTPS://APP.EXAMPLE.COM", "https://app.example.com/"],
)
def test_an_allowed_origin_is_accepted_whatever_its_case_or_trailing_slash(origin: str) -> None:
    app = Echo(allowed_origins=["https://App.Example.com/"])
    client = TestClient(app)
    client.post("/login")
    with client.websocket_connect("/echo", headers={"Origin": origin}) as ws:
        assert ws.receive_text() == "hello, ada"
    assert app.ran == ["login", "ws_echo"]


@pytest.mark.parametrize(
    "origin",
    [
        "http://app.example.com",  # the scheme of an allowed origin counts
        "https://app.example.com:8443",
        "https://example.com",
        "https://www.app.example.com",
        "https://app.example.com.evil.example",
        "https://evil.example",
    ],
)
def test_allowed_origins_match_exactly(origin: str) -> None:
    client = TestClient(Echo(allowed_origins=["https://app.example.com"]))
    assert not accepted(client, origin)


def test_allowed_origins_add_to_the_sites_own() -> None:
    client = TestClient(Echo(allowed_origins=["https://app.example.com"]))
    assert accepted(client, "http://testserver")
    assert accepted(client, None)


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://testserver", "http://testserver:1", None]
)
def test_star_accepts_every_origin(origin: str | None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="micropie"):
        assert accepted(TestClient(Echo(allowed_origins=["*"])), origin)
    assert refusals(caplog) == []


def test_allowed_origins_can_be_changed_after_the_app_is_made() -> None:
    app = Echo()
    client = TestClient(app)
    assert not accepted(client, "https://app.example.com")
    app.allowed_origins = frozenset({"https://app.example.com"})
    assert accepted(client, "https://app.example.com")


def test_allowed_origins_is_no_route() -> None:
    client = TestClient(Echo(allowed_origins=["https://app.example.com"]))
    assert client.get("/allowed_origins").status_code == 404
    with pytest.raises(WebSocketRejected), client.websocket_connect("/allowed_origins"):
        pass


# Behind a reverse proxy


def test_behind_a_proxy_that_does_not_pass_the_host_header() -> None:
    """The app sees the proxy's upstream address as Host, not the browser's."""
    site = "https://chat.example.com"
    assert not accepted(TestClient(Echo()), site, host="127.0.0.1:8000")
    allowing = Echo(allowed_origins=[site])
    assert accepted(TestClient(allowing), site, host="127.0.0.1:8000")
    # With the browser's Host passed on, nothing needs naming.
    assert accepted(TestClient(Echo()), site, host="chat.example.com")


def test_the_example_nginx_config_passes_the_host_header_on() -> None:
    lines = [line.strip() for line in NGINX_CONFIG.read_text(encoding="utf-8").splitlines()]
    # $http_host, not $host: it keeps the port, which an Origin names too.
    assert "proxy_set_header Host $http_host;" in lines


# HTTP


@pytest.mark.parametrize("origin", ["https://evil.example", "null"])
def test_http_requests_are_not_checked(origin: str, caplog: pytest.LogCaptureFixture) -> None:
    app = Echo()
    client = TestClient(app)
    with caplog.at_level(logging.DEBUG, logger="micropie"):
        response = client.get("/", headers={"Origin": origin})
        assert (response.status_code, response.text) == (200, f"origin: {origin}")
        response = client.post("/login", headers={"Origin": origin})
        assert (response.status_code, response.text) == (200, "logged in")
    assert app.ran == ["index", "login"]
    assert refusals(caplog) == []
