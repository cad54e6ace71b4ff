"""End-to-end: the Socket.IO chat of docs/source/howto/socketio.rst under a real uvicorn.

``examples/socketio/app.py`` and ``client.py`` are saved as the page says,
alone in a directory, and served there with the page's command; python-socketio's
own client talks to it, over each of its two transports.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import socketio
from websockets.exceptions import InvalidStatus

from tests.helpers.clients import TIMEOUT, ws_connect
from tests.helpers.logs import problem_lines, quiet
from tests.helpers.servers import REPO_ROOT, RunningServer, run_uvicorn, serve_saved
from tests.helpers.support import captions_of_file

PAGE = REPO_ROOT / "docs" / "source" / "howto" / "socketio.rst"
EXAMPLE = "examples/socketio/app.py"
CLIENT = "examples/socketio/client.py"
SERVER_COMMAND = "uvicorn app:app --timeout-graceful-shutdown 5"
CLIENT_COMMAND = 'python client.py Ada lobby "hello, all"'
TRANSPORTS = ["polling", "websocket"]
ROOMS = itertools.count()
#: What uvicorn logs when --timeout-graceful-shutdown ends requests still open.
CANCELLED = "running task(s), timeout graceful shutdown exceeded"
#: What app.py answers a join it cannot take.
BAD_JOIN = "send {'name': ..., 'room': ...}, each 1 to 32 characters"


def test_the_page_shows_the_files_and_the_commands_the_tests_run() -> None:
    assert captions_of_file(PAGE, EXAMPLE) == ["app.py"]
    assert captions_of_file(PAGE, CLIENT) == ["client.py"]
    text = PAGE.read_text(encoding="utf-8")
    assert f"\n   {SERVER_COMMAND}\n" in text
    assert f"\n   {CLIENT_COMMAND}\n" in text


@pytest.fixture
def room() -> str:
    """A room of the test's own: the clients of earlier tests may still be leaving theirs."""
    return f"room-{next(ROOMS)}"


@pytest.fixture(scope="module")
def reader_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reader")


@pytest.fixture(scope="module")
def server(reader_dir: Path) -> Iterator[RunningServer]:
    files = {EXAMPLE: "app.py", CLIENT: "client.py"}
    program, app, *options = SERVER_COMMAND.split()
    with serve_saved(reader_dir, files, *options, program=program, app=app) as running:
        yield running
        # No request of these tests may make it log an error, but one: the
        # long-polling requests of clients that left wait for Engine.IO's
        # timeout, and uvicorn says that it cancels them (the page says why).
        problems = problem_lines(running.stop())
        assert [line for line in problems if not line.endswith(CANCELLED)] == [], problems


@contextlib.contextmanager
def sio_client(
    server: RunningServer, transport: str | None = None, socketio_path: str = "socket.io"
) -> Iterator[Any]:
    """A connected ``socketio.SimpleClient``, on *transport* alone if given, never
    through a proxy; it disconnects when the block ends."""
    session = requests.Session()
    session.trust_env = False
    client = socketio.SimpleClient(http_session=session, reconnection=False)
    transports = [transport] if transport else None
    client.connect(
        server.http_url, transports=transports, socketio_path=socketio_path, wait_timeout=TIMEOUT
    )
    try:
        yield client
    finally:
        # The server hears of it at once, but over long-polling the client's
        # disconnect() returns only once its pending GET ends (up to 30 s).
        threading.Thread(target=client.disconnect, daemon=True).start()


def join(client: Any, name: str, room: str) -> Any:
    """Join *room* as *name*; return the acknowledgement (who is in the room)."""
    return client.call("join", {"name": name, "room": room}, timeout=TIMEOUT)


def events(client: Any, count: int) -> list[list[Any]]:
    """The next *count* events *client* receives, each ``[name, data]``."""
    return [client.receive(timeout=TIMEOUT) for _ in range(count)]


def who(server: RunningServer, room: str) -> Any:
    with httpx.Client(base_url=server.http_url, trust_env=False, timeout=TIMEOUT) as http:
        response = http.get(f"/who/{room}")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_members_hear_the_room_in_order(
    server: RunningServer, room: str, transport: str
) -> None:
    with sio_client(server, transport) as ada:
        assert ada.transport == transport
        assert join(ada, "Ada", room) == ["Ada"]
        assert events(ada, 1) == [["joined", {"name": "Ada"}]]
        with sio_client(server, transport) as bo:
            assert join(bo, "Bo", room) == ["Ada", "Bo"]
            assert events(ada, 1) == events(bo, 1) == [["joined", {"name": "Bo"}]]
            assert who(server, room) == ["Ada", "Bo"]
            lines = ["one", "two", "three", "four", "five"]
            for line in lines:
                ada.emit("say", line)
            said = [["said", {"name": "Ada", "text": line}] for line in lines]
            assert events(bo, len(lines)) == said
            assert events(ada, len(lines)) == said
            bo.emit("say", "bye")
            assert events(ada, 1) == [["said", {"name": "Bo", "text": "bye"}]]
        # Bo's block ended: the client disconnected, and the room hears it.
        assert events(ada, 1) == [["left", {"name": "Bo"}]]
        assert who(server, room) == ["Ada"]


@pytest.mark.parametrize(
    ("event", "data", "reason"),
    [
        ("say", "hello", "join a room first"),
        ("join", None, BAD_JOIN),
        ("join", "Ada", BAD_JOIN),
        ("join", {"name": "Ada"}, BAD_JOIN),
        ("join", {"name": " ", "room": "r"}, BAD_JOIN),
        ("join", {"name": "A" * 33, "room": "r"}, BAD_JOIN),
        ("join", {"name": "Ada", "room": ["r"]}, BAD_JOIN),
        ("join", ({"name": "Ada", "room": "r"}, "extra"), BAD_JOIN),
    ],
)
def test_bad_events_are_refused_with_the_reason(
    server: RunningServer, room: str, event: str, data: Any, reason: str
) -> None:
    with sio_client(server) as client:
        client.emit(event, data)
        assert events(client, 1) == [["refused", {"event": event, "reason": reason}]]
        assert join(client, "Ada", room) == ["Ada"]  # still connected


@pytest.mark.parametrize("data", ["", "   ", "x" * 1001, {"text": "hi"}, ("two", "texts"), None])
def test_a_member_saying_nothing_sayable_is_refused(
    server: RunningServer, room: str, data: Any
) -> None:
    with sio_client(server) as client:
        assert join(client, "Ada", room) == ["Ada"]
        assert events(client, 1) == [["joined", {"name": "Ada"}]]
        client.emit("say", data)
        reason = "say one text of 1 to 1000 characters"
        assert events(client, 1) == [["refused", {"event": "say", "reason": reason}]]
        client.emit("join", {"name": "Ada", "room": "elsewhere"})
        reason = "joined already; reconnect to change rooms"
        assert events(client, 1) == [["refused", {"event": "join", "reason": reason}]]
        client.emit("say", "x" * 1000)  # the longest line there may be
        assert events(client, 1) == [["said", {"name": "Ada", "text": "x" * 1000}]]


def test_the_app_answers_beside_socketio(server: RunningServer) -> None:
    with httpx.Client(base_url=server.http_url, trust_env=False, timeout=TIMEOUT) as http:
        home = http.get("/")
        assert home.status_code == 200
        assert home.headers["content-type"].startswith("text/html")
        assert home.text.startswith("A Socket.IO chat:")
        assert http.get("/who/nobody-here").json() == []
        assert http.get("/nothing").status_code == 404  # MicroPie's own 404
        # Engine.IO's open packet, "0" and a JSON object, at the mounted path.
        opened = http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        assert opened.status_code == 200 and opened.text.startswith('0{"sid":')


@pytest.mark.parametrize(
    ("origin", "forwarded_proto", "accepted"),
    [
        (None, None, True),  # not a browser: no Origin header, no check
        ("{here}", None, True),
        ("http://evil.example", None, False),
        ("http://127.0.0.1:1", None, False),  # another port is another origin
        ("https://{host}", None, False),  # the scheme is http unless X-Forwarded-Proto says
        ("https://{host}", "https", True),
    ],
)
def test_socketio_checks_the_origin_itself(
    server: RunningServer, origin: str | None, forwarded_proto: str | None, accepted: bool
) -> None:
    headers = {}
    if origin is not None:
        headers["Origin"] = origin.format(here=server.http_url, host=f"127.0.0.1:{server.port}")
    if forwarded_proto is not None:
        headers["X-Forwarded-Proto"] = forwarded_proto
    params = {"EIO": "4", "transport": "polling"}
    with httpx.Client(base_url=server.http_url, trust_env=False, timeout=TIMEOUT) as http:
        response = http.get("/socket.io/", params=params, headers=headers)
    if accepted:
        assert response.status_code == 200 and response.text.startswith('0{"sid":')
    else:
        assert response.status_code == 400
        assert response.json() == f"{headers['Origin']} is not an accepted origin."


def test_a_websocket_from_another_site_is_refused(server: RunningServer) -> None:
    url = f"{server.ws_url}/socket.io/?EIO=4&transport=websocket"
    with pytest.raises(InvalidStatus) as refused, ws_connect(url, origin="http://evil.example"):
        pass
    assert refused.value.response.status_code == 403
    with ws_connect(url, origin=server.http_url) as ws:  # the same origin is let in
        assert str(ws.recv(timeout=TIMEOUT)).startswith('0{"sid":')


def run_client(
    server: RunningServer, directory: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """``python client.py *args`` in *directory*, against *server*, never through a proxy."""
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    return subprocess.run(
        [sys.executable, "client.py", *args, "--url", server.http_url],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_client_of_the_page_joins_says_and_hears_itself(
    server: RunningServer, reader_dir: Path
) -> None:
    python, script, *args = shlex.split(CLIENT_COMMAND)
    assert (python, script) == ("python", "client.py")
    with sio_client(server) as bo:
        assert join(bo, "Bo", "lobby") == ["Bo"]
        assert events(bo, 1) == [["joined", {"name": "Bo"}]]
        run = run_client(server, reader_dir, *args)
        assert (run.returncode, run.stderr) == (0, "")
        assert run.stdout == "in lobby: Ada, Bo\nAda joined\nAda: hello, all\n"
        assert events(bo, 3) == [
            ["joined", {"name": "Ada"}],
            ["said", {"name": "Ada", "text": "hello, all"}],
            ["left", {"name": "Ada"}],
        ]


def test_the_client_of_the_page_says_why_it_cannot_join(
    server: RunningServer, reader_dir: Path
) -> None:
    run = run_client(server, reader_dir, "A" * 40, "lobby", "hi")
    assert run.returncode == 1
    assert run.stderr == f"cannot join: {BAD_JOIN}\n"


# What the page says of another prefix than /socket.io: python-socketio's
# ASGIApp checks the whole path, so it must be told the prefix too.
OTHER_PATHS_APP = """\
import socketio

from micropie import App

sio = socketio.AsyncServer(async_mode="asgi")
app = App()
app.mount("/live", socketio.ASGIApp(sio, socketio_path="live"))
app.mount("/untold", socketio.ASGIApp(sio))
"""


def test_socketio_at_another_prefix_is_told_it(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(OTHER_PATHS_APP)
    with quiet(run_uvicorn("app:app", cwd=tmp_path)) as other:
        with sio_client(other, socketio_path="live") as client:
            assert client.transport == "websocket"  # upgraded, at /live/ too
        for path in ("untold", "socket.io"):  # ASGIApp's 404, MicroPie's 404
            refused = pytest.raises(socketio.exceptions.ConnectionError, match="404")
            with refused, sio_client(other, socketio_path=path):
                pass
