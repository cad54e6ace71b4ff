"""The Host check (``App(allowed_hosts=...)``), in process: the defence against DNS rebinding.

After a DNS rebinding, a page of another site (``http://attacker.example:8000``)
reaches this one under the attacker's name: the browser sends
``Host: attacker.example:8000``, and, for a WebSocket, an ``Origin`` of that
same host, which the Origin check alone takes for the site's own. With
``allowed_hosts`` set, MicroPie answers such a request with 400 (a WebSocket
handshake: HTTP 403) before anything else runs. docs/source/security.rst and
the reference of ``App.allowed_hosts`` say so; tests/e2e/test_allowed_hosts_e2e.py
does the same under uvicorn.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from micropie import App
from micropie.origins import AllowedHosts
from micropie.testing import HTTPResponse, TestClient, WebSocketRejected
from tests.helpers.apps.recording_app import CountingBackend, HookLog, RecordingApp, accepted
from tests.helpers.asgi import without_host

REBOUND_HOST = "attacker.example:8000"
REBOUND_ORIGIN = "http://attacker.example:8000"
LOCAL = ["localhost", "127.0.0.1", "[::1]"]
REFUSED_TEXT = "the Host header names a host that this site does not serve"
NO_HOST_TEXT = "the request has no Host header"


class Site(RecordingApp):
    """What a rebound page is after: a page and a WebSocket; records what ran."""

    def secret(self) -> str:
        self.ran.append("secret")
        return "the router's admin password"


def get(
    client: TestClient, host: str, *, path: str = "/secret", secure: bool = False
) -> HTTPResponse:
    return client.get(path, headers={"Host": host}, secure=secure)


def host_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "micropie" and "Host" in r.getMessage()]


# The attack


def test_without_allowed_hosts_a_rebound_page_gets_in() -> None:
    """What the default leaves open, and why allowed_hosts exists: the Origin
    names the same host as Host, so the Origin check lets the handshake in."""
    app = Site()
    client = TestClient(app)
    assert get(client, REBOUND_HOST).text == "the router's admin password"
    assert accepted(client, REBOUND_ORIGIN, host=REBOUND_HOST)
    assert app.ran == ["secret", "ws_echo"]


def test_allowed_hosts_refuses_the_rebound_handshake(caplog: pytest.LogCaptureFixture) -> None:
    app = Site(allowed_hosts=LOCAL)
    client = TestClient(app)
    with caplog.at_level(logging.DEBUG, logger="micropie"):
        assert not accepted(client, REBOUND_ORIGIN, host=REBOUND_HOST)
    assert app.ran == []
    [record] = caplog.records
    assert (record.name, record.levelno) == ("micropie", logging.INFO)
    assert record.getMessage() == (
        "WebSocket handshake for /echo refused: Host 'attacker.example:8000' "
        "is not in allowed_hosts"
    )
    # The site's own page, under a name it is reached by, still gets in.
    assert accepted(client, "http://localhost:8000", host="localhost:8000")
    assert app.ran == ["ws_echo"]


def test_allowed_hosts_answers_a_rebound_http_request_with_400(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Site(allowed_hosts=LOCAL)
    client = TestClient(app)
    with caplog.at_level(logging.DEBUG, logger="micropie"):
        response = get(client, REBOUND_HOST)
    assert (response.status_code, response.text) == (400, REFUSED_TEXT)
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert app.ran == []
    [record] = caplog.records
    assert (record.name, record.levelno) == ("micropie", logging.INFO)
    assert record.getMessage() == (
        "request for /secret refused: Host 'attacker.example:8000' is not in allowed_hosts"
    )
    assert get(client, "127.0.0.1:8000").text == "the router's admin password"


def test_a_refused_head_request_gets_the_400_without_a_body() -> None:
    response = TestClient(Site(allowed_hosts=LOCAL)).head("/secret", headers={"Host": REBOUND_HOST})
    assert (response.status_code, response.content) == (400, b"")
    assert response.headers["content-length"] == str(len(REFUSED_TEXT))


def test_the_refusal_comes_before_routing_sessions_and_middlewares() -> None:
    backend, log = CountingBackend(), HookLog()
    app = Site(session_backend=backend, middlewares=[log], allowed_hosts=LOCAL)
    client = TestClient(app)
    assert client.post("/login", headers={"Host": "localhost"}).text == "logged in"
    backend.loads.clear()
    app.ran.clear()
    # A path that names nothing is refused for its Host, not answered 404.
    assert get(client, REBOUND_HOST, path="/nowhere").status_code == 400
    assert client.post("/login", headers={"Host": REBOUND_HOST}).status_code == 400
    assert not accepted(client, REBOUND_ORIGIN, host=REBOUND_HOST)
    assert (backend.loads, log.events, app.ran) == ([], [], [])


def test_a_mounted_application_is_behind_the_check_too() -> None:
    inner = Site()
    outer = App(allowed_hosts=["example.com"])
    outer.mount("/inner", inner)
    client = TestClient(outer)
    assert get(client, REBOUND_HOST, path="/inner/secret").status_code == 400
    assert not accepted(client, host=REBOUND_HOST)  # /echo is outer's: refused for the Host first
    assert inner.ran == []
    assert get(client, "example.com", path="/inner/secret").status_code == 200
    assert inner.ran == ["secret"]


def test_the_lifespan_is_not_checked() -> None:
    started: list[str] = []
    app = Site(allowed_hosts=["example.com"])
    app.startup_handlers.append(lambda: started.append("up"))
    with TestClient(app):
        assert started == ["up"]


def test_the_refusal_never_repeats_the_host_it_was_sent() -> None:
    host = "<script>alert(1)</script>.example"
    response = get(TestClient(Site(allowed_hosts=LOCAL)), host)
    assert (response.status_code, response.text) == (400, REFUSED_TEXT)


# Matching


@pytest.mark.parametrize(
    ("allowed", "host", "secure", "expected"),
    [
        # Case, and the trailing dot of a fully qualified name.
        (["Example.COM"], "EXAMPLE.com", False, True),
        (["example.com"], "example.com.", False, True),
        (["example.com."], "example.com:8000", False, True),
        # A name without a port: on any port.
        (["example.com"], "example.com:8000", False, True),
        (["example.com"], "example.com:1", True, True),
        (["example.com"], "www.example.com", False, False),
        (["example.com"], "example.com.attacker.example", False, False),
        (["example.com"], "attacker.example", False, False),
        # A name with a port: on that port only; none in Host means the scheme's.
        (["example.com:8000"], "example.com:8000", False, True),
        (["example.com:8000"], "example.com:8001", False, False),
        (["example.com:8000"], "example.com", False, False),
        (["example.com:443"], "example.com", True, True),
        (["example.com:443"], "example.com", False, False),
        (["example.com:80"], "example.com", False, True),
        (["example.com:80"], "example.com", True, False),
        # Subdomains, at any depth; not the domain itself, nor look-alikes.
        (["*.example.com"], "api.example.com", False, True),
        (["*.example.com"], "A.B.Example.com:8443", False, True),
        (["*.example.com"], "example.com", False, False),
        (["*.example.com"], "attackerexample.com", False, False),
        (["*.example.com"], "api.example.com.attacker.example", False, False),
        (["*.example.com", "example.com"], "example.com", False, True),
        (["*.example.com:8443"], "api.example.com:8443", False, True),
        (["*.example.com:8443"], "api.example.com", True, False),
        # IP addresses; IPv6 in brackets, compared as addresses.
        (["127.0.0.1"], "127.0.0.1:8000", False, True),
        (["127.0.0.1"], "127.0.0.2:8000", False, False),
        (["[::1]"], "[::1]:8000", False, True),
        (["[::1]"], "[::1]", False, True),
        (["[::1]"], "[0:0:0:0:0:0:0:1]:8000", False, True),
        (["[0:0::1]"], "[::1]:8000", False, True),
        (["[::1]"], "[::2]:8000", False, False),
        (["[::1]:8000"], "[::1]:8000", False, True),
        (["[::1]:8000"], "[::1]:8001", False, False),
        (["[2001:DB8::1]"], "[2001:db8::1]", False, True),
        # "*" is every host, whatever else is listed, malformed ones included.
        (["*"], "attacker.example", False, True),
        (["example.com", "*"], "attacker.example", False, True),
        (["*"], "not a host at all", False, True),
    ],
)
def test_which_hosts_are_allowed(
    allowed: list[str], host: str, secure: bool, expected: bool
) -> None:
    client = TestClient(Site(allowed_hosts=allowed))
    assert (get(client, host, secure=secure).status_code == 200) is expected
    assert accepted(client, host=host, secure=secure) is expected


@pytest.mark.parametrize(
    "host",
    [
        "",
        " ",
        "example.com:",
        "example.com:abc",
        "example.com:99999",
        "example.com:-1",
        "example.com:80:80",
        "exa mple.com",
        "example..com",
        ".example.com",
        "user@example.com",
        "evil/.example.com",
        "evil.example.com/x",
        "*.example.com",
        "ex\u00e9mple.com",  # latin-1, as a server decodes it
        "example.com\x00",
        "[::1",
        "[::1]x",
        "[::1]:",
        "[::1]:99999",
        "[not-hex]:8000",
        "::1",
        "::1:8000",
        "[127.0.0.1]",
        "a" * 10_000 + ".example.com",
    ],
)
def test_a_malformed_host_is_refused_with_400_not_an_error(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Every entry kind listed: none may match a malformed Host by its prefix or suffix.
    app = Site(allowed_hosts=["example.com", "*.example.com", "[::1]", "127.0.0.1"])
    client = TestClient(app)
    with caplog.at_level(logging.DEBUG, logger="micropie"):
        response = get(client, host)
        assert (response.status_code, response.text) == (400, REFUSED_TEXT)
        assert not accepted(client, host=host)
    assert app.ran == []
    assert not any(record.exc_info for record in caplog.records)
    assert [r.levelno for r in host_records(caplog)] == [logging.INFO, logging.INFO]


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=40),
        # Near misses: pieces of allowed hosts, put together any way.
        st.lists(
            st.sampled_from(["example", ".", "com", ":", "8000", "[", "]", "::1", "*", "@", "/"]),
            max_size=8,
        ).map(lambda parts: "".join(parts).encode("latin-1")),
    )
)
def test_no_host_value_gets_in_unless_it_names_an_allowed_host(host: bytes) -> None:
    app = Site(allowed_hosts=["example.com", "*.example.com", "[::1]"])
    response = TestClient(app).get("/secret", headers=[("Host", host.decode("latin-1"))])
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        name, _, port = host.decode("latin-1").lower().rpartition(":")
        if not name or (name.startswith("[") and not name.endswith("]")):
            name, port = host.decode("latin-1").lower(), ""
        if name.startswith("["):
            assert ipaddress.IPv6Address(name[1:-1]) == ipaddress.IPv6Address("::1"), host
        else:
            name = name.removesuffix(".")
            assert name == "example.com" or name.endswith(".example.com"), host
        assert port == "" or port.isdigit(), host
        assert app.ran == ["secret"]
    else:
        assert app.ran == []


def test_two_host_headers_are_refused() -> None:
    client = TestClient(Site(allowed_hosts=["example.com"]))
    headers = [("Host", "example.com"), ("Host", "attacker.example")]
    assert client.get("/secret", headers=headers).status_code == 400
    headers = [("Host", "example.com"), ("Host", "example.com")]
    assert client.get("/secret", headers=headers).status_code == 400


# No Host header


def test_without_a_host_header_a_request_is_refused_when_hosts_are_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Site(allowed_hosts=["example.com"])
    client = TestClient(without_host(app))
    with caplog.at_level(logging.DEBUG, logger="micropie"):
        response = client.get("/secret")
        assert (response.status_code, response.text) == (400, NO_HOST_TEXT)
        assert not accepted(client)
    assert app.ran == []
    assert [r.getMessage() for r in caplog.records] == [
        "request for /secret refused: it has no Host header",
        "WebSocket handshake for /echo refused: it has no Host header",
    ]


def test_without_a_host_header_a_request_is_served_by_default() -> None:
    client = TestClient(without_host(Site()))
    assert client.get("/secret").status_code == 200
    assert accepted(client)


# The Origin check, after the Host check


def test_allowed_hosts_adds_no_origins() -> None:
    """The Origin is still compared with the request's own Host: a page of
    another allowed host is another origin, which allowed_origins must name."""
    client = TestClient(Site(allowed_hosts=["example.com", "www.example.com"]))
    assert accepted(client, "http://example.com", host="example.com")
    assert not accepted(client, "http://www.example.com", host="example.com")
    allowing = TestClient(
        Site(allowed_hosts=["example.com"], allowed_origins=["http://www.example.com"])
    )
    assert accepted(allowing, "http://www.example.com", host="example.com")


def test_allowed_origins_does_not_let_a_refused_host_in() -> None:
    client = TestClient(Site(allowed_hosts=LOCAL, allowed_origins=["*"]))
    assert not accepted(client, REBOUND_ORIGIN, host=REBOUND_HOST)


# The setting


def test_allowed_hosts_are_stored_normalized() -> None:
    app = App(allowed_hosts=[" Example.COM ", "example.com.", "[0:0::1]:8000", "*.API.example.com"])
    assert app.allowed_hosts == frozenset({"example.com", "[::1]:8000", "*.api.example.com"})
    assert isinstance(app.allowed_hosts, frozenset)
    assert App().allowed_hosts == frozenset({"*"})


@pytest.mark.parametrize(
    ("hosts", "error", "message"),
    [
        ("example.com", TypeError, "takes a list of host names"),
        ([], ValueError, "allowed_hosts is empty, which would refuse every request"),
        ([""], ValueError, "'' is not a host name"),
        ([42], TypeError, "holds host names \\(str\\), not int"),
        (["https://example.com"], ValueError, "is a URL; write its host alone"),
        (["example.com/"], ValueError, "is a URL"),
        ([".example.com"], ValueError, "write '\\*.example.com' for its subdomains"),
        (["::1"], ValueError, "write it in brackets"),
        (["exa*mple.com"], ValueError, "has a '\\*' where none can be"),
        (["*example.com"], ValueError, "has a '\\*' where none can be"),
        (["*.*.example.com"], ValueError, "has a '\\*' where none can be"),
        (["*:8000"], ValueError, "has a '\\*' where none can be"),
        (["example.com:http"], ValueError, "is not a host name, with or without a port"),
        (["example.com:70000"], ValueError, "is not a host name"),
        (["[::1"], ValueError, "is not a host name"),
        (["*.[::1]"], ValueError, "is not a host name"),
        (["exa mple.com"], ValueError, "is not a host name"),
        (["b\u00fccher.example"], ValueError, "in its xn-- form"),
    ],
)
def test_a_setting_no_host_could_match_is_refused_at_once(
    hosts: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        App(allowed_hosts=hosts)
    with pytest.raises(error, match=message):
        App().allowed_hosts = hosts


def test_allowed_hosts_can_be_changed_after_the_app_is_made() -> None:
    app = Site()
    client = TestClient(app)
    assert get(client, REBOUND_HOST).status_code == 200
    app.allowed_hosts = ["localhost"]
    assert get(client, REBOUND_HOST).status_code == 400
    assert get(client, "localhost").status_code == 200
    app.allowed_hosts = ["*"]
    assert get(client, REBOUND_HOST).status_code == 200


def test_allowed_hosts_is_no_route() -> None:
    client = TestClient(Site(allowed_hosts=["testserver"]))
    assert client.get("/allowed_hosts").status_code == 404
    with pytest.raises(WebSocketRejected), client.websocket_connect("/allowed_hosts"):
        pass


def test_a_copy_of_the_app_keeps_its_hosts() -> None:
    import copy

    app = Site(allowed_hosts=["example.com"])
    clone = copy.copy(app)
    assert clone.allowed_hosts == {"example.com"}
    clone.allowed_hosts = ["*"]
    assert app.allowed_hosts == {"example.com"}


# The cost


def test_by_default_no_request_is_checked() -> None:
    """With "*", serving a request costs one attribute read: the check never runs."""
    with mock.patch.object(AllowedHosts, "allow", side_effect=AssertionError("checked")):
        client = TestClient(Site())
        assert get(client, REBOUND_HOST).status_code == 200
        assert accepted(client, REBOUND_ORIGIN, host=REBOUND_HOST)


def judging() -> Any:
    """A patch that counts the times a Host value is worked out, not looked up."""
    return mock.patch.object(AllowedHosts, "_judge", autospec=True, side_effect=AllowedHosts._judge)


def test_each_host_is_judged_once_and_the_memory_of_them_is_bounded() -> None:
    app = Site(allowed_hosts=["example.com", "*.example.com"])
    client = TestClient(app)
    with judging() as judged:
        for secure in (False, True, False):  # no entry has a port: TLS changes nothing
            assert get(client, "www.example.com", secure=secure).status_code == 200
            assert get(client, REBOUND_HOST, secure=secure).status_code == 400
        assert judged.call_count == 2
    for n in range(1000):
        assert get(client, f"made-up-{n}.attacker.example").status_code == 400
    assert 0 < len(app.allowed_hosts._verdicts) <= 256  # type: ignore[attr-defined]
    assert get(client, "www.example.com").status_code == 200


def test_with_a_port_named_a_host_is_judged_once_per_scheme() -> None:
    # "example.com" without a port is on 80 over plain HTTP, 443 over TLS.
    client = TestClient(Site(allowed_hosts=["example.com:443"]))
    with judging() as judged:
        answers = [
            get(client, "example.com", secure=secure).status_code for secure in (False, True) * 2
        ]
        assert answers == [400, 200, 400, 200]
        assert judged.call_count == 2
