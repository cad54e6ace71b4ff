"""End-to-end: the chat room of the Redis how-to, and the chat example, under ``--workers 2``.

A real ``redis-server`` (127.0.0.1, an ephemeral port) and each app, unchanged,
with ``MICROPIE_REDIS_URL`` set. uvicorn's log says which worker
process accepted each WebSocket (the log format here adds the process ID),
so the tests know which clients sit on which worker: a message said on one
worker is heard on the other, and a session made by one worker is known to
the other. See docs/source/howto/redis.rst.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import Iterator

import pytest
from websockets.sync.client import ClientConnection

from tests.helpers.clients import chat_receive, chat_say, session_of, ws_connect
from tests.helpers.logs import quiet
from tests.helpers.redis import RedisServer
from tests.helpers.servers import (
    REPO_ROOT,
    RunningServer,
    ServerError,
    free_port,
    run_server,
    wait_for_workers,
    worker_of,
    write_log_config,
)
from tests.helpers.support import captions_of_file

MAX_CLIENTS = 40
PAGE = REPO_ROOT / "docs" / "source" / "howto" / "redis.rst"
# The page's command; its app.py is examples/room/app.py. The chat example works alike.
REDIS_COMMAND = "MICROPIE_REDIS_URL=redis://127.0.0.1:6379/0 uvicorn app:app --workers 2"
APPS = ["examples.room.app:app", "examples.chat.app:app"]


def test_the_page_shows_the_command_the_tests_run() -> None:
    assert f"\n   {REDIS_COMMAND}\n" in PAGE.read_text(encoding="utf-8")
    assert captions_of_file(PAGE, "examples/room/app.py")[0] == "app.py"


@pytest.fixture(scope="module", params=APPS)
def app_path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def chat_on_redis(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory, app_path: str
) -> Iterator[RunningServer]:
    # Each line starts with the ID of the worker that wrote it.
    log_config = write_log_config(tmp_path_factory.mktemp("redis-e2e"), pids=True)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MICROPIE_REDIS_URL", redis_server.url)
        args = (*shlex.split(REDIS_COMMAND)[3:], "--log-config", str(log_config))
        with quiet(run_server("uvicorn", app_path, *args), words=["Traceback"]) as server:
            wait_for_workers(server)
            yield server


def chat_connect(server: RunningServer, cookie: str | None = None) -> ClientConnection:
    return ws_connect(f"{server.ws_url}/chat", cookie=cookie)


def say(ws: ClientConnection, text: str) -> str:
    """Send *text*; return the sender's name (``guest-`` and four digits), read from the echo."""
    name = chat_say(ws, text)
    assert re.fullmatch(r"guest-\d{4}", name), name
    return name


def test_clients_on_different_workers_hear_each_other(chat_on_redis: RunningServer) -> None:
    with contextlib.ExitStack() as stack:
        clients: dict[int, list[ClientConnection]] = {}
        everyone: list[ClientConnection] = []
        while len(clients) < 2:
            assert len(everyone) < MAX_CLIENTS, "every connection went to one worker"
            ws = stack.enter_context(chat_connect(chat_on_redis))
            everyone.append(ws)
            clients.setdefault(worker_of(chat_on_redis, ws.socket.getsockname()[1]), []).append(ws)
        (one, *_), (other, *_) = clients.values()
        # Said on one worker, heard by every client of both, in order.
        for speaker in (one, other):
            name = say(speaker, "first")
            say(speaker, "second")
            for ws in everyone:
                if ws is not speaker:
                    assert chat_receive(ws) == f"{name}: first"
                    assert chat_receive(ws) == f"{name}: second"
        # And nothing else: each message arrived once. Every client hears the
        # room in order, so the next thing each hears is what is said next.
        name = say(one, "over")
        for ws in everyone:
            if ws is not one:
                assert chat_receive(ws) == f"{name}: over"


def test_a_session_made_by_one_worker_is_known_to_the_other(
    chat_on_redis: RunningServer,
) -> None:
    with chat_connect(chat_on_redis) as ws:
        session_id = session_of(ws)
        assert session_id is not None
        name = say(ws, "first visit")
        maker = worker_of(chat_on_redis, ws.socket.getsockname()[1])
    seen_on: set[int] = set()
    for visit in range(MAX_CLIENTS):
        with chat_connect(chat_on_redis, cookie=f"session_id={session_id}") as ws:
            assert session_of(ws) is None, "a known session must not be replaced"
            assert say(ws, f"visit {visit}") == name
            seen_on.add(worker_of(chat_on_redis, ws.socket.getsockname()[1]))
        if seen_on - {maker}:
            break
    assert seen_on - {maker}, "no return visit reached the other worker"


def test_cookieless_handshakes_are_kept_ten_minutes_until_their_client_comes_back(
    chat_on_redis: RunningServer, redis_server: RedisServer
) -> None:
    """A flood of cookie-less handshakes once stored a session for 14 days each."""
    import redis

    started = []
    for visit in range(20):
        with chat_connect(chat_on_redis) as ws:
            started.append(session_of(ws))
            say(ws, f"passing by {visit}")  # answered: the session is stored by now
    returning = started.pop()
    with chat_connect(chat_on_redis, cookie=f"session_id={returning}") as ws:
        say(ws, "back again")
    with redis.Redis(port=redis_server.port) as inspector:
        passing = [inspector.pttl(f"micropie:session:{sid}") for sid in started]
        back = inspector.pttl(f"micropie:session:{returning}")
    assert all(0 < ttl <= 600_000 for ttl in passing), passing
    assert 13 * 24 * 3600_000 < back <= 14 * 24 * 3600_000


@pytest.mark.parametrize("app_path", APPS)
def test_the_chat_fails_at_startup_when_redis_is_unreachable(app_path: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MICROPIE_REDIS_URL", url)
        with (
            pytest.raises(ServerError) as failed,
            run_server("uvicorn", app_path),
        ):
            pytest.fail("the server started without Redis")
    assert f"cannot reach Redis at {url}" in str(failed.value)
    assert "Application startup failed" in str(failed.value)
