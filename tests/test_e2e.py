"""End-to-end tests: the example apps served by a real uvicorn, driven by a real client.

Each server starts once per module (see ``tests/servers.py``). Run only these
with ``pytest -m e2e``, or leave them out with ``pytest -m "not e2e"``.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import http.client
import json
import os
import re
import signal
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect
from websockets.uri import parse_uri

from tests.e2e_apps import CUSTOM_CLOSE_CODE, CUSTOM_CLOSE_REASON, SECRET_ERROR_TEXT
from tests.servers import STARTUP_TIMEOUT, RunningServer, ServerError, run_uvicorn

pytestmark = pytest.mark.e2e

TIMEOUT = 5.0  # seconds to wait for any one message or handshake
# A negative check ("nothing was logged") needs the server to have had its chance.
SETTLE = 0.3
CHAT_LINE = re.compile(r"(guest-\d+): (.*)", re.DOTALL)


# Servers and clients.


@pytest.fixture(scope="module")
def echo_server() -> Iterator[RunningServer]:
    with run_uvicorn("examples.echo.app:app") as server:
        yield server


@pytest.fixture(scope="module")
def chat_server() -> Iterator[RunningServer]:
    with run_uvicorn("examples.chat.app:app") as server:
        yield server


@pytest.fixture(scope="module")
def apps_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # uvicorn's own logging, plus the "micropie" logger with its name in each line,
    # so that a test can tell MicroPie's log lines from uvicorn's.
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["named"] = {"format": "%(levelname)s [%(name)s] %(message)s"}
    config["handlers"]["named"] = {
        "class": "logging.StreamHandler",
        "formatter": "named",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["micropie"] = {"handlers": ["named"], "level": "INFO", "propagate": False}
    path = tmp_path_factory.mktemp("logging") / "log-config.json"
    path.write_text(json.dumps(config))
    with run_uvicorn("tests.e2e_apps:app", "--log-config", str(path)) as server:
        yield server


def ws_connect(url: str, cookie: str | None = None) -> ClientConnection:
    """``websockets.sync.client.connect``, never through a proxy, with short timeouts.

    Use it in a ``with`` statement. *cookie* is sent as the ``Cookie`` header.
    """
    headers = {"Cookie": cookie} if cookie is not None else None
    return connect(
        url,
        proxy=None,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        additional_headers=headers,
    )


def receive(ws: ClientConnection, timeout: float = TIMEOUT) -> str | bytes:
    """The next message; ``TimeoutError`` if none comes within *timeout* seconds."""
    return ws.recv(timeout=timeout)


def close_frame_of(ws: ClientConnection) -> tuple[int, str]:
    """Wait for the server to close *ws*; return the close code and reason it sent."""
    with pytest.raises(ConnectionClosed) as closed:
        message = receive(ws)
        pytest.fail(f"expected the server to close, but it sent {message!r}")
    frame = closed.value.rcvd
    assert frame is not None, "the server closed the TCP connection without a close frame"
    return frame.code, frame.reason


def assert_no_errors(server: RunningServer, since: int) -> None:
    time.sleep(SETTLE)
    printed = server.output_since(since)
    assert "Traceback" not in printed, printed
    assert "ERROR" not in printed, printed


def set_cookies(ws: ClientConnection) -> list[str]:
    assert ws.response is not None
    return ws.response.headers.get_all("Set-Cookie")


def http_get(server: RunningServer, path: str) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, response.read().decode("utf-8")
    finally:
        connection.close()


@contextlib.contextmanager
def raw_websocket(
    server: RunningServer, path: str, *, receive_buffer: int | None = None
) -> Iterator[tuple[socket.socket, ClientProtocol]]:
    """An open WebSocket on a plain socket that the test controls entirely.

    websockets' sans-I/O client does the framing; nothing runs in the background,
    so the test decides when to read, and can drop the TCP connection whenever
    and however it likes. *receive_buffer* sets ``SO_RCVBUF`` (a small one
    makes the server's writes back up sooner).
    """
    protocol = ClientProtocol(parse_uri(f"{server.ws_url}{path}"))
    protocol.send_request(protocol.connect())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"".join(protocol.data_to_send()))
        while protocol.state is State.CONNECTING:
            data = sock.recv(65536)
            assert data, "the server closed the connection during the handshake"
            protocol.receive_data(data)
        assert protocol.handshake_exc is None, protocol.handshake_exc
        assert protocol.state is State.OPEN
        yield sock, protocol
    finally:
        sock.close()


def reset_connection(sock: socket.socket) -> None:
    """Drop the TCP connection with a RST: no close frame, no FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def chat_say(ws: ClientConnection, text: str) -> str:
    """Send *text* to the chat; return the sender's name, read from the echo it gets."""
    ws.send(text)
    line = receive(ws)
    assert isinstance(line, str)
    match = CHAT_LINE.fullmatch(line)
    assert match is not None, f"not a chat line: {line!r}"
    assert match.group(2) == text
    return match.group(1)


def session_cookie_of(ws: ClientConnection) -> tuple[str, list[str]]:
    """The session ID the handshake set, and the cookie's attributes."""
    cookies = [c for c in set_cookies(ws) if c.startswith("session_id=")]
    assert len(cookies) == 1, set_cookies(ws)
    pair, *attributes = cookies[0].split("; ")
    return pair.removeprefix("session_id="), attributes


# examples/echo/app.py


def test_echo_text(echo_server: RunningServer) -> None:
    messages = ["hello", "", "héllo wörld ✓ 🥧", "x" * 100_000]
    with ws_connect(f"{echo_server.ws_url}/echo") as ws:
        for message in messages:
            ws.send(message)
            reply = receive(ws)
            assert type(reply) is str
            assert reply == message


def test_echo_binary(echo_server: RunningServer) -> None:
    messages = [b"\x00\x01\xfe\xff", b"", os.urandom(64 * 1024)]
    with ws_connect(f"{echo_server.ws_url}/echo") as ws:
        for message in messages:
            ws.send(message)
            reply = receive(ws)
            assert type(reply) is bytes
            assert reply == message


def test_echo_keeps_the_type_and_order_of_mixed_messages(echo_server: RunningServer) -> None:
    messages: list[str | bytes] = ["one", b"two", b"", "", "five", b"six"]
    with ws_connect(f"{echo_server.ws_url}/echo") as ws:
        for message in messages:  # all sent before any is read
            ws.send(message)
        replies = [receive(ws) for _ in messages]
    assert [(type(r), r) for r in replies] == [(type(m), m) for m in messages]


def test_echo_client_close_is_a_normal_end(echo_server: RunningServer) -> None:
    mark = echo_server.mark()
    with ws_connect(f"{echo_server.ws_url}/echo") as ws:
        ws.send("bye")
        assert receive(ws) == "bye"
        ws.close(1001, "going away")
        assert ws.close_code == 1001  # the server answered the close with the same code
    assert_no_errors(echo_server, mark)


@pytest.mark.parametrize("path", ["/nowhere", "/index", "/echo/too/many/segments"])
def test_unknown_websocket_route_is_rejected_with_403(
    echo_server: RunningServer, path: str
) -> None:
    mark = echo_server.mark()
    with pytest.raises(InvalidStatus) as rejected, ws_connect(f"{echo_server.ws_url}{path}"):
        pytest.fail("the handshake was accepted")
    assert rejected.value.response.status_code == 403
    echo_server.wait_for_output(f'"WebSocket {path}" 403', since=mark)
    assert_no_errors(echo_server, mark)


@pytest.mark.parametrize("how", ["reset", "fin"])
def test_abrupt_disconnect_mid_conversation(echo_server: RunningServer, how: str) -> None:
    mark = echo_server.mark()
    with raw_websocket(echo_server, "/echo") as (sock, protocol):
        # Several echoes are on their way back when the client vanishes.
        protocol.send_text(b"first")
        protocol.send_binary(os.urandom(256 * 1024))
        protocol.send_text(b"third")
        sock.sendall(b"".join(protocol.data_to_send()))
        if how == "reset":
            reset_connection(sock)
        else:
            sock.shutdown(socket.SHUT_RDWR)  # a FIN without any close frame
    # Others are still served.
    with ws_connect(f"{echo_server.ws_url}/echo") as ws:
        ws.send("still there?")
        assert receive(ws) == "still there?"
    assert echo_server.process.poll() is None
    assert_no_errors(echo_server, mark)


# Close codes the client sees (tests/e2e_apps.py).


def test_handler_that_returns_closes_normally(apps_server: RunningServer) -> None:
    mark = apps_server.mark()
    with ws_connect(f"{apps_server.ws_url}/returns") as ws:
        assert receive(ws) == "bye"
        with pytest.raises(ConnectionClosedOK) as closed:
            receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1000
    assert_no_errors(apps_server, mark)


def test_failing_handler_closes_with_1011_and_logs_the_traceback(
    apps_server: RunningServer,
) -> None:
    mark = apps_server.mark()
    with ws_connect(f"{apps_server.ws_url}/fail") as ws:
        assert receive(ws) == "about to fail"
        code, reason = close_frame_of(ws)
    assert code == 1011
    assert reason == "Internal server error"
    assert SECRET_ERROR_TEXT not in reason
    assert "hunter2" not in reason
    # The details went to the server's log instead, through the "micropie" logger.
    printed = apps_server.wait_for_output(f"RuntimeError: {SECRET_ERROR_TEXT}", since=mark)
    assert "ERROR [micropie] WebSocket handler ws_fail failed\nTraceback" in printed
    # ... and only there: uvicorn saw a well-behaved application.
    assert "Exception in ASGI application" not in printed


def test_custom_close_code_and_reason_reach_the_client(apps_server: RunningServer) -> None:
    mark = apps_server.mark()
    with ws_connect(f"{apps_server.ws_url}/custom_close") as ws:
        code, reason = close_frame_of(ws)
    assert (code, reason) == (CUSTOM_CLOSE_CODE, CUSTOM_CLOSE_REASON)
    assert_no_errors(apps_server, mark)


# examples/chat/app.py


def test_chat_index_serves_the_page_that_connects_to_chat(chat_server: RunningServer) -> None:
    status, headers, body = http_get(chat_server, "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert body.lstrip().lower().startswith("<!doctype html>")
    script = body[body.index("<script>") : body.index("</script>")]
    assert "new WebSocket(" in script
    assert re.search(r"/chat\b", script)
    assert "location.host" in script  # the page connects back to wherever it came from
    assert "textContent" in script  # messages are shown as text, not parsed as HTML


def test_chat_unknown_http_route_is_404(chat_server: RunningServer) -> None:
    status, _, _ = http_get(chat_server, "/chat")  # ws_chat is no HTTP route
    assert status == 404


def test_chat_sets_a_session_cookie_in_the_handshake(chat_server: RunningServer) -> None:
    with ws_connect(f"{chat_server.ws_url}/chat") as ws:
        session_id, attributes = session_cookie_of(ws)
        chat_say(ws, "hello")
    assert len(session_id) >= 32
    assert attributes == ["Path=/", "HttpOnly", "SameSite=Lax"]  # no Secure over plain ws


def test_chat_returning_visitor_keeps_its_name(chat_server: RunningServer) -> None:
    with ws_connect(f"{chat_server.ws_url}/chat") as ws:
        session_id, _ = session_cookie_of(ws)
        name = chat_say(ws, "first visit")
    # The session is saved when the first connection's handler ends, which the
    # server does after answering the client's close: allow it a moment.
    cookie = f"session_id={session_id}"
    deadline = time.monotonic() + TIMEOUT
    while True:
        with ws_connect(f"{chat_server.ws_url}/chat", cookie=cookie) as ws:
            new_cookies = set_cookies(ws)
            name_again = chat_say(ws, "second visit")
        if not new_cookies or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert new_cookies == [], "a known session must not be replaced"
    assert name_again == name


def test_chat_unknown_session_cookie_gets_a_new_session(chat_server: RunningServer) -> None:
    forged = "not-a-session-this-server-issued"
    with ws_connect(f"{chat_server.ws_url}/chat", cookie=f"session_id={forged}") as ws:
        session_id, _ = session_cookie_of(ws)
        chat_say(ws, "hi")
    assert session_id != forged


def test_chat_broadcasts_to_everyone_with_the_sender_name(chat_server: RunningServer) -> None:
    mark = chat_server.mark()
    with (
        ws_connect(f"{chat_server.ws_url}/chat") as alice,
        ws_connect(f"{chat_server.ws_url}/chat") as bob,
    ):
        alice_name = chat_say(alice, "hi, I am alice")
        assert receive(bob) == f"{alice_name}: hi, I am alice"
        bob_name = chat_say(bob, "hello alice")
        assert receive(alice) == f"{bob_name}: hello alice"
        # Each message arrived once: nothing else is waiting.
        for ws in (alice, bob):
            with pytest.raises(TimeoutError):
                receive(ws, timeout=SETTLE)
    assert_no_errors(chat_server, mark)


def test_chat_survives_a_member_that_vanishes(chat_server: RunningServer) -> None:
    mark = chat_server.mark()
    with (
        ws_connect(f"{chat_server.ws_url}/chat") as alice,
        ws_connect(f"{chat_server.ws_url}/chat") as bob,
    ):
        for _ in range(3):
            with raw_websocket(chat_server, "/chat") as (sock, _protocol):
                chat_say(alice, "someone joined")  # reaches the newcomer too
                heard = receive(bob)
                assert isinstance(heard, str)
                assert heard.endswith(": someone joined")
                reset_connection(sock)
            # Straight away, while the server may not have noticed the loss yet.
            name = chat_say(alice, "anyone still here?")
            assert receive(bob) == f"{name}: anyone still here?"
    assert chat_server.process.poll() is None
    assert_no_errors(chat_server, mark)


def test_chat_a_member_that_does_not_read_never_holds_up_the_others(
    chat_server: RunningServer,
) -> None:
    # A member that never reads: once its buffers are full, sending to it waits.
    # Each member has its own queue and relay task (micropie.broadcast), so the
    # others hear every message meanwhile. Dropping the sleeper's TCP connection
    # then makes its relay's pending send fail (ConnectionClosed), quietly.
    mark = chat_server.mark()
    with (
        ws_connect(f"{chat_server.ws_url}/chat") as alice,
        ws_connect(f"{chat_server.ws_url}/chat") as bob,
        raw_websocket(chat_server, "/chat", receive_buffer=4096) as (sleeper, _protocol),
    ):
        name = chat_say(alice, "hello")
        assert receive(bob) == f"{name}: hello"
        for number in range(40):  # 10 MiB: far more than the sleeper's buffers hold
            text = f"{number}:" + base64.b64encode(os.urandom(192 * 1024)).decode()
            alice.send(text)
            for ws in (alice, bob):
                assert receive(ws) == f"{name}: {text}"
        reset_connection(sleeper)
        alice.send("still here")
        for ws in (alice, bob):
            assert receive(ws) == f"{name}: still here"
    assert_no_errors(chat_server, mark)


def test_chat_refuses_binary_messages_with_1003(chat_server: RunningServer) -> None:
    mark = chat_server.mark()
    with (
        ws_connect(f"{chat_server.ws_url}/chat") as alice,
        ws_connect(f"{chat_server.ws_url}/chat") as mallory,
    ):
        mallory.send(b"\x00binary\xff")
        code, reason = close_frame_of(mallory)
        assert code == 1003
        assert "text" in reason
        chat_say(alice, "the room is still open")  # alice was not disturbed
    assert_no_errors(chat_server, mark)


# The server's life cycle, each with a server of its own.


def test_server_shutdown_closes_open_websockets_without_errors() -> None:
    with run_uvicorn("examples.echo.app:app") as server:
        with ws_connect(f"{server.ws_url}/echo") as ws:
            ws.send("before shutdown")
            assert receive(ws) == "before shutdown"
            server.process.send_signal(signal.SIGTERM)
            code, _ = close_frame_of(ws)
        assert code == 1012  # "service restart": uvicorn's word for a shutdown
        server.process.wait(TIMEOUT)
        assert "Application shutdown complete." in server.output
    assert "Traceback" not in server.output
    assert "ERROR" not in server.output


def test_run_uvicorn_reports_a_server_that_cannot_start() -> None:
    started = time.monotonic()
    with pytest.raises(ServerError) as failed, run_uvicorn("examples.no_such_module:app"):
        pytest.fail("the server started")
    assert "exited with code" in str(failed.value)
    assert "examples.no_such_module" in str(failed.value)  # uvicorn's own message is included
    assert time.monotonic() - started < STARTUP_TIMEOUT  # it did not wait for the timeout
