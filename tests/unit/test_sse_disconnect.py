"""A streamed response stops when its client leaves, and its generator is closed.

Servers drop what is sent to a departed client without a word (uvicorn,
hypercorn, daphne, granian), so MicroPie watches ``receive()`` for
``http.disconnect`` while it streams. These tests drive the App with the
test client (which leaves after ``max_chunks``) and with a bare ASGI server
of their own that drops sends silently, as those servers do; the real
servers are in ``test_sse_disconnect_e2e.py``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from micropie import App
from micropie.testing import TestClient
from tests.helpers.support import micropie_errors

TIMEOUT = 5.0
#: How long the generators that never wait would run if nothing stopped them:
#: bounded, so that a regression fails the test instead of hanging it.
ENDLESS = 100_000


class Steps(App):
    """Streams whose steps, and whose end, are written down in ``self.steps``."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[Any] = []

    async def waiting(self) -> AsyncIterator[str]:
        """Yields, then waits for an hour: only a cancellation ends the wait."""
        try:
            for n in itertools.count():
                self.steps.append(n)
                yield f"{n}\n"
                await asyncio.sleep(0 if n < 2 else 3600)
        except asyncio.CancelledError:
            self.steps.append("cancelled")
            raise
        except GeneratorExit:
            self.steps.append("closed")
            raise
        finally:
            self.steps.append("finally")

    def endless_sync(self) -> Iterator[bytes]:
        """Never waits: only the chunks it sends give the event loop a turn."""
        try:
            for n in range(ENDLESS):
                self.steps.append(n)
                yield b"x" * 100
        finally:
            self.steps.append("finally")

    async def endless_async(self) -> AsyncIterator[bytes]:
        """An async generator that never waits either: ``endless_sync``'s chunks, and its steps."""
        chunks = self.endless_sync()
        try:
            for chunk in chunks:
                yield chunk
        finally:
            chunks.close()  # its finally notes the end

    async def swallowing(self) -> AsyncIterator[str]:
        """Catches the cancellation and carries on, as it should not."""
        for n in range(ENDLESS):
            self.steps.append(n)
            try:
                yield f"{n}\n"
                await asyncio.sleep(3600 if n == 2 else 0)
            except asyncio.CancelledError:
                self.steps.append("swallowed")

    async def finite(self) -> AsyncIterator[str]:
        try:
            for n in range(3):
                self.steps.append(n)
                yield f"{n}\n"
                await asyncio.sleep(0)
        finally:
            self.steps.append("finally")

    async def slow_cleanup(self) -> AsyncIterator[str]:
        try:
            yield "one\n"
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.01)  # cleanup that waits, as closing a connection does
            self.steps.append("cleaned up")


# The test client: it leaves after max_chunks.


def test_a_waiting_generator_is_cancelled_when_the_client_leaves(
    make_client: Callable[..., TestClient],
) -> None:
    app = Steps()
    response = make_client(app).get("/waiting", max_chunks=3)
    assert response.chunks == [b"0\n", b"1\n", b"2\n"]
    assert not response.complete
    # Left while the generator waited: the wait is cancelled, and nothing runs after.
    assert app.steps == [0, 1, 2, "cancelled", "finally"]


@pytest.mark.parametrize("path", ["/endless_sync", "/endless_async"])
def test_a_generator_that_never_waits_stops_when_the_client_leaves(
    make_client: Callable[..., TestClient], path: str
) -> None:
    app = Steps()
    response = make_client(app).get(path, max_chunks=5)
    assert len(response.chunks) == 5
    assert app.steps[-1] == "finally"
    # The test client's next send raises, as ASGI 2.4 servers do: one step more at most.
    assert app.steps[:-1] == list(range(len(app.steps) - 1))
    assert len(app.steps) - 1 <= 6


def test_a_finished_stream_is_unchanged(make_client: Callable[..., TestClient]) -> None:
    app = Steps()
    response = make_client(app).get("/finite")
    assert response.chunks == [b"0\n", b"1\n", b"2\n", b""]
    assert response.complete
    assert app.steps == [0, 1, 2, "finally"]


def test_a_cleanup_that_waits_runs_to_its_end(make_client: Callable[..., TestClient]) -> None:
    app = Steps()
    response = make_client(app).get("/slow_cleanup", max_chunks=1)
    assert response.chunks == [b"one\n"]
    assert app.steps == ["cleaned up"]


def test_max_chunks_must_be_a_positive_int(make_client: Callable[..., TestClient]) -> None:
    client = make_client(Steps())
    for wrong in (0, -1, 1.5, "3", True):
        with pytest.raises(ValueError, match="max_chunks must be a positive int"):
            client.get("/finite", max_chunks=wrong)


# A bare ASGI server that drops sends to a departed client without a word.


class SilentServer:
    """Serves one request to *app*; the client leaves after *leave_after* body chunks.

    From then on, sends are dropped and never fail, as uvicorn, hypercorn,
    daphne and granian do; ``receive()`` answers ``http.disconnect``.
    """

    def __init__(self, app: Any, *, leave_after: int, body: list[bytes] | None = None) -> None:
        self.app = app
        self.leave_after = leave_after
        self.body = list(body or [b""])
        self.chunks: list[bytes] = []
        self.dropped = 0
        self.left = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        if self.body:
            part = self.body.pop(0)
            return {"type": "http.request", "body": part, "more_body": bool(self.body)}
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.left.is_set():
            self.dropped += 1
            return
        if message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))
            if len(self.chunks) >= self.leave_after:
                self.left.set()

    async def serve(self, path: str, method: str = "GET") -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "method": method,
            "path": path,
            "query_string": b"",
            "headers": [],
        }
        await asyncio.wait_for(self.app(scope, self.receive, self.send), TIMEOUT)


@pytest.mark.parametrize("path", ["/waiting", "/endless_sync", "/endless_async", "/swallowing"])
def test_streams_stop_on_a_server_that_drops_sends_silently(path: str) -> None:
    app = Steps()
    server = SilentServer(app, leave_after=3)
    asyncio.run(server.serve(path))
    if path == "/swallowing":
        assert app.steps == [0, 1, 2, "swallowed", 3]  # one more chunk, then stopped
    elif path == "/waiting":
        assert app.steps == [0, 1, 2, "cancelled", "finally"]
        assert server.dropped == 0
    else:
        # Noticed within the chunks between two turns of the event loop.
        assert app.steps[-1] == "finally"
        steps = app.steps[:-1]
        assert steps == list(range(len(steps)))
        assert len(steps) <= 3 + 16


def test_the_rest_of_an_unread_body_does_not_hide_the_departure() -> None:
    app = Steps()
    server = SilentServer(app, leave_after=2, body=[b"a" * 10, b"b" * 10, b"c" * 10])
    asyncio.run(server.serve("/waiting", method="POST"))
    assert server.body == []  # read to its end while the stream ran
    assert app.steps == [0, 1, "cancelled", "finally"]


def test_the_task_is_not_left_cancelled() -> None:
    """The watch cancels the task to wake the stream, and takes the cancellation back."""

    async def main() -> tuple[int, bool]:
        for path in ("/waiting", "/swallowing", "/endless_sync"):
            await SilentServer(Steps(), leave_after=3).serve(path)
        task = asyncio.current_task()
        assert task is not None
        # A cancellation left behind would end the next await of this task.
        await asyncio.sleep(0.01)
        return task.cancelling(), True

    assert asyncio.run(main()) == (0, True)


def test_a_server_cancelling_the_app_still_closes_the_stream() -> None:
    """A shutdown past its grace period cancels the app: the stream's finally runs,
    and the cancellation goes on up, for the server to see."""
    app = Steps()

    async def main() -> None:
        server = SilentServer(app, leave_after=10**6)
        task = asyncio.ensure_future(server.serve("/waiting"))
        while len(server.chunks) < 3:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert app.steps == [0, 1, 2, "cancelled", "finally"]


def test_a_departure_during_the_last_send_ends_quietly(caplog: pytest.LogCaptureFixture) -> None:
    """The client leaves while the final chunk is being sent: nothing is raised or logged."""
    app = Steps()

    class SlowEnd(SilentServer):
        async def send(self, message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.left.set()  # the client goes while this send waits for the network
                await asyncio.sleep(0.01)
            await super().send(message)

    asyncio.run(SlowEnd(app, leave_after=10**6).serve("/finite"))
    assert app.steps == [0, 1, 2, "finally"]
    assert micropie_errors(caplog) == []


def test_a_receive_that_fails_leaves_the_stream_to_finish() -> None:
    app = Steps()

    class Broken(SilentServer):
        async def receive(self) -> dict[str, Any]:
            raise RuntimeError("this server cannot receive")

    server = Broken(app, leave_after=10**6)
    asyncio.run(server.serve("/finite"))
    assert server.chunks == [b"0\n", b"1\n", b"2\n", b""]
    assert app.steps == [0, 1, 2, "finally"]


@pytest.mark.parametrize("error", [RuntimeError, OSError])
def test_a_stream_whose_cleanup_fails_is_logged(
    caplog: pytest.LogCaptureFixture, error: type[Exception]
) -> None:
    class BadCleanup(App):
        async def stream(self) -> AsyncIterator[str]:
            try:
                yield "one\n"
                await asyncio.sleep(3600)
            finally:
                raise error("the cleanup failed")

    server = SilentServer(BadCleanup(), leave_after=1)
    asyncio.run(server.serve("/stream"))
    # Raised in place of the cancellation, the failure is the stream's own:
    # logged once, even an OSError, which only a send would mean the client left.
    [record] = micropie_errors(caplog)
    assert record.getMessage() == "a streamed response failed midway"
    assert record.exc_info is not None and isinstance(record.exc_info[1], error)


def test_an_oserror_of_the_stream_itself_is_logged(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    class Reader(App):
        def stream(self) -> Iterator[str]:
            yield "first part"
            raise FileNotFoundError("data.csv")

    response = make_client(Reader()).get("/stream")
    assert (response.content, response.complete) == (b"first part", False)
    [record] = micropie_errors(caplog)
    assert record.exc_info is not None and isinstance(record.exc_info[1], FileNotFoundError)


def test_a_stream_that_reads_the_body_gets_all_of_it_while_the_client_is_watched() -> None:
    """The disconnect watch reads receive() too: the body is read before it starts."""

    class Upload(App):
        async def up(self) -> Any:
            request = self.request

            async def steps() -> AsyncIterator[str]:
                yield "start;"
                yield f"got {len(await request.body())} bytes"

            return steps()

    async def scenario() -> list[bytes]:
        chunks = [b"x" * 100] * 10
        sent: list[bytes] = []

        async def receive() -> dict[str, Any]:
            await asyncio.sleep(0.001)  # a body that arrives as a network delivers it
            if chunks:
                chunk = chunks.pop(0)
                return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
            await asyncio.Event().wait()  # the client stays
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                sent.append(message["body"])

        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": "POST", "path": "/up", "query_string": b"",
            "headers": [(b"content-type", b"application/octet-stream")], "scheme": "http",
            "client": ("127.0.0.1", 1), "server": ("test", 80), "root_path": "",
        }  # fmt: skip
        await asyncio.wait_for(Upload()(scope, receive, send), 5)
        return sent

    assert asyncio.run(scenario()) == [b"start;", b"got 1000 bytes", b""]
