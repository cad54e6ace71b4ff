"""End-to-end: the chat example on two uvicorn workers while Redis restarts,
and its clients resuming where they left the room.

The scenario of issue 13, as an operator meets it: ``examples/chat/app.py``
under ``uvicorn --workers 2`` with ``MICROPIE_REDIS_URL``, four clients
connected, then ``redis-server`` stopped and started again on the same port.
What must hold: no 500 (a request with a session gets 503 and
``Retry-After``), no deaf client (each one connected before the outage is
closed with a code that tells the page to reconnect), and the chat working
again on both workers once Redis is back, with no restart. And a client that
reconnects with the id of the last message it saw gets every message it
missed, once, in order, on either worker (or is told that some are gone).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection

from tests.helpers.clients import (
    TIMEOUT,
    chat_joined,
    chat_message,
    close_frame_of,
    receive,
    ws_connect,
)
from tests.helpers.logs import quiet
from tests.helpers.redis import run_redis, run_sentinel_group
from tests.helpers.servers import (
    RunningServer,
    run_server,
    wait_for_workers,
    worker_of,
    write_log_config,
)

pytest.importorskip("redis")

CLIENTS = 4
RECOVERY = 15.0  # seconds the chat may take to work again once Redis is back
RECONNECT_CODES = {1012, 1013}  # service restart, try again later: the page reconnects


def close_after_messages(ws: ClientConnection) -> tuple[int, str]:
    """The close code and reason *ws* ends with, past the room's lines still on their way."""
    deadline = time.monotonic() + TIMEOUT
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    frame = closed.value.rcvd
    assert frame is not None, "closed without a close frame"
    return frame.code, frame.reason


def say(ws: ClientConnection, text: str) -> tuple[str, str]:
    """Send *text*; the id and the line the room echoes back (``name: text``),
    past other frames."""
    ws.send(text)
    return hear(ws, text)


def hear(ws: ClientConnection, text: str) -> tuple[str, str]:
    """The id and the line of the room's next message that says *text*;
    frames before it are passed."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        frame = receive(ws, max(0.01, deadline - time.monotonic()))
        if '"joined"' not in str(frame):
            message_id, line = chat_message(frame)
            if line.endswith(f": {text}"):
                return message_id, line


@contextlib.contextmanager
def rejoin(server: RunningServer, name: str, since: str) -> Iterator[tuple[ClientConnection, bool]]:
    """Connect as *name*, resuming after *since*: the socket, and whether the
    room says messages after *since* are gone."""
    with ws_connect(f"{server.ws_url}/chat?{urlencode({'name': name, 'since': since})}") as ws:
        joined, gap = chat_joined(ws)
        assert joined == since
        yield ws, gap


def chat_on_both_workers(
    server: RunningServer, stack: contextlib.ExitStack, within: float = RECOVERY
) -> float:
    """Connect until clients sit on both workers and hear each other; the seconds it took."""
    started = time.monotonic()
    by_worker: dict[int, ClientConnection] = {}
    while len(by_worker) < 2:
        assert time.monotonic() - started < within, "the chat did not recover"
        try:
            ws = stack.enter_context(ws_connect(f"{server.ws_url}/chat"))
        except (InvalidStatus, OSError):
            time.sleep(0.1)
            continue
        try:
            say(ws, "hello?")  # closed with 1013 while the broadcast reconnects
        except Exception:
            time.sleep(0.1)
            continue
        by_worker.setdefault(worker_of(server, ws.socket.getsockname()[1]), ws)
    one, other = by_worker.values()
    line = say(one, "across workers")
    assert hear(other, "across workers") == line
    return time.monotonic() - started


@contextlib.contextmanager
def chat_on_two_workers(
    redis_url: str, directory: Path
) -> Iterator[tuple[RunningServer, httpx.Client, contextlib.ExitStack]]:
    """The chat example under ``uvicorn --workers 2`` with *redis_url*, an
    HTTP client of it, and a stack for WebSocket clients; when the block
    ends, the server's whole output must hold no traceback and no ERROR."""
    log_config = write_log_config(directory, pids=True)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MICROPIE_REDIS_URL", redis_url)
        server_context = run_server(
            "uvicorn", "examples.chat.app:app", "--workers", "2", "--log-config", str(log_config)
        )
        with quiet(server_context) as server, contextlib.ExitStack() as stack:
            wait_for_workers(server)
            http = stack.enter_context(
                httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False)
            )
            yield server, http, stack


def test_the_chat_through_a_redis_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    directory = tmp_path_factory.mktemp("outage")
    with (
        run_redis() as redis_server,
        chat_on_two_workers(redis_server.url, directory) as (server, http, stack),
    ):
        port = redis_server.port
        assert http.get("/").status_code == 200  # a session cookie, stored in Redis
        clients = [stack.enter_context(ws_connect(f"{server.ws_url}/chat")) for _ in range(CLIENTS)]
        # Each says something of its own: its echo, not another's, ends its say().
        last_ids = [say(ws, f"before, from client {n}")[0] for n, ws in enumerate(clients)]
        redis_server.process.terminate()
        redis_server.process.wait(TIMEOUT)

        # Every client connected before the outage is told, none left deaf.
        fates = [close_after_messages(ws) for ws in clients]
        assert all(code in RECONNECT_CODES for code, _ in fates), fates
        # A request that carries a session: 503 and Retry-After, never 500.
        during = http.get("/")
        assert during.status_code == 503, during.text
        assert int(during.headers["retry-after"]) > 0
        # A new WebSocket is told to come back later, not refused for good.
        with ws_connect(f"{server.ws_url}/chat") as late:
            assert close_frame_of(late, timeout=TIMEOUT)[0] == 1013

        with run_redis(port=port):
            recovered = chat_on_both_workers(server, stack)
            assert http.get("/").status_code == 200
            # This Redis keeps nothing on disk: the room's history went with
            # it, and a client that comes back is told so.
            for since in last_ids:
                with rejoin(server, "back", since) as (ws, gap):
                    assert gap
                    say(ws, "back")
    assert recovered < RECOVERY
    print(f"clients connected before the outage were closed with {fates}")
    print(f"the chat worked again {recovered:.2f} s after Redis was back")


def test_the_chat_through_a_sentinel_failover(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``MICROPIE_REDIS_URL=redis+sentinel://...``: the primary killed, the
    replica promoted by the sentinel, the chat and its sessions back on it."""
    directory = tmp_path_factory.mktemp("failover")
    with (
        run_sentinel_group() as group,
        chat_on_two_workers(group.url, directory) as (server, http, stack),
    ):
        page = http.get("/")  # a session, written to the primary, copied to the replica
        assert page.status_code == 200
        before = stack.enter_context(ws_connect(f"{server.ws_url}/chat"))
        since = say(before, "before the failover")[0]
        # Replication is asynchronous: wait until the replica has every write.
        assert group.wait_for_replica() == 1
        killed_at = time.monotonic()
        group.primary.process.kill()  # no goodbye: a crash
        group.primary.process.wait(TIMEOUT)
        assert close_after_messages(before)[0] in RECONNECT_CODES
        chat_on_both_workers(server, stack, within=30.0)
        failover = time.monotonic() - killed_at
        assert group.primary_port() == group.replica_port  # the replica is the primary now
        # The session made before the failover lives on in the promoted replica.
        again = http.get("/")
        assert again.status_code == 200
        assert again.text == page.text
        # So does the room's history: the client cut off by the failover
        # resumes there, and misses nothing said since.
        speaker = stack.enter_context(ws_connect(f"{server.ws_url}/chat"))
        said = [say(speaker, f"after the failover {n}") for n in range(3)]
        with rejoin(server, "before", since) as (ws, gap):
            assert not gap
            heard = [chat_message(receive(ws))]
            while heard[-1] != said[-1]:
                heard.append(chat_message(receive(ws)))
        # What the recovery check said came first; then these, each once.
        assert heard[-3:] == said
        assert len({message_id for message_id, _ in heard}) == len(heard)
    print(f"the chat worked again {failover:.2f} s after the primary was killed")


def test_a_client_that_drops_gets_what_it_missed_on_either_worker(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A client leaves for a while and comes back with the id of the last
    message it saw, reaching either worker: it gets every message said
    meanwhile, once, in order, then the live ones."""
    directory = tmp_path_factory.mktemp("resume")
    with (
        run_redis() as redis_server,
        chat_on_two_workers(redis_server.url, directory) as (server, _http, stack),
    ):
        speaker = stack.enter_context(ws_connect(f"{server.ws_url}/chat?name=Ada"))
        with ws_connect(f"{server.ws_url}/chat?name=Bob") as bob:
            assert chat_joined(bob)[1] is False
            since = say(speaker, "before")[0]
            assert chat_message(receive(bob))[0] == since
        workers: set[int] = set()
        missed = recovered = 0
        for round_number in range(12):
            said = [say(speaker, f"round {round_number}, message {n}") for n in range(5)]
            missed += len(said)
            with rejoin(server, "Bob", since) as (ws, gap):
                assert not gap
                heard = [chat_message(receive(ws)) for _ in said]
                assert heard == said  # the same ids, the same lines, in order
                recovered += len(heard)
                live = say(speaker, f"round {round_number}, live")
                assert chat_message(receive(ws)) == live  # nothing twice before it
                since = live[0]
                workers.add(worker_of(server, ws.socket.getsockname()[1], path=ws.request.path))
            if len(workers) == 2 and round_number >= 2:
                break
        assert len(workers) == 2, "every resume reached one worker"
    print(f"{missed} messages missed, {recovered} recovered, none twice, on {len(workers)} workers")
