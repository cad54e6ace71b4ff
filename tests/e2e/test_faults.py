"""Faults: clients that vanish or stop reading, handlers that fail, a server that stops.

The server is ``tests/helpers/apps/load_app.py`` under a real uvicorn. Each fault is
injected while a set of bystander connections keeps echoing; each test checks
that the affected handler ended with ``ConnectionClosed`` or the documented
close code (the app records how every handler ended and reports it at
``/stats``), that every bystander went on echoing correctly before, during
and after the fault, that nothing was logged but what the fault explains, and
that the session data saved before the fault is still there.

Each test prints a line of figures: run with ``-s`` (or ``-rP``) to see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from tests.helpers.apps.load_app import (
    BOOM,
    BOOM_ERROR,
    FLOOD_CHUNK,
    FLOOD_MAX_MESSAGES,
    SHUTDOWN_LINE,
)
from tests.helpers.load import settled, stats
from tests.helpers.logs import assert_no_errors, problem_lines
from tests.helpers.servers import RunningServer, run_uvicorn

TIMEOUT = 10.0  # for any one reply, handshake or close
#: How long a handler may take to notice that its client has gone, once the
#: client's socket is closed. Far above the milliseconds it takes.
END_TIMEOUT = 10.0
GRACEFUL_SHUTDOWN = 5  # seconds: uvicorn's --timeout-graceful-shutdown
BYSTANDERS = 20
MAX_BYSTANDER_MESSAGES = 100_000  # each bystander's loop is bounded all the same
#: What only something that went wrong puts in the server's output.
FAULT_WORDS = ("Traceback", "ERROR", "WARNING", "Exception")


def serve(
    log_config: Path, graceful_shutdown: int = GRACEFUL_SHUTDOWN
) -> contextlib.AbstractContextManager[RunningServer]:
    """``run_uvicorn`` on the load app, logging MicroPie's errors with their level."""
    return run_uvicorn(
        "tests.helpers.apps.load_app:app",
        # No keepalive pings: a fault must not be mistaken for a ping timeout,
        # nor hidden by one. (An hour, not 0: 0 does not disable them everywhere.)
        "--ws-ping-interval",
        "3600",
        "--ws-ping-timeout",
        "3600",
        "--timeout-graceful-shutdown",
        str(graceful_shutdown),
        "--log-config",
        str(log_config),
    )


@pytest.fixture(scope="module")
def server(log_config: Path) -> Iterator[RunningServer]:
    with serve(log_config) as server:
        yield server


@pytest.fixture(scope="module")
def idle_tasks(server: RunningServer) -> int:
    """How many asyncio tasks the server runs with no connection open (its own
    tasks, and the one answering ``/stats``)."""
    response = httpx.get(f"{server.http_url}/stats", trust_env=False, timeout=TIMEOUT)
    tasks: int = response.json()["tasks"]
    return tasks


# Talking to the app.


async def left_nothing_behind(http: httpx.AsyncClient, idle_tasks: int) -> dict[str, Any]:
    """Once every connection has closed: no handler, task or WebSocket is left.

    Every handler's task has ended, so all that they logged is in the output.
    """
    figures = await settled(http, idle_tasks, END_TIMEOUT)
    assert figures["active_total"] == 0, figures["active"]
    assert figures["tasks"] == idle_tasks, figures["tasks"]
    objects = figures["objects"]["after_gc"]
    assert objects["WebSocket"] == objects["WebSocketRequest"] == 0, objects
    return figures


async def saved_session(http: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    """The session saved under *session_id*, read back over HTTP."""
    response = await http.get("/whoami", headers={"Cookie": f"session_id={session_id}"})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def ending_of(http: httpx.AsyncClient, tag: str, timeout: float = END_TIMEOUT) -> str:
    """Wait for the handler tagged *tag* to end; return how it ended."""
    deadline = time.monotonic() + timeout
    while True:
        figures = await stats(http)
        if tag in figures["tagged"]:
            ending: str = figures["tagged"][tag]
            return ending
        if time.monotonic() > deadline:
            pytest.fail(f"the handler {tag!r} had not ended {timeout} s after its client left")
        await asyncio.sleep(0.05)


async def open_websocket(server: RunningServer, path: str) -> ClientConnection:
    """A ``websockets`` asyncio client connection, with short timeouts and no pings."""
    return await connect(
        f"{server.ws_url}{path}",
        proxy=None,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        ping_interval=None,
    )


def session_id_of(headers: Any) -> str:
    """The session ID in a handshake response's ``Set-Cookie`` headers."""
    cookies = [c for c in headers.get_all("Set-Cookie") if c.startswith("session_id=")]
    assert len(cookies) == 1, cookies
    return str(cookies[0].split(";")[0].removeprefix("session_id="))


def afterwards(figures: dict[str, Any]) -> str:
    """The server's figures after a test, for its summary line."""
    return (
        f"afterwards the server had {figures['active_total']} active handlers, "
        f"{figures['tasks']} tasks (as idle), {figures['websockets_alive']} WebSocket objects, "
        f"RSS {figures['rss_bytes_after_gc'] / 2**20:.1f} MiB"
    )


def assert_quiet_since(server: RunningServer, since: int) -> None:
    """Nothing went wrong after *since*; for a test that saw :func:`left_nothing_behind`
    return, after which every handler has logged all it would log."""
    assert_no_errors(server.output_since(since), FAULT_WORDS)
    assert server.process.poll() is None


# Clients.


class Bystanders:
    """Connections that keep echoing while a fault happens elsewhere.

    Each sends a numbered message, checks that the reply is that message,
    and starts over, until told to stop. :meth:`checkpoint` waits until
    every one of them has completed two more round trips.
    """

    def __init__(self, server: RunningServer, name: str, count: int, pace: float) -> None:
        self.server = server
        self.name = name
        self.count = count
        self.pace = pace  # seconds between a reply and the next message
        self.sockets: list[ClientConnection] = []
        self.echoed = [0] * count
        self.tasks: list[asyncio.Task[None]] = []
        self.stop = asyncio.Event()

    def tag(self, number: int) -> str:
        return f"{self.name}-{number}"

    async def __aenter__(self) -> Bystanders:
        try:
            for number in range(self.count):
                ws = await open_websocket(self.server, f"/echo?tag={self.tag(number)}")
                self.sockets.append(ws)
            for number, ws in enumerate(self.sockets):
                self.tasks.append(asyncio.create_task(self._echo(number, ws)))
            await self.checkpoint("started")
        except BaseException:
            await self._abort()
            raise
        return self

    async def _echo(self, number: int, ws: ClientConnection) -> None:
        for count in range(MAX_BYSTANDER_MESSAGES):
            if self.stop.is_set():
                return
            text = f"{self.tag(number)}:{count}"
            await ws.send(text)
            async with asyncio.timeout(TIMEOUT):
                reply = await ws.recv()
            assert reply == text, f"bystander {number} sent {text!r}, got {reply!r}"
            self.echoed[number] = count + 1
            await asyncio.sleep(self.pace)

    def _check_tasks(self) -> None:
        for number, task in enumerate(self.tasks):
            if task.done() and not self.stop.is_set():
                error = task.exception()
                raise AssertionError(f"bystander {number} stopped: {error!r}") from error

    async def checkpoint(self, label: str) -> None:
        """Wait until every bystander has echoed twice more (and correctly)."""
        start = list(self.echoed)
        deadline = time.monotonic() + TIMEOUT
        while any(now < then + 2 for now, then in zip(self.echoed, start, strict=True)):
            self._check_tasks()
            if time.monotonic() > deadline:
                late = [
                    n for n, (a, b) in enumerate(zip(self.echoed, start, strict=True)) if a < b + 2
                ]
                pytest.fail(f"at {label!r}, bystanders {late} stopped echoing")
            await asyncio.sleep(0.02)
        self._check_tasks()

    async def finish(self, http: httpx.AsyncClient) -> None:
        """Stop echoing, close normally, and check each handler ended normally."""
        self.stop.set()
        async with asyncio.timeout(TIMEOUT):
            await asyncio.gather(*self.tasks)  # re-raises a bystander's failure
            await asyncio.gather(*(ws.close() for ws in self.sockets))
        for number, ws in enumerate(self.sockets):
            assert ws.close_code == 1000, f"bystander {number} closed with {ws.close_code}"
        for number in range(self.count):
            assert await ending_of(http, self.tag(number)) == "ConnectionClosed 1000"

    async def _abort(self) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for ws in self.sockets:
            ws.transport.abort()

    async def __aexit__(self, *exc_info: object) -> None:
        await self._abort()  # after finish(), only closes what is already closed


class RawClient:
    """A WebSocket on a plain socket that the test drives by hand.

    websockets' sans-I/O client does the framing; nothing reads in the
    background, so the client stops reading whenever the test stops calling
    :meth:`receive`, and drops the TCP connection however the test likes.
    """

    def __init__(self, sock: socket.socket, protocol: ClientProtocol, response: Response) -> None:
        self.sock = sock
        self.protocol = protocol
        self.response = response
        self.pending: list[Frame] = []
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def open(
        cls, server: RunningServer, path: str, *, receive_buffer: int | None = None
    ) -> RawClient:
        loop = asyncio.get_running_loop()
        protocol = ClientProtocol(parse_uri(f"{server.ws_url}{path}"))
        protocol.send_request(protocol.connect())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if receive_buffer is not None:  # before connecting: it sets the TCP window
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            async with asyncio.timeout(TIMEOUT):
                await loop.sock_connect(sock, ("127.0.0.1", server.port))
                await loop.sock_sendall(sock, b"".join(protocol.data_to_send()))
                while protocol.state is State.CONNECTING:
                    data = await loop.sock_recv(sock, 65536)
                    assert data, "the server closed the connection during the handshake"
                    protocol.receive_data(data)
            assert protocol.handshake_exc is None, protocol.handshake_exc
            events = protocol.events_received()
            assert isinstance(events[0], Response)
            client = cls(sock, protocol, events[0])
            client.pending = [e for e in events[1:] if isinstance(e, Frame)]
            return client
        except BaseException:
            sock.close()
            raise

    async def send_text(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        await self.flush()

    async def flush(self) -> None:
        async with asyncio.timeout(TIMEOUT):
            await self.loop.sock_sendall(self.sock, b"".join(self.protocol.data_to_send()))

    async def receive(self) -> Frame:
        """The next data or close frame from the server."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                while self.pending:
                    frame = self.pending.pop(0)
                    if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CLOSE):
                        return frame
                data = await self.loop.sock_recv(self.sock, 65536)
                assert data, "the server closed the connection"
                self.protocol.receive_data(data)
                self.pending.extend(
                    e for e in self.protocol.events_received() if isinstance(e, Frame)
                )

    async def receive_text(self) -> str:
        frame = await self.receive()
        assert frame.opcode is Opcode.TEXT, frame
        return bytes(frame.data).decode()

    def reset(self) -> None:
        """Drop the TCP connection with a RST: no close frame, no FIN."""
        if self.sock.fileno() == -1:
            return  # gone already
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close_socket(self) -> None:
        """Close the socket as a crashing client would: no close frame.

        With unread data still in the receive buffer, the kernel answers
        that with a RST too; with none, with a FIN.
        """
        self.sock.close()


# A client that resets its TCP connection mid-stream.

RESETS_PER_CASE = 3


@pytest.mark.parametrize("moment", ["idle", "partial_frame", "replies_in_flight"])
def test_client_reset_mid_stream(server: RunningServer, idle_tasks: int, moment: str) -> None:
    """The handler ends with ConnectionClosed; its session keeps what it counted."""
    figures: dict[str, Any] = {}

    async def scenario() -> None:
        async with (
            httpx.AsyncClient(base_url=server.http_url, trust_env=False, timeout=TIMEOUT) as http,
            Bystanders(server, f"reset-{moment}-bystander", BYSTANDERS, pace=0.02) as bystanders,
        ):
            endings = []
            for attempt in range(RESETS_PER_CASE):
                tag = f"reset-{moment}-{attempt}"
                client = await RawClient.open(server, f"/echo?tag={tag}&session={tag}")
                try:
                    session_id = session_id_of(client.response.headers)
                    echoed = 10
                    for number in range(echoed):
                        await client.send_text(f"{tag}:{number}")
                        assert await client.receive_text() == f"{tag}:{number}"
                    assert await saved_session(http, session_id) == {"conn": tag, "received": 0}
                    sent = echoed
                    if moment == "partial_frame":
                        # Half of a 64 KiB frame: the handler is reading a message that never ends.
                        client.protocol.send_text(b"y" * 65536)
                        data = b"".join(client.protocol.data_to_send())
                        await client.loop.sock_sendall(client.sock, data[: len(data) // 2])
                    elif moment == "replies_in_flight":
                        # Large messages whose echoes are on their way back, unread.
                        for number in range(5):
                            client.protocol.send_text(f"{tag}:{number}:".encode() + b"z" * 262144)
                        await client.flush()
                        sent += 5
                    await bystanders.checkpoint(f"{tag} before the reset")
                finally:
                    client.reset()
                ending = await ending_of(http, tag)
                endings.append(ending)
                assert ending in ("ConnectionClosed 1005", "ConnectionClosed 1006"), ending
                # Saved when the handler ended: every message it received, none made up.
                saved = await saved_session(http, session_id)
                assert saved["conn"] == tag
                assert echoed <= saved["received"] <= sent, saved
                await bystanders.checkpoint(f"{tag} after the reset")
            await bystanders.finish(http)
            after = await left_nothing_behind(http, idle_tasks)
            figures.update(endings=endings, echoed=sum(bystanders.echoed), after=after)

    mark = server.mark()
    asyncio.run(scenario())
    assert_quiet_since(server, mark)
    print(
        f"faults: {RESETS_PER_CASE} TCP resets ({moment}): handlers ended with "
        f"{figures['endings']}; {BYSTANDERS} bystanders echoed {figures['echoed']} messages "
        f"meanwhile; {afterwards(figures['after'])}"
    )


# A client that stops reading while the handler keeps sending.


@pytest.mark.parametrize("route", ["flood", "flood_bytes"])
@pytest.mark.parametrize("leave", ["close", "reset"])
def test_client_that_stops_reading(
    server: RunningServer, idle_tasks: int, route: str, leave: str
) -> None:
    """Backpressure stops the sender; the client's leaving ends it, with ConnectionClosed."""
    figures: dict[str, Any] = {}

    async def scenario() -> None:
        tag = f"slow-{route}-{leave}"
        async with (
            httpx.AsyncClient(base_url=server.http_url, trust_env=False, timeout=TIMEOUT) as http,
            Bystanders(server, f"{tag}-bystander", BYSTANDERS, pace=0.02) as bystanders,
        ):
            # A small receive buffer, so that the server's writes back up sooner.
            client = await RawClient.open(
                server, f"/{route}?tag={tag}&session={tag}", receive_buffer=4096
            )
            try:
                session_id = session_id_of(client.response.headers)
                assert await client.receive_text() == "ready"
                # From here on the client reads nothing. The handler must come
                # to a stop: the server's buffers are full and its send waits.
                stalled_at = await wait_until_stalled(http, tag)
                assert stalled_at < FLOOD_MAX_MESSAGES, (
                    "the handler sent everything: no backpressure"
                )
                figures["stalled_at"] = stalled_at
                figures["stalled_stats"] = await stats(http)
                assert tag not in figures["stalled_stats"]["tagged"], "the handler ended by itself"
                await bystanders.checkpoint("while the handler is stalled")
                left = time.monotonic()
                if leave == "reset":
                    client.reset()
                else:
                    client.close_socket()
            finally:
                client.reset()  # if it is still open: the test failed before it left
            ending = await ending_of(http, tag)
            figures["ended_after"] = time.monotonic() - left
            figures["ending"] = ending
            # Stopped in send(): the server reports the dead socket, WebSocket says 1006.
            assert ending == "ConnectionClosed 1006", ending
            await bystanders.checkpoint("after the handler ended")
            # The session saved at accept() is intact (this handler never receives).
            assert await saved_session(http, session_id) == {"conn": tag, "received": 0}
            await bystanders.finish(http)
            figures["echoed"] = sum(bystanders.echoed)
            figures["after"] = await left_nothing_behind(http, idle_tasks)

    mark = server.mark()
    asyncio.run(scenario())
    assert_quiet_since(server, mark)
    stalled = figures["stalled_stats"]
    print(
        f"faults: client stopped reading ({route}, then {leave}): the handler stalled after "
        f"{figures['stalled_at']} messages ({figures['stalled_at'] * FLOOD_CHUNK / 2**20:.1f} MiB; "
        f"server RSS {stalled['rss_bytes'] / 2**20:.1f} MiB), ended with {figures['ending']} "
        f"{figures['ended_after']:.2f} s after the client left; {BYSTANDERS} bystanders echoed "
        f"{figures['echoed']} messages meanwhile; {afterwards(figures['after'])}"
    )


async def wait_until_stalled(http: httpx.AsyncClient, tag: str) -> int:
    """Wait until the flood handler *tag* has sent nothing for a second; return its count."""
    deadline = time.monotonic() + 3 * TIMEOUT
    last, unchanged_since = -1, time.monotonic()
    while True:
        sent = (await stats(http))["flood_sent"].get(tag, 0)
        now = time.monotonic()
        if sent != last:
            last, unchanged_since = sent, now
        elif now - unchanged_since >= 1.0:
            return int(sent)
        if now > deadline or sent >= FLOOD_MAX_MESSAGES:
            return int(sent)
        await asyncio.sleep(0.1)


# A handler that raises while 100 others are active.

ACTIVE_OTHERS = 100
BOOMS = 3


def test_handler_that_raises_while_100_others_are_active(
    server: RunningServer, idle_tasks: int
) -> None:
    """Its client gets 1011; the 100 others keep echoing; the error is logged once."""
    figures: dict[str, Any] = {"closes": []}

    async def scenario() -> None:
        async with (
            httpx.AsyncClient(base_url=server.http_url, trust_env=False, timeout=TIMEOUT) as http,
            Bystanders(server, "boom-bystander", ACTIVE_OTHERS, pace=0.05) as bystanders,
        ):
            for attempt in range(BOOMS):
                tag = f"boom-{attempt}"
                assert (await stats(http))["active"].get("echo") == ACTIVE_OTHERS
                async with await open_websocket(server, f"/boom?tag={tag}&session={tag}") as ws:
                    assert ws.response is not None
                    session_id = session_id_of(ws.response.headers)
                    for number in range(5):
                        await ws.send(f"{tag}:{number}")
                        assert await ws.recv() == f"{tag}:{number}"
                    await bystanders.checkpoint(f"{tag} before")
                    await ws.send(BOOM)
                    with pytest.raises(ConnectionClosed) as closed:
                        async with asyncio.timeout(TIMEOUT):
                            await ws.recv()
                frame = closed.value.rcvd
                assert frame is not None, "the server dropped the connection without a close frame"
                assert (frame.code, frame.reason) == (1011, "Internal server error")
                assert BOOM_ERROR not in frame.reason
                figures["closes"].append(frame.code)
                assert await ending_of(http, tag) == "RuntimeError"
                # Nobody else was touched.
                assert (await stats(http))["active"].get("echo") == ACTIVE_OTHERS
                await bystanders.checkpoint(f"{tag} after")
                # What was saved at accept() is still there. The handler's own
                # changes (5 messages counted) are not saved: "a handler that
                # fails saves nothing" (docs/source/glossary.rst).
                assert await saved_session(http, session_id) == {"conn": tag, "received": 0}
            await bystanders.finish(http)
            figures["echoed"] = sum(bystanders.echoed)
            figures["after"] = await left_nothing_behind(http, idle_tasks)

    mark = server.mark()
    asyncio.run(scenario())  # it saw every handler end: the output holds all they logged
    # Each failure was logged once, with its traceback, through MicroPie's logger;
    # uvicorn saw a well-behaved application; nothing else went wrong.
    printed = server.output_since(mark)
    assert printed.count("ERROR [micropie] WebSocket handler ws_boom failed\nTraceback") == BOOMS
    assert printed.count(f"RuntimeError: {BOOM_ERROR}") == BOOMS
    assert "Exception in ASGI application" not in printed
    errors = problem_lines(printed, FAULT_WORDS)
    logged = [line for line in errors if line.startswith(("ERROR", "WARNING"))]
    assert logged == ["ERROR [micropie] WebSocket handler ws_boom failed"] * BOOMS, errors
    assert len([line for line in errors if "Traceback" in line]) == BOOMS, errors
    assert server.process.poll() is None
    assert figures["after"]["endings"]["boom"] == {"RuntimeError": BOOMS}
    print(
        f"faults: {BOOMS} handlers raised while {ACTIVE_OTHERS} others were active: their "
        f"clients got {figures['closes']}; the others echoed {figures['echoed']} messages "
        f"meanwhile; {afterwards(figures['after'])}"
    )


# A server shutdown (SIGTERM) with sockets open.

OPEN_AT_SHUTDOWN = 50
MESSAGES_BEFORE_SHUTDOWN = 3


def test_sigterm_with_sockets_open(log_config: Path) -> None:
    """Clients get 1012, handlers end with ConnectionClosed, sessions are saved first.

    The in-memory backend dies with the process: what the test can check is
    that each session was saved before the process went, which the app's
    shutdown report shows (read back from the backend after every handler
    ended). A persistent backend would be handed the very same saves.
    """
    with serve(log_config) as server:
        closes: list[tuple[int, str] | None] = []
        session_ids: dict[str, str] = {}

        async def scenario() -> float:
            sockets: list[ClientConnection] = []
            try:
                async with httpx.AsyncClient(
                    base_url=server.http_url, trust_env=False, timeout=TIMEOUT
                ) as http:
                    for number in range(OPEN_AT_SHUTDOWN):
                        tag = f"shutdown-{number}"
                        ws = await open_websocket(server, f"/echo?tag={tag}&session={tag}")
                        sockets.append(ws)
                        assert ws.response is not None
                        session_ids[tag] = session_id_of(ws.response.headers)
                    for ws in sockets:
                        for number in range(MESSAGES_BEFORE_SHUTDOWN):
                            await ws.send(f"{number}")
                            assert await ws.recv() == f"{number}"
                    # Saved at accept(), and readable, before the signal.
                    for tag, session_id in session_ids.items():
                        assert await saved_session(http, session_id) == {"conn": tag, "received": 0}
                    assert (await stats(http))["active"] == {"echo": OPEN_AT_SHUTDOWN}

                signalled = time.monotonic()
                server.process.send_signal(signal.SIGTERM)

                async def close_frame(ws: ClientConnection) -> tuple[int, str] | None:
                    try:
                        async with asyncio.timeout(TIMEOUT):
                            message = await ws.recv()
                    except ConnectionClosed as closed:
                        frame = closed.rcvd
                        return None if frame is None else (frame.code, frame.reason)
                    pytest.fail(f"expected a close frame, got {message!r}")

                closes.extend(await asyncio.gather(*(close_frame(ws) for ws in sockets)))
                return signalled
            finally:
                for ws in sockets:
                    ws.transport.abort()

        signalled = asyncio.run(scenario())
        server.wait_for_exit(GRACEFUL_SHUTDOWN + TIMEOUT)
        exited_after = time.monotonic() - signalled
        output = server.output

    assert closes == [(1012, "")] * OPEN_AT_SHUTDOWN  # "service restart"
    assert "Application shutdown complete." in output
    # The handlers ended by themselves: none had to be cancelled.
    assert "timeout graceful shutdown exceeded" not in output
    assert_no_errors(output, FAULT_WORDS)

    report = shutdown_report(output)
    assert report["active_total"] == 0
    assert report["websockets_alive"] == 0
    assert report["tasks"] <= report["tasks_at_startup"]  # only the server's own are left
    assert report["endings"] == {"echo": {"ConnectionClosed 1012": OPEN_AT_SHUTDOWN}}
    assert all(report["tagged"][tag] == "ConnectionClosed 1012" for tag in session_ids)
    # Every session, with the messages counted during the connection, was
    # saved when its handler ended: before the process exited.
    assert report["issued_sessions"] == {
        session_id: {"conn": tag, "received": MESSAGES_BEFORE_SHUTDOWN}
        for tag, session_id in session_ids.items()
    }
    print(
        f"faults: SIGTERM with {OPEN_AT_SHUTDOWN} sockets open: all got close "
        f"{closes[0]}, the server exited {exited_after:.2f} s after the signal "
        f"(graceful timeout {GRACEFUL_SHUTDOWN} s) with code {server.process.returncode}; at "
        f"shutdown: {report['active_total']} active handlers, {report['websockets_alive']} "
        f"WebSocket objects, {report['tasks']} tasks (at startup: {report['tasks_at_startup']}), "
        f"{len(report['issued_sessions'])} "
        f"sessions saved with every message counted"
    )


def shutdown_report(output: str) -> dict[str, Any]:
    """The app's last word, printed by its shutdown handler after every handler ended."""
    lines = [line for line in output.splitlines() if line.startswith(SHUTDOWN_LINE)]
    assert len(lines) == 1, output[-5000:]
    report: dict[str, Any] = json.loads(lines[0].removeprefix(SHUTDOWN_LINE))
    return report


STUCK_GRACEFUL_SHUTDOWN = 2  # seconds: this test waits for all of it


def test_sigterm_with_a_handler_stuck_sending_to_a_client_that_does_not_read(
    log_config: Path,
) -> None:
    """The server still exits within its graceful timeout; saved sessions stay saved.

    The stuck handler waits inside the server's ``send``, for buffer space
    that never comes: uvicorn's shutdown does not release that wait, so the
    handler ends only when uvicorn cancels it at the graceful timeout, and
    uvicorn logs the ``CancelledError``. A handler waiting to receive, beside
    it, ends at once with ``ConnectionClosed`` 1012.
    """
    with serve(log_config, graceful_shutdown=STUCK_GRACEFUL_SHUTDOWN) as server:
        session_ids: dict[str, str] = {}
        close: list[tuple[int, str] | None] = []

        async def scenario() -> float:
            stuck: RawClient | None = None
            ws: ClientConnection | None = None
            try:
                async with httpx.AsyncClient(
                    base_url=server.http_url, trust_env=False, timeout=TIMEOUT
                ) as http:
                    stuck = await RawClient.open(
                        server, "/flood?tag=stuck&session=stuck", receive_buffer=4096
                    )
                    session_ids["stuck"] = session_id_of(stuck.response.headers)
                    assert await stuck.receive_text() == "ready"
                    assert await wait_until_stalled(http, "stuck") < FLOOD_MAX_MESSAGES
                    ws = await open_websocket(server, "/echo?tag=waiting&session=waiting")
                    assert ws.response is not None
                    session_ids["waiting"] = session_id_of(ws.response.headers)
                    await ws.send("hello")
                    assert await ws.recv() == "hello"
                    for tag, session_id in session_ids.items():
                        assert await saved_session(http, session_id) == {"conn": tag, "received": 0}
                signalled = time.monotonic()
                server.process.send_signal(signal.SIGTERM)
                with pytest.raises(ConnectionClosed) as closed:
                    async with asyncio.timeout(TIMEOUT):
                        await ws.recv()
                frame = closed.value.rcvd
                close.append(None if frame is None else (frame.code, frame.reason))
                # The stuck client still reads nothing while the server shuts down.
                await asyncio.to_thread(server.wait_for_exit, STUCK_GRACEFUL_SHUTDOWN + TIMEOUT)
                return signalled
            finally:
                if stuck is not None:
                    stuck.reset()
                if ws is not None:
                    ws.transport.abort()

        signalled = asyncio.run(scenario())
        exited_after = time.monotonic() - signalled
        output = server.output

    assert close == [(1012, "")]
    assert "Application shutdown complete." in output
    report = shutdown_report(output)
    assert report["active_total"] == 0
    assert report["websockets_alive"] == 0
    assert report["tasks"] <= report["tasks_at_startup"]
    assert report["tagged"]["waiting"] == "ConnectionClosed 1012"
    stuck_ending = report["tagged"]["stuck"]
    problems = [line for line in output.splitlines() if line.startswith(("ERROR", "WARNING"))]
    if stuck_ending == "cancelled":
        # uvicorn gave up on it at the graceful timeout, and says so.
        assert problems == [
            "ERROR:    Cancel 1 running task(s), timeout graceful shutdown exceeded",
            "ERROR:    Exception in ASGI application",
        ], output[-5000:]
        assert output.count("Traceback") == 1
        assert "CancelledError: Task cancelled, timeout graceful shutdown exceeded" in output
    else:  # a server that releases the blocked send: the handler's own ending
        assert stuck_ending.startswith("ConnectionClosed"), stuck_ending
        assert problems == [], output[-5000:]
    # Both sessions as saved: the stuck handler never received; the waiting
    # one's count (1) was saved when its handler ended, before the exit.
    assert report["issued_sessions"] == {
        session_ids["stuck"]: {"conn": "stuck", "received": 0},
        session_ids["waiting"]: {"conn": "waiting", "received": 1},
    }
    print(
        f"faults: SIGTERM with a handler stuck sending to a client that does not read: "
        f"it ended as {stuck_ending!r}, the handler beside it with "
        f"{report['tagged']['waiting']!r} (its client got {close[0]}); the server exited "
        f"{exited_after:.2f} s after the signal (graceful timeout {STUCK_GRACEFUL_SHUTDOWN} s); "
        f"sessions saved: {len(report['issued_sessions'])}"
    )
