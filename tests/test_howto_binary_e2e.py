"""End-to-end: the server's message size limit (docs/source/howto/binary.rst).

examples/echo/app.py, saved as the page says (``app.py``, alone in a
directory), under a real uvicorn started there with the page's command
(``--ws-max-size 65536``) and with uvicorn's default limit, under each of
uvicorn's WebSocket implementations.
"""

from __future__ import annotations

import shlex
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.servers import REPO_ROOT, RunningServer, run_uvicorn
from tests.support import captions_of_file

pytestmark = pytest.mark.e2e

TIMEOUT = 10.0
SETTLE = 0.3  # time for the server to log anything it would log
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
    directory = tmp_path_factory.mktemp("reader")
    shutil.copy(REPO_ROOT / EXAMPLE, directory / "app.py")
    return directory


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def limited_server(
    request: pytest.FixtureRequest, readers_directory: Path
) -> Iterator[RunningServer]:
    _uvicorn, app, *args = shlex.split(COMMAND)
    with run_uvicorn(app, *args, "--ws", request.param, cwd=readers_directory) as server:
        yield server


@pytest.fixture(scope="module")
def default_server(readers_directory: Path) -> Iterator[RunningServer]:
    with run_uvicorn("app:app", cwd=readers_directory) as server:
        yield server


def echo_connect(server: RunningServer) -> ClientConnection:
    # max_size=None: the client itself takes messages of any size.
    return connect(
        f"{server.ws_url}/echo",
        proxy=None,
        max_size=None,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    )


def close_frame_of(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        message = ws.recv(timeout=TIMEOUT)
        pytest.fail(f"expected the server to close, but it echoed {len(message)} bytes")
    frame = closed.value.rcvd
    assert frame is not None, "the server dropped the connection without a close frame"
    return frame.code, frame.reason


def assert_no_errors(server: RunningServer, mark: int) -> None:
    time.sleep(SETTLE)
    printed = server.output_since(mark)
    assert "Traceback" not in printed, printed
    assert "ERROR" not in printed, printed


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
    mark = limited_server.mark()
    with echo_connect(limited_server) as ws:
        ws.send(b"before")
        assert ws.recv(timeout=TIMEOUT) == b"before"
        ws.send(message)
        code, _reason = close_frame_of(ws)  # nothing was echoed first
    assert code == 1009
    # The handler's receive raised ConnectionClosed, which ends it quietly.
    assert_no_errors(limited_server, mark)
    # Others are still served.
    with echo_connect(limited_server) as ws:
        ws.send("still there?")
        assert ws.recv(timeout=TIMEOUT) == "still there?"


def test_uvicorn_default_limit_is_16_mib(default_server: RunningServer) -> None:
    with echo_connect(default_server) as ws:
        ws.send(b"\x00" * DEFAULT_LIMIT)
        assert len(ws.recv(timeout=TIMEOUT)) == DEFAULT_LIMIT
        ws.send(b"\x00" * (DEFAULT_LIMIT + 1))
        code, _reason = close_frame_of(ws)
    assert code == 1009
