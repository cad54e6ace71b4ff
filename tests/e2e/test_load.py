"""Load: 1,000 WebSocket connections held open on one uvicorn worker, 100 echoes each.

The server is ``tests/helpers/apps/load_app.py`` under one uvicorn process; the clients are
``websockets`` asyncio connections, all from one event loop in the test
process. Each test opens all 1,000 connections, holds them open together
while each echoes its messages (several in flight at once, every reply
compared with what was sent), closes them, and checks what the server holds
afterwards: no handler, no asyncio task beyond its idle ones, no
``WebSocket`` (or per-connection object) after a garbage collection, exactly
the sessions started, each with every message counted, and nothing logged.

The first test does it with 100 messages per connection and checks the
server's resident memory; the second with tracemalloc on in the server
(``LOAD_APP_TRACEMALLOC=1``), which counts every Python allocation but slows
the server down several times, so with fewer messages.

They check correctness only; they time nothing against a limit, but print
their figures: run ``pytest tests/e2e/test_load.py -s`` (or ``-rP``) to see them.

Memory is judged after a warm-up round with as many connections: a fresh
process grows its heap during its first thousand connections and the
allocator keeps much of that growth for reuse, so "back to where it started"
means back to where it stood after the warm-up, within the slacks below.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers.load import settled, stats
from tests.helpers.logs import assert_no_errors
from tests.helpers.servers import RunningServer, run_uvicorn, write_log_config

CONNECTIONS = 1000
MESSAGES = 100  # echoed by each connection in the measured round
WARMUP_MESSAGES = 10  # by each connection in the warm-up round
TRACED_MESSAGES = 20  # by each connection in the measured round under tracemalloc
WINDOW = 10  # messages in flight at once on a connection: replies must keep their order
SESSION_EVERY = 10  # every 10th connection starts a session
HANDSHAKES_AT_ONCE = 100  # opening handshakes in flight at once
#: Upper bound on each phase (open, echo, close, settle): a hang fails the
#: test instead of stalling the run. Far above what any phase takes.
PHASE_TIMEOUT = 300.0
SETTLE_TIMEOUT = 30.0  # for the server to finish the handlers once all have closed
#: After the measured round, with every connection closed and a full garbage
#: collection, the memory traced by tracemalloc may exceed its level after
#: the warm-up by this much. The 100 sessions started meanwhile take about
#: 60 KiB; a leak of 200 bytes per connection would exceed it.
TRACED_SLACK = 256 * 1024
#: ... and the resident set size by this much, which is wide on purpose:
#: RSS also counts the heap that the C allocator keeps for reuse after the
#: round's peak, and the measured round, with ten times the warm-up's
#: messages in flight, peaks higher (RSS after it sits near that peak).
#: This bound only catches gross growth ...
RSS_SLACK = 40 * 1024 * 1024
#: ... the close check is on the RSS once glibc's malloc_trim() has handed
#: the allocator's free pages back to the system: what the process holds.
TRIMMED_RSS_SLACK = 8 * 1024 * 1024
FILLER = "load test ✓ héllo wörld 🥧 " * 80  # non-ASCII too: text must survive as text

SERVER_ARGS = (
    # No keepalive pings: 1,000 connections busy for seconds must not be
    # judged by ping timing. (An interval of 0 disables pings with uvicorn's
    # default implementation but not with all of them; an hour works with all.)
    "--ws-ping-interval",
    "3600",
    "--ws-ping-timeout",
    "3600",
    "--backlog",
    "2048",
    "--timeout-graceful-shutdown",
    "10",
)


def message(connection: int, number: int) -> str:
    """The *number*-th message of *connection*: unique, and 9 to ~1,500 characters."""
    size = (connection * 11 + number * 37) % 1500
    return f"{connection}:{number}:{FILLER[:size]}"


@contextlib.contextmanager
def open_files_for(connections: int) -> Iterator[None]:
    """Raise this process's soft limit on open files, which the server inherits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * connections + 512
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.fail(
                f"{connections} connections need {wanted} open files; the hard limit is {hard}"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.contextmanager
def load_server(tmp_path: Path, *, traced: bool) -> Iterator[RunningServer]:
    """The load app under one uvicorn worker; *traced*: with tracemalloc on."""
    log_config = write_log_config(tmp_path)
    with open_files_for(CONNECTIONS), pytest.MonkeyPatch.context() as env:
        if traced:
            env.setenv("LOAD_APP_TRACEMALLOC", "1")  # the server inherits the environment
        else:
            env.delenv("LOAD_APP_TRACEMALLOC", raising=False)
        with run_uvicorn(
            "tests.helpers.apps.load_app:app", *SERVER_ARGS, "--log-config", str(log_config)
        ) as server:
            yield server


class Round:
    """One round: open every connection, echo on all of them, close them all."""

    def __init__(
        self, server: RunningServer, http: httpx.AsyncClient, name: str, compression: str | None
    ) -> None:
        self.server = server
        self.http = http
        self.name = name
        self.compression = compression
        self.sockets: list[ClientConnection] = []
        self.session_cookies: dict[int, str] = {}  # connection number -> session_id
        self.echoed = 0
        self.held_stats: dict[str, Any] = {}
        self.seconds: dict[str, float] = {}

    async def open(self) -> None:
        started = time.monotonic()
        gate = asyncio.Semaphore(HANDSHAKES_AT_ONCE)

        async def open_one(number: int) -> ClientConnection:
            query = f"?session={self.name}-{number}" if number % SESSION_EVERY == 0 else ""
            async with gate:
                ws = await connect(
                    f"{self.server.ws_url}/echo{query}",
                    proxy=None,
                    open_timeout=PHASE_TIMEOUT,
                    close_timeout=PHASE_TIMEOUT,
                    ping_interval=None,  # the client's pings, like the server's, are off
                    compression=self.compression,
                )
            self.sockets.append(ws)  # at once, so that a failure elsewhere still closes it
            return ws

        async with asyncio.timeout(PHASE_TIMEOUT):
            opened = await asyncio.gather(*(open_one(n) for n in range(CONNECTIONS)))
        self.sockets = list(opened)  # in connection order
        for number, ws in enumerate(self.sockets):
            if number % SESSION_EVERY == 0:
                assert ws.response is not None
                cookies = [
                    cookie
                    for cookie in ws.response.headers.get_all("Set-Cookie")
                    if cookie.startswith("session_id=")
                ]
                assert len(cookies) == 1, f"connection {number}: {cookies}"
                self.session_cookies[number] = cookies[0].split(";")[0].removeprefix("session_id=")
        self.seconds["open"] = time.monotonic() - started

    async def echo(self, messages: int) -> None:
        started = time.monotonic()

        async def converse(number: int, ws: ClientConnection) -> int:
            for start in range(0, messages, WINDOW):
                batch = [message(number, n) for n in range(start, min(messages, start + WINDOW))]
                for text in batch:
                    await ws.send(text)
                for position, text in enumerate(batch, start):
                    reply = await ws.recv()
                    if reply != text:
                        raise AssertionError(
                            f"connection {number}, message {position}: sent {text[:40]!r}..., "
                            f"got {reply[:40]!r}..."
                        )
            return messages

        async with asyncio.timeout(PHASE_TIMEOUT):
            results = await asyncio.gather(
                *(converse(n, ws) for n, ws in enumerate(self.sockets)), return_exceptions=True
            )
        failures = [r for r in results if isinstance(r, BaseException)]
        self.echoed = sum(r for r in results if isinstance(r, int))
        self.seconds["echo"] = time.monotonic() - started
        assert not failures, f"{len(failures)} connections failed; the first: {failures[0]!r}"

    async def close(self) -> None:
        started = time.monotonic()
        async with asyncio.timeout(PHASE_TIMEOUT):
            await asyncio.gather(*(ws.close() for ws in self.sockets))
        for number, ws in enumerate(self.sockets):
            # The server answered the client's close: a clean closing handshake.
            assert ws.close_code == 1000, f"connection {number} closed with {ws.close_code}"
        self.seconds["close"] = time.monotonic() - started

    def abort(self) -> None:
        """Drop whatever is still open: for the way out of a failed round."""
        for ws in self.sockets:
            ws.transport.abort()


def mib(size: int) -> str:
    return f"{size / 2**20:.1f}"


async def run_rounds(
    server: RunningServer, messages: int, compression: str | None
) -> dict[str, Any]:
    """A warm-up round, then the measured round with *messages* per connection.

    *compression* is what the clients offer: ``"deflate"``, as browsers do,
    or ``None``.
    """
    async with httpx.AsyncClient(base_url=server.http_url, trust_env=False, timeout=60) as http:
        cold = await stats(http, census=True)
        assert cold["objects"]["after_gc"]["WebSocket"] == 0

        # The warm-up: as many connections, fewer messages.
        warmup = Round(server, http, "warmup", compression)
        try:
            await warmup.open()
            await warmup.echo(WARMUP_MESSAGES)
            await warmup.close()
        finally:
            warmup.abort()
        warm = await settled(http, cold["tasks"], SETTLE_TIMEOUT)

        # The measured round.
        measured = Round(server, http, "load", compression)
        try:
            await measured.open()
            held = await stats(http, census=True)  # every connection open at once
            await measured.echo(messages)
            busy = await stats(http)
            await measured.close()
        finally:
            measured.abort()
        after = await settled(http, warm["tasks"], SETTLE_TIMEOUT)

        # What the sessions hold: each counted every message its connection sent.
        sessions = {}
        for number, session_id in measured.session_cookies.items():
            response = await http.get("/whoami", headers={"Cookie": f"session_id={session_id}"})
            sessions[number] = response.json()

    return {
        "cold": cold,
        "warm": warm,
        "held": held,
        "busy": busy,
        "after": after,
        "warmup": warmup,
        "measured": measured,
        "sessions": sessions,
    }


def check_rounds(result: dict[str, Any], messages: int) -> None:
    """Every reply, in order; all connections held at once; nothing left behind."""
    cold, warm, held, after = (result[key] for key in ("cold", "warm", "held", "after"))
    warmup: Round = result["warmup"]
    measured: Round = result["measured"]
    sessions_per_round = len(range(0, CONNECTIONS, SESSION_EVERY))

    # Every reply arrived, in order (Round.echo compared each one).
    assert warmup.echoed == CONNECTIONS * WARMUP_MESSAGES
    assert measured.echoed == CONNECTIONS * messages

    # The warm-up left nothing behind either.
    assert warm["active_total"] == 0
    assert warm["tasks"] == cold["tasks"]
    assert warm["objects"]["after_gc"] == cold["objects"]["after_gc"]

    # All 1,000 were open at once, each with its own handler and WebSocket.
    assert held["active"] == {"echo": CONNECTIONS}
    base_objects = warm["objects"]["after_gc"]
    held_objects = held["objects"]["after_gc"]
    for kind in ("WebSocket", "WebSocketRequest", "SessionHandle"):
        assert held_objects[kind] - base_objects[kind] == CONNECTIONS, (kind, held_objects)
    assert held["tasks"] - warm["tasks"] >= CONNECTIONS

    # Afterwards: no handler, task or per-connection object is left.
    assert after["active_total"] == 0
    assert after["tasks"] == warm["tasks"], (warm["tasks"], after["tasks"])
    assert after["objects"]["after_gc"] == base_objects, after["objects"]
    assert after["objects"]["before_gc"]["WebSocket"] == 0  # freed without waiting for gc
    assert after["websockets_alive"] == 0
    # Each handler ended on the client's close, as ConnectionClosed 1000.
    assert after["started"] == {"echo": 2 * CONNECTIONS}
    assert after["endings"] == {"echo": {"ConnectionClosed 1000": 2 * CONNECTIONS}}

    # Sessions: the ones started, no other, none lost, each with every message counted.
    assert warm["sessions"] == sessions_per_round
    assert after["sessions"] == 2 * sessions_per_round
    assert after["sessions_issued"] == 2 * sessions_per_round
    assert result["sessions"] == {
        number: {"conn": f"load-{number}", "received": messages}
        for number in range(0, CONNECTIONS, SESSION_EVERY)
    }


def check_log(server: RunningServer, since: int) -> None:
    """The server logged every connection, and nothing that went wrong."""
    printed = server.output_since(since)
    assert printed.count('" [accepted]') == 2 * CONNECTIONS
    assert_no_errors(printed, ("Traceback", "ERROR", "WARNING", "Exception"))
    assert server.process.poll() is None


def round_figures(result: dict[str, Any], elapsed: float) -> str:
    warmup: Round = result["warmup"]
    measured: Round = result["measured"]
    warm, held, after = result["warm"], result["held"], result["after"]
    return (
        f"{CONNECTIONS} connections held at once on one uvicorn worker, "
        f"{measured.echoed} messages echoed in {measured.seconds['echo']:.1f} s "
        f"(opened in {measured.seconds['open']:.1f} s, closed in "
        f"{measured.seconds['close']:.1f} s; warm-up round {warmup.echoed} messages; "
        f"test {elapsed:.1f} s); tasks: after warm-up {warm['tasks']}, held {held['tasks']}, "
        f"after {after['tasks']}; WebSocket objects: held "
        f"{held['objects']['after_gc']['WebSocket']}, after {after['websockets_alive']}; "
        f"sessions: {after['sessions']}"
    )


def test_1000_connections_echo_100_messages_each_and_leave_nothing_behind(
    tmp_path: Path,
) -> None:
    with load_server(tmp_path, traced=False) as server:
        mark = server.mark()
        started = time.monotonic()
        result = asyncio.run(run_rounds(server, MESSAGES, compression="deflate"))
        elapsed = time.monotonic() - started
        check_log(server, mark)
    check_rounds(result, MESSAGES)

    # Memory: back to where it stood after the warm-up, within the slack.
    cold, warm, held, busy, after = (
        result[key] for key in ("cold", "warm", "held", "busy", "after")
    )
    rss_warm, rss_after = warm["rss_bytes_after_gc"], after["rss_bytes_after_gc"]
    summary = (
        f"load: {round_figures(result, elapsed)}; server RSS MiB: cold "
        f"{mib(cold['rss_bytes_after_gc'])}, after warm-up {mib(rss_warm)}, held "
        f"{mib(held['rss_bytes_after_gc'])}, busy {mib(busy['rss_bytes'])}, peak "
        f"{mib(after['peak_rss_bytes'])}, after {mib(rss_after)} (+{mib(rss_after - rss_warm)}; "
        f"after malloc_trim: warm-up {mib(warm['rss_bytes_after_trim'] or 0)}, after "
        f"{mib(after['rss_bytes_after_trim'] or 0)})"
    )
    print(summary)
    assert rss_after - rss_warm <= RSS_SLACK, summary
    if warm["rss_bytes_after_trim"] is not None:  # glibc
        assert after["rss_bytes_after_trim"] - warm["rss_bytes_after_trim"] <= TRIMMED_RSS_SLACK


def test_traced_memory_returns_to_its_level_after_1000_connections(tmp_path: Path) -> None:
    """The same rounds under tracemalloc, which counts every Python allocation.

    Tracing slows the server down several times, so the measured round is
    shorter here, and without compression (whose zlib buffers tracing would
    count too): what a connection leaves behind, it leaves all the same.
    """
    with load_server(tmp_path, traced=True) as server:
        mark = server.mark()
        started = time.monotonic()
        result = asyncio.run(run_rounds(server, TRACED_MESSAGES, compression=None))
        elapsed = time.monotonic() - started
        check_log(server, mark)
    check_rounds(result, TRACED_MESSAGES)

    cold, warm, after = result["cold"], result["warm"], result["after"]
    assert cold["tracemalloc"]["enabled"], "LOAD_APP_TRACEMALLOC did not reach the server"
    traced_warm = warm["tracemalloc"]["current_bytes_after_gc"]
    traced_after = after["tracemalloc"]["current_bytes_after_gc"]
    summary = (
        f"load, traced: {round_figures(result, elapsed)}; traced memory MiB: cold "
        f"{mib(cold['tracemalloc']['current_bytes_after_gc'])}, after warm-up "
        f"{mib(traced_warm)}, peak {mib(after['tracemalloc']['peak_bytes'])}, after "
        f"{mib(traced_after)} ({(traced_after - traced_warm) / 1024:+.0f} KiB; before the "
        f"garbage collection {mib(after['tracemalloc']['current_bytes'])})"
    )
    print(summary)
    assert traced_after - traced_warm <= TRACED_SLACK, summary
