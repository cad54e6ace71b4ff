"""End-to-end: the live feed of docs/source/howto/server-sent-events.rst under real servers.

The page's two files, ``examples/sse/app.py`` and ``examples/sse/index.html``,
are saved into an empty directory under the names the page gives them, and
served from there with ``uvicorn app:app`` (and hypercorn), as a reader
would. A real HTTP client (httpx) reads the event streams; nginx stands in
front of uvicorn for the proxy's part.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import REPO_ROOT, RunningServer, run_nginx, run_server, run_uvicorn
from tests.helpers.sse import FILES, save_feed
from tests.helpers.support import captions_of_file, require_program

TIMEOUT = 5.0
PAGE = REPO_ROOT / "docs" / "source" / "howto" / "server-sent-events.rst"
#: The command the page shows.
COMMAND = "uvicorn app:app --timeout-graceful-shutdown 5"


@pytest.fixture(scope="module")
def reader_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_feed(tmp_path_factory.mktemp("sse"))


@pytest.fixture(scope="module", params=["uvicorn", "hypercorn"])
def server(request: pytest.FixtureRequest, reader_dir: Path) -> Iterator[RunningServer]:
    with run_server(request.param, "app:app", cwd=reader_dir) as running:
        yield running


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    # trust_env=False: never through a proxy from the environment.
    with httpx.Client(base_url=server.http_url, timeout=TIMEOUT, trust_env=False) as client:
        yield client


class EventStream:
    """An open ``GET /events``, read one block (up to a blank line) at a time."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=TIMEOUT, trust_env=False)
        self._context = self._client.stream("GET", "/events", headers=headers)
        self.response = self._context.__enter__()
        self._chunks = self.response.iter_bytes()
        self._buffer = b""

    def next_block(self) -> str:
        """The next event or comment, without its blank line; each read waits at most TIMEOUT."""
        while b"\n\n" not in self._buffer:
            self._buffer += next(self._chunks)
        block, self._buffer = self._buffer.split(b"\n\n", 1)
        return block.decode("utf-8")

    def close(self) -> None:
        try:
            self._context.__exit__(None, None, None)
        finally:
            self._client.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def publish(http: httpx.Client, text: str) -> int:
    """Post *text*; return the ID the feed gave it."""
    response = http.post("/publish", data={"text": text})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/"
    return int(http.get("/stats").json()["last_id"])


def wait_for_listening(http: httpx.Client, count: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while (listening := http.get("/stats").json()["listening"]) != count:
        assert time.monotonic() < deadline, f"{listening} streams open, not {count}"
        time.sleep(0.02)


def test_the_page_shows_the_files_the_tests_run() -> None:
    for source, name in FILES.items():
        assert captions_of_file(PAGE, source) == [name]
    assert f"\n   {COMMAND}\n" in PAGE.read_text(encoding="utf-8")


def test_the_page_is_served_with_its_event_source(http: httpx.Client) -> None:
    response = http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert 'new EventSource("/events")' in response.text


def test_the_stream_says_what_it_is_and_how_to_reconnect(server: RunningServer) -> None:
    with EventStream(server.http_url) as stream:
        headers = stream.response.headers
        assert stream.response.status_code == 200
        assert headers["content-type"] == "text/event-stream"
        assert headers["cache-control"] == "no-cache"
        assert headers["x-accel-buffering"] == "no"
        assert "content-length" not in headers
        assert stream.next_block() == "retry: 3000"


def test_a_message_reaches_every_open_stream(server: RunningServer, http: httpx.Client) -> None:
    with EventStream(server.http_url) as one, EventStream(server.http_url) as two:
        # Each stream first replays what the feed kept: skip it.
        kept = min(http.get("/stats").json()["last_id"], 100)
        for stream in (one, two):
            assert stream.next_block() == "retry: 3000"
            for _ in range(kept):
                assert stream.next_block().startswith("id: ")
        event_id = publish(http, "hello\nworld")
        for stream in (one, two):
            assert stream.next_block() == f"id: {event_id}\ndata: hello\ndata: world"


def test_leaving_closes_the_stream_on_the_server(server: RunningServer, http: httpx.Client) -> None:
    wait_for_listening(http, 0)
    with EventStream(server.http_url) as stream:
        stream.next_block()
        wait_for_listening(http, 1)
    # The generator's finally ran: the feed no longer counts the stream.
    wait_for_listening(http, 0)


def test_last_event_id_resumes_after_the_last_event_seen(
    server: RunningServer, http: httpx.Client
) -> None:
    ids = [publish(http, text) for text in ("first", "second", "third")]
    with EventStream(server.http_url, {"Last-Event-ID": str(ids[0])}) as stream:
        assert stream.next_block() == "retry: 3000"
        assert stream.next_block() == f"id: {ids[1]}\ndata: second"
        assert stream.next_block() == f"id: {ids[2]}\ndata: third"
        fourth = publish(http, "fourth")
        assert stream.next_block() == f"id: {fourth}\ndata: fourth"


@pytest.mark.parametrize("value", [b"x", b"-1", b"1.5", b"1e3", "٣".encode()])
def test_a_bad_last_event_id_is_refused(http: httpx.Client, value: bytes) -> None:
    response = http.get("/events", headers={"Last-Event-ID": value})
    assert response.status_code == 400
    assert response.text == "Last-Event-ID must be the ID of an event, such as 42"


def test_publishing_wants_a_post_with_some_text(http: httpx.Client) -> None:
    response = http.get("/publish")
    assert (response.status_code, response.headers["allow"]) == (405, "POST")
    response = http.post("/publish", data={"text": "   "})
    assert (response.status_code, response.text) == (
        400,
        "the form field 'text' is missing or empty",
    )
    response = http.post("/publish", data={"text": "x" * 1001})
    assert (response.status_code, response.text) == (413, "a message has at most 1000 characters")


# With a heartbeat every 0.2 s, behind nginx, and at shutdown.


@pytest.fixture(scope="module")
def quick(reader_dir: Path) -> Iterator[RunningServer]:
    with run_uvicorn("quick:app", cwd=reader_dir) as running:
        yield running


def nginx_config(port: int, upstream: int) -> str:
    """A proxy to *upstream* that compresses event streams, and gives up on a silent
    upstream after 1 s.

    Compressing, nginx holds back what it proxies, unless the response says
    ``X-Accel-Buffering: no``: without that header no event came through
    this configuration (nor the headers), with it every one does.
    """
    return f"""events {{}}
http {{
    gzip on;
    gzip_types text/event-stream;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 1s;
        }}
    }}
}}
"""


def test_a_heartbeat_comes_when_nothing_happens(quick: RunningServer) -> None:
    with EventStream(quick.http_url) as stream:
        assert stream.next_block() == "retry: 3000"
        blocks = [stream.next_block() for _ in range(3)]
    assert blocks == [": keep-alive"] * 3


def test_through_nginx_events_arrive_at_once_and_the_heartbeat_keeps_the_stream(
    quick: RunningServer, tmp_path: Path
) -> None:
    nginx = require_program("nginx")
    with (
        run_nginx(nginx, tmp_path, lambda port: nginx_config(port, quick.port)) as proxy,
        httpx.Client(base_url=quick.http_url, timeout=TIMEOUT, trust_env=False) as http,
        EventStream(proxy.http_url, {"Accept-Encoding": "gzip"}) as stream,
    ):
        assert stream.response.headers["server"].startswith("nginx")
        assert stream.response.headers["content-encoding"] == "gzip"
        assert stream.next_block() == "retry: 3000"
        last = http.get("/stats").json()["last_id"]
        for _ in range(min(last, 100)):
            assert stream.next_block().startswith("id: ")
        # Three times nginx's read timeout: only the heartbeat keeps the stream open.
        started = time.monotonic()
        while time.monotonic() - started < 3.0:
            assert stream.next_block() == ": keep-alive"
        # nginx does not hold the event back (X-Accel-Buffering: no).
        event_id = publish(http, "through the proxy")
        block = stream.next_block()
        while block == ": keep-alive":
            block = stream.next_block()
        assert block == f"id: {event_id}\ndata: through the proxy"


def test_sigterm_with_a_stream_open_stops_after_the_graceful_timeout(reader_dir: Path) -> None:
    """uvicorn waits for open responses before it stops, and a stream never ends by
    itself: --timeout-graceful-shutdown bounds the wait, as the page says."""
    with run_uvicorn("app:app", "--timeout-graceful-shutdown", "1", cwd=reader_dir) as server:
        with EventStream(server.http_url) as stream:
            assert stream.next_block() == "retry: 3000"
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            server.wait_for_exit(TIMEOUT)
            assert time.monotonic() - started < TIMEOUT
            # The stream ends with the server.
            with pytest.raises((httpx.HTTPError, StopIteration)):
                while True:
                    stream.next_block()
        assert "timeout graceful shutdown exceeded" in server.output  # it cut the stream
        # uvicorn ends by raising the signal it handled again.
        assert server.process.returncode in (0, -signal.SIGTERM), server.output
