"""End-to-end tests: the example apps served by a real uvicorn, driven by a real client.

Each server starts once per module (see ``tests/helpers/servers.py``) and is
checked, once stopped, for having logged no error. Run only the end-to-end
tests with ``pytest -m e2e`` (or ``pytest tests/e2e``), or leave them out with
``pytest -m "not e2e"``.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosedOK, InvalidStatus

from examples.chat.app import MAX_MESSAGE
from tests.helpers.apps.e2e_apps import CUSTOM_CLOSE_CODE, CUSTOM_CLOSE_REASON, SECRET_ERROR_TEXT
from tests.helpers.clients import (
    TIMEOUT,
    chat_joined,
    chat_receive,
    chat_say,
    close_frame_of,
    converse,
    http_get,
    raw_websocket,
    receive,
    reset_connection,
    session_cookie,
    set_cookies,
    ws_connect,
)
from tests.helpers.logs import assert_no_errors, quiet
from tests.helpers.servers import (
    STARTUP_TIMEOUT,
    RunningServer,
    ServerError,
    run_uvicorn,
)

APPS = "tests.helpers.apps.e2e_apps:app"


# Servers. None of the tests that share one may cause an error: each server
# is stopped at the end of the module, and all it printed is checked then.


@pytest.fixture(scope="module")
def echo_server() -> Iterator[RunningServer]:
    with quiet(run_uvicorn("examples.echo.app:app")) as server:
        yield server


@pytest.fixture(scope="module")
def chat_server() -> Iterator[RunningServer]:
    with quiet(run_uvicorn("examples.chat.app:app")) as server:
        yield server


@pytest.fixture(scope="module")
def apps_server(log_config: Path) -> Iterator[RunningServer]:
    with quiet(run_uvicorn(APPS, "--log-config", str(log_config))) as server:
        yield server


# examples/echo/app.py


@pytest.mark.parametrize(
    "messages",
    [
        ["hello", "", "héllo wörld ✓ 🥧", "x" * 100_000],
        [b"\x00\x01\xfe\xff", b"", os.urandom(64 * 1024)],
    ],
    ids=["text", "binary"],
)
def test_echo_keeps_each_message_and_its_type(
    echo_server: RunningServer, messages: list[str | bytes]
) -> None:
    with ws_connect(f"{echo_server.ws_url}/echo") as ws:
        for message in messages:
            ws.send(message)
            reply = receive(ws)
            assert type(reply) is type(message)
            assert reply == message


def test_echo_keeps_the_type_and_order_of_mixed_messages(echo_server: RunningServer) -> None:
    messages: list[str | bytes] = ["one", b"two", b"", "", "five", b"six"]
    with ws_connect(f"{echo_server.ws_url}/echo") as ws:
        for message in messages:  # all sent before any is read
            ws.send(message)
        replies = [receive(ws) for _ in messages]
    assert [(type(r), r) for r in replies] == [(type(m), m) for m in messages]


def test_echo_client_close_is_a_normal_end(echo_server: RunningServer) -> None:
    with ws_connect(f"{echo_server.ws_url}/echo") as ws:
        ws.send("bye")
        assert receive(ws) == "bye"
        ws.close(1001, "going away")
        assert ws.close_code == 1001  # the server answered the close with the same code


@pytest.mark.parametrize("path", ["/nowhere", "/index", "/_echo", "/ws_echo"])
def test_unknown_websocket_route_is_rejected_with_403(
    echo_server: RunningServer, path: str
) -> None:
    mark = echo_server.mark()
    with pytest.raises(InvalidStatus) as rejected, ws_connect(f"{echo_server.ws_url}{path}"):
        pytest.fail("the handshake was accepted")
    assert rejected.value.response.status_code == 403
    echo_server.wait_for_output(f'"WebSocket {path}" 403', since=mark)


@pytest.mark.parametrize("how", ["reset", "fin"])
def test_abrupt_disconnect_mid_conversation(echo_server: RunningServer, how: str) -> None:
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


# Close codes the client sees (tests/helpers/apps/e2e_apps.py).


def test_handler_that_returns_closes_normally(apps_server: RunningServer) -> None:
    with ws_connect(f"{apps_server.ws_url}/returns") as ws:
        assert receive(ws) == "bye"
        with pytest.raises(ConnectionClosedOK) as closed:
            receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1000


def test_failing_handler_closes_with_1011_and_logs_the_traceback(log_config: Path) -> None:
    # A server of its own: the error it logs is the one this test expects.
    with run_uvicorn(APPS, "--log-config", str(log_config)) as server:
        with ws_connect(f"{server.ws_url}/fail") as ws:
            assert receive(ws) == "about to fail"
            code, reason = close_frame_of(ws)
        output = server.stop()
    assert code == 1011
    assert reason == "Internal server error"
    assert SECRET_ERROR_TEXT not in reason
    assert "hunter2" not in reason
    # The details went to the server's log instead, through the "micropie" logger.
    assert f"RuntimeError: {SECRET_ERROR_TEXT}" in output
    assert "ERROR [micropie] WebSocket handler ws_fail failed\nTraceback" in output
    # ... and only there: uvicorn saw a well-behaved application.
    assert "Exception in ASGI application" not in output


def test_custom_close_code_and_reason_reach_the_client(apps_server: RunningServer) -> None:
    with ws_connect(f"{apps_server.ws_url}/custom_close") as ws:
        code, reason = close_frame_of(ws)
    assert (code, reason) == (CUSTOM_CLOSE_CODE, CUSTOM_CLOSE_REASON)


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
        session_id, attributes = session_cookie(ws)
        chat_say(ws, "hello")
    assert len(session_id) >= 32
    assert attributes == ["Path=/", "HttpOnly", "SameSite=Lax"]  # no Secure over plain ws


def test_chat_returning_visitor_keeps_its_name(chat_server: RunningServer) -> None:
    with ws_connect(f"{chat_server.ws_url}/chat") as ws:
        session_id, _ = session_cookie(ws)
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
        session_id, _ = session_cookie(ws)
        chat_say(ws, "hi")
    assert session_id != forged


def test_chat_broadcasts_to_everyone_with_the_sender_name(chat_server: RunningServer) -> None:
    with (
        ws_connect(f"{chat_server.ws_url}/chat") as alice,
        ws_connect(f"{chat_server.ws_url}/chat") as bob,
    ):
        converse(alice, bob)


def test_chat_survives_a_member_that_vanishes(chat_server: RunningServer) -> None:
    with (
        ws_connect(f"{chat_server.ws_url}/chat") as alice,
        ws_connect(f"{chat_server.ws_url}/chat") as bob,
    ):
        for _ in range(3):
            with raw_websocket(chat_server, "/chat") as (sock, _protocol):
                chat_say(alice, "someone joined")  # reaches the newcomer too
                heard = chat_receive(bob)
                assert isinstance(heard, str)
                assert heard.endswith(": someone joined")
                reset_connection(sock)
            # Straight away, while the server may not have noticed the loss yet.
            name = chat_say(alice, "anyone still here?")
            assert chat_receive(bob) == f"{name}: anyone still here?"
    assert chat_server.process.poll() is None


def test_chat_a_member_that_does_not_read_never_holds_up_the_others(
    chat_server: RunningServer,
) -> None:
    # A member that never reads: once its buffers are full, sending to it waits.
    # Each member has its own queue and relay task (micropie.broadcast), so the
    # others hear every message meanwhile. Dropping the sleeper's TCP connection
    # then makes its relay's pending send fail (ConnectionClosed), quietly.
    with (
        ws_connect(f"{chat_server.ws_url}/chat") as alice,
        ws_connect(f"{chat_server.ws_url}/chat") as bob,
        raw_websocket(chat_server, "/chat", receive_buffer=4096) as (sleeper, _protocol),
    ):
        name = chat_say(alice, "hello")
        assert chat_receive(bob) == f"{name}: hello"
        for number in range(160):  # 10 MiB: far more than the sleeper's buffers hold
            text = f"{number}:" + base64.b64encode(os.urandom(MAX_MESSAGE // 4 * 3 - 3)).decode()
            alice.send(text)
            for ws in (alice, bob):
                assert chat_receive(ws) == f"{name}: {text}"
        reset_connection(sleeper)
        alice.send("still here")
        for ws in (alice, bob):
            assert chat_receive(ws) == f"{name}: still here"


def test_chat_refuses_binary_messages_with_1003(chat_server: RunningServer) -> None:
    with (
        ws_connect(f"{chat_server.ws_url}/chat") as alice,
        ws_connect(f"{chat_server.ws_url}/chat") as mallory,
    ):
        chat_joined(mallory)
        mallory.send(b"\x00binary\xff")
        code, reason = close_frame_of(mallory)
        assert code == 1003
        assert "text" in reason
        chat_say(alice, "the room is still open")  # alice was not disturbed


def test_chat_refuses_a_message_too_long_with_1009(chat_server: RunningServer) -> None:
    # The page's text box takes no more than the room does: only programs meet the 1009.
    assert f'id="text" maxlength="{MAX_MESSAGE}"' in http_get(chat_server, "/")[2]
    with (
        ws_connect(f"{chat_server.ws_url}/chat") as alice,
        ws_connect(f"{chat_server.ws_url}/chat") as mallory,
    ):
        chat_joined(mallory)
        chat_say(mallory, "x" * MAX_MESSAGE)  # the longest is said
        assert chat_receive(alice).endswith(": " + "x" * MAX_MESSAGE)
        mallory.send("x" * (MAX_MESSAGE + 1))
        code, reason = close_frame_of(mallory)
        assert (code, reason) == (1009, f"message too long: at most {MAX_MESSAGE} characters")
        chat_say(alice, "the room is still open")  # alice was not disturbed


# The server's life cycle, each with a server of its own.


def test_server_shutdown_closes_open_websockets_without_errors() -> None:
    with run_uvicorn("examples.echo.app:app") as server:
        with ws_connect(f"{server.ws_url}/echo") as ws:
            ws.send("before shutdown")
            assert receive(ws) == "before shutdown"
            server.process.send_signal(signal.SIGTERM)
            code, _ = close_frame_of(ws)
        assert code == 1012  # "service restart": uvicorn's word for a shutdown
        output = server.stop(TIMEOUT)
    assert "Application shutdown complete." in output
    assert_no_errors(output)


def test_run_uvicorn_reports_a_server_that_cannot_start() -> None:
    started = time.monotonic()
    with pytest.raises(ServerError) as failed, run_uvicorn("examples.no_such_module:app"):
        pytest.fail("the server started")
    assert "exited with code" in str(failed.value)
    assert "examples.no_such_module" in str(failed.value)  # uvicorn's own message is included
    assert time.monotonic() - started < STARTUP_TIMEOUT  # it did not wait for the timeout
