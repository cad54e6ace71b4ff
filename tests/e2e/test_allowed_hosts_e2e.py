"""End-to-end: DNS rebinding, and ``App.allowed_hosts`` stopping it, under real servers.

A DNS rebinding is simulated as a browser lives it: a client asks for
``ws://attacker.example:<port>/echo`` (so it sends ``Host:
attacker.example:<port>`` and the Origin of a page of that name), but its
TCP connection goes to 127.0.0.1, where the attacker's name now points. The
application (tests/helpers/apps/host_apps.py) is served as is, open to any
host, and with ``allowed_hosts`` naming its local names. docs/source/security.rst
points here.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection

from tests.helpers.apps.host_apps import SECRET
from tests.helpers.clients import TIMEOUT, receive, ws_connect
from tests.helpers.logs import quiet
from tests.helpers.servers import RunningServer, run_server, run_uvicorn

OPEN_APP = "tests.helpers.apps.host_apps:open_to_any_host"
LOCAL_APP = "tests.helpers.apps.host_apps:local_only"
ATTACKER = "attacker.example"
REFUSED_TEXT = "the Host header names a host that this site does not serve"
NO_HOST_TEXT = "the request has no Host header"


@pytest.fixture(scope="module")
def open_server(log_config: Path) -> Iterator[RunningServer]:
    with quiet(run_uvicorn(OPEN_APP, "--log-config", str(log_config))) as running:
        yield running


@pytest.fixture(scope="module")
def local_server(log_config: Path) -> Iterator[RunningServer]:
    with quiet(run_uvicorn(LOCAL_APP, "--log-config", str(log_config))) as running:
        yield running


def connect_as(server: RunningServer, name: str, *, origin: str | None = None) -> ClientConnection:
    """A WebSocket to ``ws://<name>:<port>/echo`` whose connection goes to 127.0.0.1,
    as a browser's does once *name* resolves there; its Origin is a page of
    *name* on that port unless *origin* says otherwise."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    try:
        return ws_connect(
            f"ws://{name}:{server.port}/echo",
            origin=origin if origin is not None else f"http://{name}:{server.port}",
            sock=sock,
        )
    except BaseException:
        sock.close()
        raise


def refused_status(server: RunningServer, name: str) -> int:
    """The HTTP status with which the server refuses the handshake of a page of *name*."""
    with pytest.raises(InvalidStatus) as refused:
        connect_as(server, name).close()
        pytest.fail(f"the handshake as {name!r} was accepted")
    return refused.value.response.status_code


def echoes(server: RunningServer, name: str) -> bool:
    """Whether a page of *name* gets a WebSocket that works."""
    with connect_as(server, name) as ws:
        ws.send("ping")
        return receive(ws) == "ping"


def raw_request(server: RunningServer, head: bytes) -> tuple[int, str]:
    """Send the request *head* as it is written (any Host, or none); the status and body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(head)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), body.decode("utf-8", errors="replace")


def get_secret(server: RunningServer, host: str) -> tuple[int, str]:
    """GET /secret over HTTP/1.1 with this Host header."""
    head = f"GET /secret HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    return raw_request(server, head.encode("latin-1"))


# The attack, and its refusal


def test_without_allowed_hosts_a_rebound_page_gets_in(open_server: RunningServer) -> None:
    host = f"{ATTACKER}:{open_server.port}"
    assert get_secret(open_server, host) == (200, SECRET)
    assert echoes(open_server, ATTACKER)


def test_allowed_hosts_refuses_the_rebound_handshake_with_403(
    local_server: RunningServer,
) -> None:
    mark = local_server.mark()
    assert refused_status(local_server, ATTACKER) == 403
    local_server.wait_for_output(
        f"INFO [micropie] WebSocket handshake for /echo refused: "
        f"Host '{ATTACKER}:{local_server.port}' is not in allowed_hosts",
        since=mark,
    )


def test_allowed_hosts_answers_a_rebound_http_request_with_400(
    local_server: RunningServer,
) -> None:
    mark = local_server.mark()
    assert get_secret(local_server, f"{ATTACKER}:{local_server.port}") == (400, REFUSED_TEXT)
    local_server.wait_for_output(
        f"INFO [micropie] request for /secret refused: "
        f"Host '{ATTACKER}:{local_server.port}' is not in allowed_hosts",
        since=mark,
    )


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LocalHost", "[::1]"])
def test_the_names_the_site_is_reached_by_get_in(local_server: RunningServer, name: str) -> None:
    assert get_secret(local_server, f"{name}:{local_server.port}") == (200, SECRET)
    assert echoes(local_server, name)


# Hosts that are not what a browser sends


def test_an_http_1_0_request_without_host(
    open_server: RunningServer, local_server: RunningServer
) -> None:
    request = b"GET /secret HTTP/1.0\r\n\r\n"
    assert raw_request(open_server, request) == (200, SECRET)
    assert raw_request(local_server, request) == (400, NO_HOST_TEXT)


@pytest.mark.parametrize(
    "host",
    [
        "localhost:abc",
        "localhost:99999",
        "localhost.:{port}:{port}",
        "[::1:{port}",
        "local host",
        "localhost@{attacker}:{port}",
        "{attacker}/.localhost",
    ],
)
def test_a_malformed_host_is_answered_400(local_server: RunningServer, host: str) -> None:
    host = host.format(port=local_server.port, attacker=ATTACKER)
    assert get_secret(local_server, host) == (400, REFUSED_TEXT)


# Every server passes the Host on


@pytest.mark.parametrize(
    ("program", "args"),
    [
        ("uvicorn", ("--ws", "wsproto")),
        ("hypercorn", ()),
        ("granian", ("--interface", "asgi")),
        ("daphne", ()),
    ],
    ids=["uvicorn-wsproto", "hypercorn", "granian", "daphne"],
)
def test_every_server_gives_the_check_the_host(program: str, args: tuple[str, ...]) -> None:
    with quiet(run_server(program, LOCAL_APP, *args)) as server:
        assert get_secret(server, f"127.0.0.1:{server.port}") == (200, SECRET)
        assert get_secret(server, f"{ATTACKER}:{server.port}") == (400, REFUSED_TEXT)
        assert echoes(server, "localhost")
        assert refused_status(server, ATTACKER) == 403
