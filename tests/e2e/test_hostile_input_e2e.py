"""Hostile input over the wire: a real uvicorn serving tests/helpers/apps/hostile_app.py.

What the in-process tests (tests/unit/test_hostile_input.py) send through
``TestClient``, a few of them sent as raw bytes to a real server. The server
that these requests share is stopped at the end of the module and its whole
output checked: none of them may cost a traceback.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.helpers.apps.hostile_app import ERROR_BODY, ERROR_REASON, TRACEBACK_MARKERS
from tests.helpers.clients import close_frame_of, ws_connect
from tests.helpers.logs import quiet
from tests.helpers.servers import RunningServer, run_uvicorn
from tests.helpers.support import assert_strong_session_id

APP = "tests.helpers.apps.hostile_app:app"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    """The app under uvicorn; none of the requests sent to it may cost a traceback."""
    with quiet(run_uvicorn(APP), words=TRACEBACK_MARKERS) as running:
        yield running


def raw_request(server: RunningServer, request: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    """Send *request* (with ``Connection: close``) as it is; return the status and body
    of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        # No shutdown(SHUT_WR): uvicorn takes the half-close for the client's departure,
        # and drops an answer not ready by then (a def handler's, from its thread).
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize(
    ("path", "status"),
    [("/%ff%fe", 404), ("/echo/%ff%fe", 200), ("/%2e%2e/%2e%2e/_private", 404), ("/request", 404)],
)
def test_wire_invalid_percent_encoded_utf8_and_reserved_paths(
    server: RunningServer, path: str, status: int
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path)  # sent exactly as written
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == status
    if status == 200:
        assert body.decode("utf-8") == "\ufffd\ufffd"


def test_wire_websocket_to_an_invalid_utf8_path_is_403(server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as info, ws_connect(f"{server.ws_url}/%ff%fe"):
        pass
    assert info.value.response.status_code == 403


def test_wire_huge_cookie_is_handled(server: RunningServer) -> None:
    cookie = "session_id=" + "a" * 65_536 + "; " + "; ".join(f"c{i}=v" for i in range(5_000))
    with httpx.Client(base_url=server.http_url, timeout=30, trust_env=False) as http:
        response = http.get("/whoami", headers={"cookie": cookie})
    assert response.status_code in (200, 400, 413, 431)
    if response.status_code == 200:
        assert response.text == "anonymous"
        assert "set-cookie" not in response.headers


def test_wire_huge_query_string_is_handled(server: RunningServer) -> None:
    # 55 KB: uvicorn refuses request lines over 64 KiB itself (400), and httpx
    # URLs over 64 KiB, so the names are short enough for 10,000 to reach the app.
    query = "&".join(f"{i:x}=" for i in range(10_000))
    request = f"GET /count?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, body = raw_request(server, request.encode("ascii"))
    assert status == 200
    assert json.loads(body) == {"params": 10_000, "values": 10_000}


def test_wire_many_cookie_headers_are_answered_promptly(server: RunningServer) -> None:
    cookies = b"Cookie: c=1\r\n" * 100_000
    request = b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + cookies + b"\r\n"
    started = time.monotonic()
    status, _ = raw_request(server, request, timeout=120)
    elapsed = time.monotonic() - started
    assert status in (200, 400, 431)
    # One request must not hold the (single-threaded) server for seconds.
    assert elapsed < 1.5, f"100,000 cookie headers took {elapsed:.1f} s to answer"


def test_wire_deeply_nested_json_is_400_without_a_traceback(server: RunningServer) -> None:
    body = b"[" * 20_000 + b"]" * 20_000  # 40 KB: under the app's size limit
    with httpx.Client(base_url=server.http_url, timeout=30, trust_env=False) as http:
        response = http.post("/add", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text


def test_wire_500_and_1011_carry_no_exception_text() -> None:
    # A server of its own: its log gets the tracebacks that the answers must not carry.
    with run_uvicorn(APP) as server:
        with httpx.Client(base_url=server.http_url, timeout=10, trust_env=False) as http:
            response = http.get("/boom")
        assert response.status_code == 500
        assert response.content == ERROR_BODY
        with ws_connect(f"{server.ws_url}/boom") as ws:
            assert close_frame_of(ws) == (1011, ERROR_REASON)


def test_wire_login_session_id_has_at_least_128_bits(server: RunningServer) -> None:
    ids = []
    for _ in range(20):
        with httpx.Client(base_url=server.http_url, timeout=10, trust_env=False) as http:
            response = http.get("/login")
            session_id = response.cookies.get("session_id")
            assert_strong_session_id(session_id)
            assert http.get("/whoami").text == "ada"
            ids.append(session_id)
    assert len(set(ids)) == len(ids)
