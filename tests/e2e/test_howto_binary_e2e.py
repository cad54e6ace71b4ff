"""End-to-end: the server's message size limit (docs/source/howto/binary.rst).

examples/echo/app.py, saved as the page says (``app.py``, alone in a
directory), under a real uvicorn started there with the page's command
(``--ws-max-size 65536``) and with uvicorn's default limit, under each of
uvicorn's WebSocket implementations.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection

from tests.helpers.clients import close_frame_of, ws_connect
from tests.helpers.logs import quiet
from tests.helpers.servers import REPO_ROOT, RunningServer, run_uvicorn
from tests.helpers.support import captions_of_file, save_files

TIMEOUT = 10.0
LIMIT = 65536  # the --ws-max-size on the page
DEFAULT_LIMIT = 16 * 1024 * 1024  # uvicorn's default, as the page says
IMPLEMENTATIONS = ["auto", "websockets-sansio", "websockets", "wsproto"]
PAGE = REPO_ROOT / "docs" / "source" / "howto" / "binary.rst"
EXAMPLE = "examples/echo/app.py"
COMMAND = f"uvicorn app:app --ws-max-size {LIMIT}"


def test_the_page_shows_the_file_and_the_command_the_tests_run() -> None:
    assert captions_of_file(PAGE, EXAMPLE) == ["app.py"]
    assert f"\n   {COMMAND}\n" in PAGE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def readers_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the page's file, saved as the page says."""
    return save_files(tmp_path_factory.mktemp("reader"), {EXAMPLE: "app.py"})


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def limited_server(
    request: pytest.FixtureRequest, readers_directory: Path
) -> Iterator[RunningServer]:
    # A message over the limit ends the handler's receive with ConnectionClosed,
    # which ends it quietly: nothing may be logged as an error (checked once it stops).
    _uvicorn, app, *args = shlex.split(COMMAND)
    served = run_uvicorn(app, *args, "--ws", request.param, cwd=readers_directory)
    with quiet(served) as server:
        yield server


@pytest.fixture(scope="module")
def default_server(readers_directory: Path) -> Iterator[RunningServer]:
    with run_uvicorn("app:app", cwd=readers_directory) as server:
        yield server


def echo_connect(server: RunningServer) -> ClientConnection:
    # max_size=None: the client itself takes messages of any size.
    return ws_connect(f"{server.ws_url}/echo", max_size=None, timeout=TIMEOUT)


def test_a_message_at_the_limit_is_served(limited_server: RunningServer) -> None:
    with echo_connect(limited_server) as ws:
        ws.send(b"\x00" * LIMIT)
        assert ws.recv(timeout=TIMEOUT) == b"\x00" * LIMIT
        ws.send("x" * LIMIT)
        assert ws.recv(timeout=TIMEOUT) == "x" * LIMIT


@pytest.mark.parametrize(
    "message",
    [b"\x00" * (LIMIT + 1), "x" * (LIMIT + 1), "é" * (LIMIT // 2 + 1)],
    ids=["binary", "text", "text-counted-in-utf8-bytes"],
)
def test_a_message_over_the_limit_closes_with_1009(
    limited_server: RunningServer, message: str | bytes
) -> None:
    with echo_connect(limited_server) as ws:
        ws.send(b"before")
        assert ws.recv(timeout=TIMEOUT) == b"before"
        ws.send(message)
        code, _reason = close_frame_of(ws, TIMEOUT)  # nothing was echoed first
    assert code == 1009
    # Others are still served.
    with echo_connect(limited_server) as ws:
        ws.send("still there?")
        assert ws.recv(timeout=TIMEOUT) == "still there?"


def test_uvicorn_default_limit_is_16_mib(default_server: RunningServer) -> None:
    with echo_connect(default_server) as ws:
        ws.send(b"\x00" * DEFAULT_LIMIT)
        assert len(ws.recv(timeout=TIMEOUT)) == DEFAULT_LIMIT
        ws.send(b"\x00" * (DEFAULT_LIMIT + 1))
        code, _reason = close_frame_of(ws, TIMEOUT)
    assert code == 1009
