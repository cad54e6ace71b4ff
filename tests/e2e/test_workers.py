"""End-to-end: several worker processes (docs/source/howto/workers.rst).

``uvicorn --workers 2`` runs two processes that each import the app, so each
has its own sessions and its own chat room. These tests show it with real
clients: connections spread over both processes, the chat room splits in
two, and a session is known only to the process that made it, unless the
backend is shared. Then the stopgap the page describes: sticky sessions at
nginx, in front of two uvicorn processes.
"""

from __future__ import annotations

import contextlib
import inspect
import shlex
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection

import micropie.redis_sessions
import micropie.sessions
from micropie.sessions import InMemorySessionBackend, SessionBackend
from tests.helpers.clients import TIMEOUT, chat_receive, chat_say, session_of, ws_connect
from tests.helpers.servers import (
    NGINX_COMMAND,
    REPO_ROOT,
    RunningServer,
    make_certificate,
    run_nginx,
    run_server,
    run_uvicorn,
    wait_for_workers,
)
from tests.helpers.support import captions_of_file, require_program

# A broadcast that has not arrived after this long is taken as not coming;
# over loopback it comes in milliseconds, but the machine may be busy.
NOT_HEARD_WAIT = 1.0
PAGE = REPO_ROOT / "docs" / "source" / "howto" / "workers.rst"
STICKY_CONFIG = REPO_ROOT / "examples" / "deploy" / "nginx-sticky.conf"
# The page's commands serve app.py, which is this file: the tests run it for app:app.
APP = "examples.room.app:app"
WORKERS_COMMAND = "uvicorn app:app --workers 2"
STICKY_COMMANDS = [
    "uvicorn app:app --port 8001 --proxy-headers --forwarded-allow-ips=127.0.0.1",
    "uvicorn app:app --port 8002 --proxy-headers --forwarded-allow-ips=127.0.0.1",
]
MAX_CLIENTS = 40  # enough for both workers to get some, however the system deals them out


def test_the_pages_show_the_commands_the_tests_run() -> None:
    page = PAGE.read_text(encoding="utf-8")
    config = STICKY_CONFIG.read_text(encoding="utf-8")
    assert f"\n   {WORKERS_COMMAND}\n" in page
    assert f"\n   {NGINX_COMMAND}\n" in page
    for command in STICKY_COMMANDS:
        assert f"#   {command}\n" in config
    # The files the commands use, shown whole under the names the commands give them.
    assert captions_of_file(PAGE, "examples/room/app.py") == ["app.py"]
    assert captions_of_file(PAGE, "examples/deploy/nginx-sticky.conf") == ["nginx.conf"]


def test_micropie_ships_the_in_memory_and_the_redis_backend() -> None:
    backends = [
        getattr(module, name)
        for module in (micropie.sessions, micropie.redis_sessions)
        for name in module.__all__
        if inspect.isclass(getattr(module, name))
        and issubclass(getattr(module, name), SessionBackend)
        and not inspect.isabstract(getattr(module, name))
    ]
    assert backends == [InMemorySessionBackend, micropie.redis_sessions.RedisSessionBackend]


# Helpers.


def worker_args() -> list[str]:
    """The arguments of the page's command, after the app."""
    return shlex.split(WORKERS_COMMAND)[2:]


def chat_connect(
    url: str,
    cookie: str | None = None,
    *,
    tls: ssl.SSLContext | None = None,
    source: str = "127.0.0.1",
) -> ClientConnection:
    """A chat client, from the local address *source*; *tls* for a ``wss://`` URL."""
    return ws_connect(url, cookie=cookie, ssl=tls, source_address=(source, 0))


def hearers(speaker: ClientConnection, others: list[ClientConnection], text: str) -> list[bool]:
    """Which of *others* receive what *speaker* says to the chat.

    One deadline for all of them: a client that hears it returns at once, and
    one that has heard nothing when the deadline passes has not heard it.
    """
    name = chat_say(speaker, text)
    deadline = time.monotonic() + NOT_HEARD_WAIT
    heard = []
    for ws in others:
        try:
            message = chat_receive(ws, timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            heard.append(False)
        else:
            assert message == f"{name}: {text}", "a message came late, or from elsewhere"
            heard.append(True)
    return heard


def rooms(url: str) -> tuple[int, int]:
    """Connect chat clients until two of them are in different rooms; return the room sizes.

    Raises if the first member's message reaches every client, however many.
    """
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(chat_connect(url))]
        while len(clients) < MAX_CLIENTS:
            clients.extend(stack.enter_context(chat_connect(url)) for _ in range(8))
            heard = hearers(clients[0], clients[1:], f"hello from client 0 of {len(clients)}")
            if not all(heard):
                break
        else:
            pytest.fail(f"all {len(clients)} clients heard the first one: one room only")
        room = [clients[0]] + [ws for ws, yes in zip(clients[1:], heard, strict=True) if yes]
        elsewhere = [ws for ws, yes in zip(clients[1:], heard, strict=True) if not yes]
        # Someone in the other room speaks: that whole room hears it, the first room does not.
        speaker, *rest = elsewhere
        assert hearers(speaker, rest + room, "hello from the other room") == (
            [True] * len(rest) + [False] * len(room)
        )
        return len(room), len(elsewhere)


def session_outcomes(url: str, tries: int = 20) -> set[str]:
    """Start a session, then come back with its cookie; how the server greets it each time.

    ``"known"``: the same name, and no new cookie. ``"unknown"``: a new
    session ID and a new name. Stops early once both have been seen.
    """
    with chat_connect(url) as ws:
        session_id = session_of(ws)
        assert session_id is not None
        name = chat_say(ws, "first visit")
    outcomes = set()
    for visit in range(tries):
        with chat_connect(url, cookie=f"session_id={session_id}") as ws:
            new_id = session_of(ws)
            name_now = chat_say(ws, f"visit {visit}")
        if new_id is None:
            assert name_now == name
            outcomes.add("known")
        else:
            assert new_id != session_id
            outcomes.add("unknown")
        if outcomes == {"known", "unknown"}:
            break
    return outcomes


# uvicorn --workers 2


def test_connections_are_spread_over_both_worker_processes() -> None:
    with run_server("uvicorn", "tests.helpers.apps.deploy_apps:app", *worker_args()) as server:
        workers = wait_for_workers(server)
        assert server.process.pid not in workers  # the parent serves nobody
        seen: set[int] = set()
        with contextlib.ExitStack() as stack:
            for _ in range(MAX_CLIENTS):
                ws = stack.enter_context(chat_connect(f"{server.ws_url}/pid"))
                seen.add(int(ws.recv(timeout=TIMEOUT)))
                if seen == workers:
                    break
        assert seen == workers


@pytest.fixture(scope="module")
def chat_with_workers() -> Iterator[RunningServer]:
    with run_server("uvicorn", APP, *worker_args()) as server:
        wait_for_workers(server)
        yield server


def test_the_chat_room_splits_in_two(chat_with_workers: RunningServer) -> None:
    first, second = rooms(f"{chat_with_workers.ws_url}/chat")
    assert first >= 1 and second >= 1


def test_a_session_is_known_only_to_the_worker_that_made_it(
    chat_with_workers: RunningServer,
) -> None:
    assert session_outcomes(f"{chat_with_workers.ws_url}/chat") == {"known", "unknown"}


def test_a_shared_backend_makes_sessions_known_to_every_worker(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MICROPIE_TEST_SESSION_DIR", str(tmp_path))
        app = "tests.helpers.apps.shared_sessions_app:app"
        with run_server("uvicorn", app, *worker_args()) as server:
            wait_for_workers(server)
            url = f"{server.ws_url}/chat"
            rooms(url)  # still two rooms: the backend shares sessions, not sockets
            assert session_outcomes(url) == {"known"}


# Sticky sessions: nginx in front of two uvicorn processes.

LISTEN = "listen 443 ssl;"
CERTIFICATE = "/etc/micropie/tls/cert.pem"
KEY = "/etc/micropie/tls/key.pem"
UPSTREAMS = ["server 127.0.0.1:8001;", "server 127.0.0.1:8002;"]


def sticky_config(port: int, certificate: tuple[Path, Path], upstreams: list[int]) -> str:
    config = STICKY_CONFIG.read_text(encoding="utf-8")
    for placeholder in (LISTEN, CERTIFICATE, KEY, *UPSTREAMS):
        assert config.count(placeholder) == 1, placeholder
    config = config.replace(LISTEN, f"listen 127.0.0.1:{port} ssl;")
    config = config.replace(CERTIFICATE, str(certificate[0]))
    config = config.replace(KEY, str(certificate[1]))
    for placeholder, upstream in zip(UPSTREAMS, upstreams, strict=True):
        config = config.replace(placeholder, f"server 127.0.0.1:{upstream};")
    return config


@pytest.fixture(scope="module")
def sticky(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, ssl.SSLContext, list[RunningServer]]]:
    """nginx with the sticky configuration; yields its wss URL, a client TLS context, uvicorns."""
    nginx = require_program("nginx")
    certificate = make_certificate(require_program("openssl"), tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(cafile=str(certificate[0]))
    with contextlib.ExitStack() as stack:
        upstreams = [
            stack.enter_context(run_uvicorn(APP, *shlex.split(command)[4:]))
            for command in STICKY_COMMANDS
        ]
        ports = [upstream.port for upstream in upstreams]
        proxy = stack.enter_context(
            run_nginx(
                nginx,
                tmp_path_factory.mktemp("nginx"),
                lambda port: sticky_config(port, certificate, ports),
            )
        )
        yield f"wss://127.0.0.1:{proxy.port}/chat", context, upstreams


def served_by(upstreams: list[RunningServer], address: str, since: list[int]) -> int:
    """Which upstream logged a WebSocket from the client *address* after the marks *since*."""
    line = f'{address}:0 - "WebSocket /chat" [accepted]'
    deadline = time.monotonic() + TIMEOUT
    while True:
        found = [i for i, up in enumerate(upstreams) if line in up.output_since(since[i])]
        if found:
            assert len(found) == 1, found
            return found[0]
        assert time.monotonic() < deadline, f"no upstream logged {line!r}"
        time.sleep(0.02)


def sticky_connect(
    sticky: tuple[str, ssl.SSLContext, list[RunningServer]],
    address: str,
    cookie: str | None = None,
) -> tuple[ClientConnection, int]:
    """A chat client connecting from *address*, through nginx; and which upstream took it."""
    url, context, upstreams = sticky
    marks = [upstream.mark() for upstream in upstreams]
    ws = chat_connect(url, cookie=cookie, tls=context, source=address)
    return ws, served_by(upstreams, address, marks)


def test_sticky_sessions_keep_a_client_on_one_process(
    sticky: tuple[str, ssl.SSLContext, list[RunningServer]],
) -> None:
    ws, upstream = sticky_connect(sticky, "127.0.1.1")
    with ws:
        session_id = session_of(ws)
        name = chat_say(ws, "first visit")
    assert session_id is not None
    for visit in range(5):
        ws, again = sticky_connect(sticky, "127.0.1.1", cookie=f"session_id={session_id}")
        with ws:
            assert session_of(ws) is None  # the session is known: no new cookie
            assert chat_say(ws, f"visit {visit}") == name
        assert again == upstream


def test_sticky_sessions_spread_clients_by_address(
    sticky: tuple[str, ssl.SSLContext, list[RunningServer]],
) -> None:
    # 127.0.X.1 and 127.0.X.2 share their first three bytes: the same process.
    chosen = {}
    for network in range(2, 12):
        with contextlib.ExitStack() as stack:
            picks = set()
            for host in (1, 2):
                ws, upstream = sticky_connect(sticky, f"127.0.{network}.{host}")
                stack.enter_context(ws)
                picks.add(upstream)
            assert len(picks) == 1
            chosen[network] = picks.pop()
    assert set(chosen.values()) == {0, 1}, chosen


def test_sticky_sessions_leave_the_room_split(
    sticky: tuple[str, ssl.SSLContext, list[RunningServer]],
) -> None:
    # One client on each process (found by address): neither hears the other.
    by_upstream: dict[int, str] = {}
    for network in range(2, 12):
        address = f"127.0.{network}.1"
        ws, upstream = sticky_connect(sticky, address)
        with ws:
            by_upstream.setdefault(upstream, address)
    assert set(by_upstream) == {0, 1}
    first, _ = sticky_connect(sticky, by_upstream[0])
    second, _ = sticky_connect(sticky, by_upstream[1])
    with first, second:
        assert hearers(first, [second], "anyone on the other process?") == [False]
        assert hearers(second, [first], "and the other way?") == [False]
