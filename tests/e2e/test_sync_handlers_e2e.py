"""End-to-end: under uvicorn, code that blocks in a def handler or a sync generator
leaves the process's WebSockets answering.

uvicorn serves tests/helpers/apps/blocking_app.py, whose handlers print what
they do. A real WebSocket client (``websockets``) echoes a message while a
real HTTP client (httpx) waits on a handler that sleeps: the echo must come
back promptly, and before the handler wakes up, which the order of the
server's output shows. In process: tests/unit/test_sync_handlers.py.
"""

from __future__ import annotations

import concurrent.futures
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.clients import receive, ws_connect
from tests.helpers.servers import RunningServer, run_uvicorn

APP = "tests.helpers.apps.blocking_app:app"
#: How soon the echo must answer while the handler sleeps (it sleeps 0.5 s).
PROMPT = 0.2
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_uvicorn(APP) as running:
        yield running


def get(server: RunningServer, path: str) -> httpx.Response:
    # trust_env=False: never through a proxy from the environment.
    return httpx.get(f"{server.http_url}{path}", timeout=TIMEOUT, trust_env=False)


def echo_while(server: RunningServer, token: str, start: int) -> float:
    """Once the server printed ``asleep <token>``, echo *token*; return how long it took."""
    with ws_connect(f"{server.ws_url}/echo") as ws:
        server.wait_for_output(f"asleep {token}", since=start, timeout=TIMEOUT)
        began = time.monotonic()
        ws.send(token)
        assert receive(ws) == token
        return time.monotonic() - began


def assert_echoed_while_asleep(server: RunningServer, token: str, start: int) -> None:
    output = server.wait_for_output(f"awake {token}", since=start, timeout=TIMEOUT)
    lines = output.splitlines()
    assert lines.index(f"asleep {token}") < lines.index(f"echoed {token}")
    assert lines.index(f"echoed {token}") < lines.index(f"awake {token}")


@pytest.mark.parametrize(
    ("handler", "body"),
    [("sleepy", "rested"), ("sleepy_stream", "first\nsecond\n")],
    ids=["def_handler", "sync_generator"],
)
def test_a_handler_that_blocks_leaves_websockets_answering(
    server: RunningServer, handler: str, body: str
) -> None:
    token = secrets.token_hex(4)
    start = server.mark()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(get, server, f"/{handler}/{token}")
        elapsed = echo_while(server, token, start)
        response = pending.result(TIMEOUT)
    assert (response.status_code, response.text) == (200, body)
    assert_echoed_while_asleep(server, token, start)
    assert elapsed < PROMPT


def test_a_sync_generator_is_closed_in_a_worker_thread_when_the_client_leaves(
    server: RunningServer,
) -> None:
    token = secrets.token_hex(4)
    start = server.mark()
    with (
        httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as client,
        client.stream("GET", f"/ticks/{token}") as response,
    ):
        assert next(response.iter_raw()).startswith(b"tick 0")
    # Within a bounded time of the departure, its finally runs, off the event loop...
    output = server.wait_for_output(f"finally {token} in ", since=start, timeout=TIMEOUT)
    [closed] = [line for line in output.splitlines() if line.startswith(f"finally {token} ")]
    assert closed != f"finally {token} in MainThread"
    # ...and none of its steps after it: a later request's marker shows what came since.
    assert get(server, f"/marker/{token}").text == "marked"
    lines = server.wait_for_output(f"marker {token}", since=start, timeout=TIMEOUT).splitlines()
    after = lines[lines.index(closed) :]
    assert [line for line in after if line.startswith(f"step {token} ")] == []
    assert "Traceback" not in server.output_since(start)


def test_a_def_handler_that_raises_is_a_500_with_its_traceback_logged(
    server: RunningServer,
) -> None:
    token = secrets.token_hex(4)
    start = server.mark()
    response = get(server, f"/fail/{token}")
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    assert token not in response.text
    output = server.wait_for_output(f"LookupError: row {token} is gone", since=start)
    assert "HTTP handler fail failed" in output and "Traceback" in output
    assert f"failing {token} in MainThread" not in output  # it ran in a worker thread
