"""End-to-end: under real servers, a streamed response stops when the client leaves.

uvicorn, hypercorn, granian and daphne serve tests/helpers/apps/streams_app.py; a real
HTTP client (httpx) reads a few chunks of a stream and hangs up. The generators print
each step and their ``finally`` to the server's output, where the test
finds them: the ``finally`` must come within a bounded time, and no step
after it. That no step follows is checked against a marker printed by a
later request, never by sleeping and looking for an absence.
"""

from __future__ import annotations

import secrets
import signal
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.servers import RunningServer, run_server

SERVERS = ["uvicorn", "hypercorn", "granian", "daphne"]
TIMEOUT = 5.0
APP = "tests.helpers.apps.streams_app:app"


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with run_server(request.param, APP) as running:
        yield running


def read_then_leave(server: RunningServer, path: str, chunks: int) -> list[bytes]:
    """GET *path*, read *chunks* chunks of the body, and close the connection."""
    received: list[bytes] = []
    # trust_env=False: never through a proxy from the environment.
    with (
        httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as client,
        client.stream("GET", path) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_raw():
            received.append(chunk)
            if len(received) >= chunks:
                break
    return received


def steps_after(output: str, token: str) -> list[str]:
    """The ``step`` lines of *token* printed after its ``finally`` line."""
    lines = output.splitlines()
    end = lines.index(f"finally {token}")
    return [line for line in lines[end:] if line.startswith(f"step {token} ")]


def mark(server: RunningServer, token: str) -> str:
    """Have the server print a marker, and return all it printed up to there."""
    response = httpx.get(f"{server.http_url}/marker/{token}", timeout=TIMEOUT, trust_env=False)
    assert response.text == "marked"
    return server.wait_for_output(f"marker {token}", timeout=TIMEOUT)


@pytest.mark.parametrize("path", ["waiting", "endless"])
def test_the_generator_is_closed_when_the_client_leaves(server: RunningServer, path: str) -> None:
    token = secrets.token_hex(4)
    start = server.mark()
    received = read_then_leave(server, f"/{path}/{token}", chunks=2)
    assert received
    # Within a bounded time of the departure, the generator's finally runs...
    server.wait_for_output(f"finally {token}", since=start, timeout=TIMEOUT)
    # ...and nothing of it runs after: a later request's marker shows what came since.
    output = mark(server, token)
    assert steps_after(output, token) == []
    assert "Traceback" not in server.output_since(start)


def test_a_stream_read_to_its_end_is_whole(server: RunningServer) -> None:
    """Watching for a departure does not cut short a stream that the client reads to the end."""
    token = secrets.token_hex(4)
    with httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as client:
        for _ in range(3):  # on one kept-alive connection
            response = client.get(f"/finite/{token}")
            assert response.status_code == 200
            assert response.text == "".join(f"line {n}\n" for n in range(50))


def test_a_stream_open_at_shutdown_is_closed_after_the_graceful_timeout() -> None:
    """uvicorn waits for open responses at SIGTERM; past --timeout-graceful-shutdown it
    cancels them, and the generator's finally still runs before the process ends."""
    token = secrets.token_hex(4)
    with (
        run_server("uvicorn", APP, "--timeout-graceful-shutdown", "1") as server,
        httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as client,
        client.stream("GET", f"/waiting/{token}") as response,
    ):
        chunks = response.iter_raw()
        assert next(chunks).startswith(b"tick 0")
        server.process.send_signal(signal.SIGTERM)
        server.wait_for_exit(TIMEOUT)
        assert f"finally {token}" in server.output
