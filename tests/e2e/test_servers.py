"""The server matrix: the examples under uvicorn (three WebSocket implementations),
hypercorn and daphne, each started by the test on 127.0.0.1.

What every server must do alike is asserted for all of them. What differs is
written down in the table on docs/source/howto/servers.rst: these tests read
that table and assert, for each server, what its column says, so that the page
cannot drift from what the servers do.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection

from tests.helpers.apps.deploy_apps import SEND_AFTER_LEAVE_SECONDS, describe_close
from tests.helpers.clients import (
    TIMEOUT,
    chat_joined,
    chat_say,
    converse,
    http_get,
    receive,
    ws_connect,
)
from tests.helpers.logs import quiet
from tests.helpers.servers import REPO_ROOT, RunningServer, run_server
from tests.helpers.support import captions_of_file

# How long to wait for a close frame before concluding that none is coming;
# where one comes, it comes within milliseconds.
NO_CLOSE_WAIT = 1.5
PAGE = REPO_ROOT / "docs" / "source" / "howto" / "servers.rst"
TABLE_TITLE = ".. list-table:: What differs between the servers"
NO_CLOSE_FRAME = "no close frame"
REFUSED = "refused; MicroPie sends 1000, no reason"


@dataclass(frozen=True)
class Setup:
    """One way of serving an app, and the column of the page's table that describes it."""

    title: str
    program: str
    args: tuple[str, ...] = ()
    column: str = ""

    def __str__(self) -> str:
        return self.title

    def command(self, app_path: str) -> str:
        """The command line a reader types (the tests add the listening socket)."""
        return " ".join([self.program, app_path, *self.args])


UVICORN_COLUMN = "uvicorn (all three)"
SETUPS = [
    Setup("uvicorn", "uvicorn", (), UVICORN_COLUMN),
    Setup("uvicorn --ws websockets", "uvicorn", ("--ws", "websockets"), UVICORN_COLUMN),
    Setup("uvicorn --ws wsproto", "uvicorn", ("--ws", "wsproto"), UVICORN_COLUMN),
    Setup("hypercorn", "hypercorn", (), "hypercorn"),
    Setup("granian", "granian", ("--interface", "asgi"), "granian"),
    Setup("daphne", "daphne", (), "daphne"),
]
COLUMNS = [UVICORN_COLUMN, "hypercorn", "granian", "daphne"]
EXAMPLES = ["examples.echo.app:app", "examples.chat.app:app"]

# The table's rows, by the text of their first cell.
ROW_SPEC_VERSION = "ASGI spec version in the WebSocket scope"
ROW_REJECTED = "Handshake for a path with no handler"
ROW_RETURNS = "Close frame after the handler returns"
ROW_EMPTY = "Empty text and binary messages"
ROW_COOKIE = "``Set-Cookie`` of ``accept(session_id=...)``"
ROW_REASON = "``close(4000, reason)``: close frame"
ROW_CODES = "``close(code)``, code 1001 to 1003 or 1007 to 1014"
ROW_APP_CODES = "``close(code)``, code 3000 to 4999"
ROW_FAILS = "Close frame after the handler raises"
ROW_SEND_AFTER = "``send_text()``, ``send_bytes()`` after the client closed"
ROW_CLIENT_CLOSE = "Client closes with 4001: the handler's ``ConnectionClosed``"
ROWS = [
    ROW_SPEC_VERSION,
    ROW_REJECTED,
    ROW_RETURNS,
    ROW_EMPTY,
    ROW_COOKIE,
    ROW_REASON,
    ROW_CODES,
    ROW_APP_CODES,
    ROW_FAILS,
    ROW_SEND_AFTER,
    ROW_CLIENT_CLOSE,
]


def read_table() -> dict[str, dict[str, str]]:
    """The page's table: for each row's first cell, the other cells by column title."""
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    start = lines.index(TABLE_TITLE)
    rows: list[list[str]] = []
    for line in itertools.takewhile(
        lambda line: not line or line.startswith(" "), lines[start + 1 :]
    ):
        if line.startswith("   * - "):
            rows.append([line.removeprefix("   * - ")])
        elif line.startswith("     - "):
            rows[-1].append(line.removeprefix("     - "))
        elif line.strip() and not line.strip().startswith(":"):
            raise AssertionError(f"a table cell must fit on one line: {line!r}")
    header, *body = rows
    return {row[0]: dict(zip(header[1:], row[1:], strict=True)) for row in body}


TABLE = read_table()


def expected(row: str, setup: Setup) -> str:
    return TABLE[row][setup.column]


def test_the_page_shows_the_commands_the_tests_run() -> None:
    page = PAGE.read_text(encoding="utf-8")
    for setup in SETUPS:
        assert f"\n   {setup.command('app:app')}\n" in page, setup
    # app:app is the echo example (which the tests serve), shown whole as app.py.
    assert captions_of_file(PAGE, "examples/echo/app.py") == ["app.py"]


def test_the_table_has_a_column_per_setup_and_a_test_per_row() -> None:
    assert list(TABLE) == ROWS
    for row in ROWS:
        assert list(TABLE[row]) == COLUMNS, row


# Servers, started once per setup: pytest groups the tests by setup.


@pytest.fixture(scope="module", params=SETUPS, ids=str)
def setup(request: pytest.FixtureRequest) -> Setup:
    return request.param  # type: ignore[no-any-return]


@contextlib.contextmanager
def started_together(
    *managers: contextlib.AbstractContextManager[RunningServer],
) -> Iterator[list[RunningServer]]:
    """Enter the server context managers at the same time; leave them all at the end.

    The servers start in parallel, which saves most of the start-up time; any
    that started is stopped, whatever happens.
    """
    with ThreadPoolExecutor(len(managers)) as pool, contextlib.ExitStack() as stack:
        futures = [pool.submit(manager.__enter__) for manager in managers]
        for manager, future in zip(managers, futures, strict=True):
            stack.callback(_leave_if_entered, manager, future)
        yield [future.result() for future in futures]  # raises the first failure


def _leave_if_entered(
    manager: contextlib.AbstractContextManager[RunningServer], entered: Future[RunningServer]
) -> None:
    if entered.exception() is None:  # waits for the start to finish
        manager.__exit__(None, None, None)


@pytest.fixture(scope="module")
def servers(setup: Setup) -> Iterator[list[RunningServer]]:
    """The echo example, the chat example and the probes, served as *setup* says.

    Neither example may log an error in any test: both are stopped once the
    setup's tests are done, and all they printed is checked then. The probes
    fail on purpose.
    """
    echo, chat = (run_server(setup.program, app, *setup.args) for app in EXAMPLES)
    probes = run_server(setup.program, "tests.helpers.apps.deploy_apps:app", *setup.args)
    with started_together(quiet(echo), quiet(chat), probes) as running:
        yield running


@pytest.fixture
def echo_server(servers: list[RunningServer]) -> RunningServer:
    return servers[0]


@pytest.fixture
def chat_server(servers: list[RunningServer]) -> RunningServer:
    return servers[1]


@pytest.fixture
def probe_server(servers: list[RunningServer]) -> RunningServer:
    return servers[2]


_probe_names = itertools.count()


def probe_name() -> str:
    return f"probe{next(_probe_names)}"


def close_seen_by_client(ws: ClientConnection, timeout: float = NO_CLOSE_WAIT) -> str:
    """Wait for the server's close frame; describe it as the table does."""
    try:
        message = receive(ws, timeout=timeout)
    except TimeoutError:
        return NO_CLOSE_FRAME
    except ConnectionClosed as closed:
        frame = closed.rcvd
        assert frame is not None, "the server dropped the TCP connection without a close frame"
        return describe_close(frame.code, frame.reason)
    pytest.fail(f"expected the server to close, but it sent {message!r}")


def wait_for_outcome(server: RunningServer, probe: str, timeout: float) -> str:
    """What the probe handler recorded, once it has finished."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, outcome = http_get(server, f"/outcome/{probe}")
        assert status == 200
        if outcome not in ("open", "unknown") or time.monotonic() > deadline:
            return outcome
        time.sleep(0.05)


# What every server does alike.


def test_echo_text_and_binary(setup: Setup, echo_server: RunningServer) -> None:
    messages: list[str | bytes] = ["hello", "héllo wörld ✓ 🥧", b"\x00\x01\xfe\xff", "x" * 65_536]
    with ws_connect(f"{echo_server.ws_url}/echo") as ws:
        for message in messages:
            ws.send(message)
            reply = receive(ws)
            assert (type(reply), reply) == (type(message), message)


def test_chat_page_over_http(setup: Setup, chat_server: RunningServer) -> None:
    status, headers, body = http_get(chat_server, "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert "new WebSocket(" in body
    status, _, _ = http_get(chat_server, "/no-such-page")
    assert status == 404


def test_chat_broadcast_between_two_clients(setup: Setup, chat_server: RunningServer) -> None:
    with (
        ws_connect(f"{chat_server.ws_url}/chat") as alice,
        ws_connect(f"{chat_server.ws_url}/chat") as bob,
    ):
        converse(alice, bob)


def test_session_started_over_http_reaches_the_handshake(
    setup: Setup, probe_server: RunningServer
) -> None:
    status, headers, _ = http_get(probe_server, "/start_session")
    assert status == 200
    cookie = headers["set-cookie"].split(";")[0]
    assert cookie.startswith("session_id=")
    with ws_connect(f"{probe_server.ws_url}/session", cookie=cookie) as ws:
        assert receive(ws) == "{'started_over': 'http'}"


def smuggling_pad() -> str:
    """A query value that would make a length in characters end in a second response.

    "€" is one character and three bytes: with N of them, and the "é" of
    "héllo", the body has 2N + 1 more bytes than characters. A client that
    reads as many bytes as there are characters leaves that many unread, so
    the pad ends with a whole response of exactly that size.
    """
    body = "injected"
    while True:
        injected = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        if len(injected) % 2:
            return "€" * (len(injected) // 2) + injected
        body += "!"


def read_answer(sock: socket.socket, buffer: bytearray) -> tuple[int, list[str], bytes] | str:
    """The next response on a keep-alive connection: status, Content-Length values, body.

    The body is read by the first Content-Length, as a lenient client would;
    what follows stays in *buffer* for the next answer.
    """
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            return f"the connection closed after {bytes(buffer)!r}"
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    lengths = [
        value.strip()
        for name, _, value in (line.partition(":") for line in lines)
        if name.lower() == "content-length"
    ]
    size = int(lengths[0]) if lengths else 0
    while len(rest) < size:
        data = sock.recv(65536)
        if not data:
            return f"the connection closed in a body: {rest!r}"
        rest += data
    buffer[:] = rest[size:]
    return int(status_line.split()[1]), lengths, rest[:size]


def test_a_handler_s_content_length_cannot_smuggle_a_second_response(
    setup: Setup, probe_server: RunningServer
) -> None:
    """The handler declares its text's length in characters, and the attacker's
    query pads the text so that the bytes past that length read as a response
    of theirs: the framework's length is the only one sent, and the next
    answer on the connection is the server's own."""
    pad = smuggling_pad()
    text, again = ("héllo " + pad).encode(), "héllo again".encode()
    buffer = bytearray()
    with socket.create_connection(("127.0.0.1", probe_server.port), timeout=TIMEOUT) as sock:
        answers = []
        for query in (quote(pad, safe=""), "again"):  # the second once the first is read
            request = f"GET /declared_length?pad={query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            sock.sendall(request.encode("ascii"))
            answers.append(read_answer(sock, buffer))
    first, second = answers
    assert (first, second) == (
        (200, [str(len(text))], text),
        (200, [str(len(again))], again),
    )
    assert not buffer


# What the table on the page says, server by server.


def test_spec_version(setup: Setup, probe_server: RunningServer) -> None:
    with ws_connect(f"{probe_server.ws_url}/spec_version") as ws:
        announced = receive(ws)
    assert announced == expected(ROW_SPEC_VERSION, setup)


@pytest.mark.parametrize("path", ["/nowhere", "/_echo", "/index"])
def test_unknown_path_is_rejected(setup: Setup, echo_server: RunningServer, path: str) -> None:
    with pytest.raises(InvalidStatus) as rejected, ws_connect(f"{echo_server.ws_url}{path}"):
        pytest.fail("the handshake was accepted")
    assert f"HTTP {rejected.value.response.status_code}" == expected(ROW_REJECTED, setup)


def test_handler_returns(setup: Setup, probe_server: RunningServer) -> None:
    with ws_connect(f"{probe_server.ws_url}/returns") as ws:
        assert receive(ws) == "bye"
        assert close_seen_by_client(ws) == expected(ROW_RETURNS, setup)


def test_empty_messages(setup: Setup, echo_server: RunningServer) -> None:
    # Each empty message is followed by a marker: if the empty one is dropped,
    # the marker comes first.
    replies = []
    with ws_connect(f"{echo_server.ws_url}/echo") as ws:
        for empty, marker in (("", "after text"), (b"", b"after bytes")):
            ws.send(empty)
            ws.send(marker)
            first = receive(ws)
            replies.append("delivered" if first == empty else "dropped")
            if first == empty:
                assert receive(ws) == marker
            else:
                assert first == marker
    assert replies[0] == replies[1] == expected(ROW_EMPTY, setup)


def test_session_cookie_in_the_handshake(setup: Setup, chat_server: RunningServer) -> None:
    with ws_connect(f"{chat_server.ws_url}/chat") as ws:
        assert ws.response is not None
        cookies = ws.response.headers.get_all("Set-Cookie")
        chat_say(ws, "hello")  # the handler ran, and accepted with a new session ID
    if expected(ROW_COOKIE, setup) == "reaches the client":
        assert len(cookies) == 1, cookies
        pair, *attributes = cookies[0].split("; ")
        assert re.fullmatch(r"session_id=[\w-]{43}", pair)
        assert attributes == ["Path=/", "HttpOnly", "SameSite=Lax"]  # no Secure over ws://
    elif expected(ROW_COOKIE, setup) == "not sent; MicroPie logs a warning":
        assert cookies == []
        chat_server.wait_for_output("cannot set a cookie on a WebSocket handshake")
    else:
        # granian announces ASGI 2.3, which has headers in websocket.accept,
        # and drops them: MicroPie cannot tell.
        assert expected(ROW_COOKIE, setup) == "dropped by granian, unseen"
        assert cookies == []
        assert "cannot set a cookie" not in chat_server.output


def test_close_reason(setup: Setup, probe_server: RunningServer) -> None:
    with ws_connect(f"{probe_server.ws_url}/close_with?code=4000&reason=room+closed") as ws:
        assert close_seen_by_client(ws) == expected(ROW_REASON, setup)


def codes_sent(server: RunningServer, codes: list[int]) -> str:
    """Whether the handler's ``close(code)`` reaches the client, for every code in *codes*."""
    outcomes: dict[int, str] = {}
    with contextlib.ExitStack() as stack:
        sockets = {
            code: stack.enter_context(ws_connect(f"{server.ws_url}/close_with?code={code}"))
            for code in codes
        }
        # One wait for all of them: a close frame that comes, comes at once.
        deadline = time.monotonic() + NO_CLOSE_WAIT
        for code, ws in sockets.items():
            seen = close_seen_by_client(ws, timeout=max(0.0, deadline - time.monotonic()))
            outcomes[code] = "sent" if seen == describe_close(code, "") else seen
    results = set(outcomes.values())
    assert len(results) == 1, outcomes
    result = results.pop()
    return REFUSED if result == describe_close(1000, "") else result


def test_close_codes_of_the_protocol(setup: Setup, probe_server: RunningServer) -> None:
    codes = [1001, 1002, 1003, *range(1007, 1015)]
    assert codes_sent(probe_server, codes) == expected(ROW_CODES, setup)


def test_close_codes_of_applications(setup: Setup, probe_server: RunningServer) -> None:
    codes = [3000, 3999, 4000, 4999]
    assert codes_sent(probe_server, codes) == expected(ROW_APP_CODES, setup)


def test_chat_refuses_binary_messages_with_1003(setup: Setup, chat_server: RunningServer) -> None:
    mark = chat_server.mark()
    with ws_connect(f"{chat_server.ws_url}/chat") as ws:
        chat_joined(ws)
        ws.send(b"\x00binary")
        seen = close_seen_by_client(ws)
    if expected(ROW_CODES, setup) == "sent":
        assert seen == describe_close(1003, "this room takes text messages only")
    else:
        # The server refused the close code: MicroPie closed with 1000 and said why.
        assert seen == describe_close(1000, "")
        chat_server.wait_for_output("refused close code 1003", since=mark)


def test_handler_raises(setup: Setup, probe_server: RunningServer) -> None:
    mark = probe_server.mark()
    with ws_connect(f"{probe_server.ws_url}/fail") as ws:
        assert receive(ws) == "about to fail"
        seen = close_seen_by_client(ws)
    assert seen == expected(ROW_FAILS, setup)
    probe_server.wait_for_output("RuntimeError: a bug in the handler", since=mark)
    if seen == describe_close(1000, ""):  # the server refused MicroPie's 1011
        probe_server.wait_for_output("refused close code 1011", since=mark)


def test_send_after_the_client_closed(setup: Setup, probe_server: RunningServer) -> None:
    probe = probe_name()
    with ws_connect(f"{probe_server.ws_url}/send_after_leave?probe={probe}") as ws:
        assert receive(ws) == "ready"
    outcome = wait_for_outcome(probe_server, probe, SEND_AFTER_LEAVE_SECONDS + TIMEOUT)
    assert outcome in outcomes(expected(ROW_SEND_AFTER, setup))


def outcomes(cell: str) -> set[str]:
    """The outcomes a cell allows: "code 1000 or 1006" is either."""
    start, _, codes = cell.rpartition("code ")
    return {f"{start}code {code}" for code in codes.split(" or ")} if start else {cell}


def test_send_after_the_client_spoke_and_closed(setup: Setup, probe_server: RunningServer) -> None:
    """The handler only sends; its client says something it never reads, then
    leaves. Under servers older than ASGI 2.4 the message is parked, and the
    watch for the departure goes on after it."""
    probe = probe_name()
    with ws_connect(f"{probe_server.ws_url}/send_after_leave?probe={probe}") as ws:
        assert receive(ws) == "ready"
        ws.send("a message the handler never reads")
        time.sleep(0.1)  # past the handler's next sends: the message is parked
    outcome = wait_for_outcome(probe_server, probe, SEND_AFTER_LEAVE_SECONDS + TIMEOUT)
    assert outcome in outcomes(expected(ROW_SEND_AFTER, setup))


def test_what_the_handler_sees_when_the_client_closes(
    setup: Setup, probe_server: RunningServer
) -> None:
    probe = probe_name()
    with ws_connect(f"{probe_server.ws_url}/listen?probe={probe}") as ws:
        assert receive(ws) == "ready"
        ws.close(4001, "see you")
    assert wait_for_outcome(probe_server, probe, TIMEOUT) == expected(ROW_CLIENT_CLOSE, setup)


def test_uvicorn_ws_websockets_prints_a_deprecation_warning(
    setup: Setup, echo_server: RunningServer
) -> None:
    deprecated = "UvicornDeprecationWarning" in echo_server.output
    assert deprecated == (setup.args == ("--ws", "websockets"))


def test_uvicorn_default_is_websockets_sansio() -> None:
    # With websockets installed, uvicorn's --ws auto (the default) picks websockets-sansio.
    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    assert AutoWebSocketsProtocol is WebSocketsSansIOProtocol
