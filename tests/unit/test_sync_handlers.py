"""Blocking user code runs off the event loop, so WebSockets keep answering meanwhile.

A ``def`` HTTP handler runs in a worker thread (the event loop's default
executor); a sync generator returned as a streamed body is stepped in one,
one ``next()`` per chunk, and closed in one. Each scenario here drives the
App in process, as an ASGI server would, with a WebSocket echo open on the
same App: while the user's code blocks, the echo must answer promptly, and
before the blocking code ends. On the event loop, it could not answer
until then. The same under uvicorn with real clients:
tests/e2e/test_sync_handlers_e2e.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import pytest

from micropie import App, HttpMiddleware, Request, WebSocket, WebSocketMiddleware
from tests.helpers.asgi import CONNECT, http_scope, text_frame, websocket_scope
from tests.helpers.support import micropie_errors

#: How long the user's code blocks, and how soon the echo must answer meanwhile.
BLOCK = 0.5
PROMPT = 0.2
#: The bound of every other wait: a regression fails the test instead of hanging it.
TIMEOUT = 5.0

#: Set by a middleware, read by the handlers: the context goes with them into the thread.
visitor: contextvars.ContextVar[str] = contextvars.ContextVar("visitor")


class Blocking(App):
    """Handlers that block as a database driver or time.sleep() does; an echo beside them.

    ``events`` records, in order, when the blocking code starts and ends and
    when the echo answers, each with the time it happened.
    """

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, float]] = []
        self.threads: dict[str, int] = {}
        self.release = threading.Event()  # lets held() go on

    def note(self, event: str) -> None:
        self.events.append((event, time.monotonic()))

    def sleepy(self) -> str:
        self.threads["sleepy"] = threading.get_ident()
        self.note("asleep")
        time.sleep(BLOCK)
        self.note("awake")
        return "rested"

    def sleepy_stream(self) -> Iterator[str]:
        yield "first\n"
        self.threads["sleepy_stream"] = threading.get_ident()
        self.note("asleep")
        time.sleep(BLOCK)
        self.note("awake")
        yield "second\n"

    def held(self) -> Iterator[str]:
        """Blocks between its chunks until the test releases it."""
        try:
            yield "first\n"
            self.note("holding")
            self.release.wait(TIMEOUT)
            self.note("released")
            yield "second\n"
            self.note("after the second")  # never: the client left before
        finally:
            self.threads["finally"] = threading.get_ident()
            self.note("finally")

    def slow_cleanup(self) -> Iterator[str]:
        """Its cleanup blocks, as closing a database cursor may."""
        try:
            yield "first\n"
            self.release.wait(TIMEOUT)
            yield "second\n"
        finally:
            self.note("asleep")
            time.sleep(BLOCK)
            self.note("awake")

    def fail(self) -> str:
        self.threads["fail"] = threading.get_ident()
        raise LookupError("the row is gone")

    def thread(self) -> str:
        return threading.current_thread().name

    def who(self) -> str:
        return f"{visitor.get('nobody')} at {self.request.path}"

    def who_streamed(self) -> Iterator[str]:
        yield visitor.get("nobody")
        yield f" in {threading.current_thread().name != 'MainThread'}"

    def start_job(self) -> str:
        async def job() -> None:
            pass

        self.background_tasks.create_task(job())
        return "started"

    async def ws_echo(self, ws: WebSocket) -> None:
        await ws.accept()
        async for text in ws.iter_text():
            await ws.send_text(text)
            self.note("echoed")


class NamesTheVisitor(HttpMiddleware):
    async def before_request(self, request: Request) -> None:
        visitor.set("ada")


# In process: the App driven as an ASGI server drives it.


class Http:
    """One HTTP request to *app*; the client may leave (``leave()``) midway.

    Every message the App sends is kept in ``sent``; the body chunks also go
    to ``chunks``, to wait for, until the client leaves: after that, sends
    are dropped silently, as uvicorn and the other servers do.
    """

    def __init__(self, app: App, path: str) -> None:
        self.app, self.path = app, path
        self.sent: list[MutableMapping[str, Any]] = []
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._requested = False
        self._left = asyncio.Event()
        self.task = asyncio.ensure_future(self._serve())

    async def _serve(self) -> None:
        await self.app(http_scope(self.path), self._receive, self._send)

    async def _receive(self) -> dict[str, Any]:
        if not self._requested:
            self._requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._left.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and not self._left.is_set():
            await self.chunks.put(message.get("body", b""))

    async def next_chunk(self) -> bytes:
        return await asyncio.wait_for(self.chunks.get(), TIMEOUT)

    def leave(self) -> None:
        self._left.set()

    async def done(self) -> list[MutableMapping[str, Any]]:
        await asyncio.wait_for(self.task, TIMEOUT)
        return self.sent

    def bodies(self) -> list[bytes]:
        return [m.get("body", b"") for m in self.sent if m["type"] == "http.response.body"]


class Echo:
    """A WebSocket connection to ``/echo`` of *app*."""

    def __init__(self, app: App) -> None:
        self._inbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        self._inbox.put_nowait(CONNECT)
        self.task = asyncio.ensure_future(
            app(websocket_scope("/echo"), self._inbox.get, self._outbox.put)
        )

    async def _next(self) -> MutableMapping[str, Any]:
        return await asyncio.wait_for(self._outbox.get(), TIMEOUT)

    async def opened(self) -> Echo:
        assert (await self._next())["type"] == "websocket.accept"
        return self

    async def echo(self, text: str) -> str:
        await self._inbox.put(text_frame(text))
        answer = await self._next()
        assert answer["type"] == "websocket.send", answer
        return str(answer["text"])

    async def close(self) -> None:
        await self._inbox.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.task, TIMEOUT)


async def until(app: Blocking, event: str) -> None:
    """Wait until *app* noted *event*, letting the event loop turn meanwhile."""
    deadline = time.monotonic() + TIMEOUT
    while not any(name == event for name, _ in app.events):
        assert time.monotonic() < deadline, f"{event!r} never came: {app.events}"
        await asyncio.sleep(0.001)


def when(app: Blocking, event: str) -> float:
    return next(at for name, at in app.events if name == event)


def order(app: Blocking) -> list[str]:
    return [name for name, _ in app.events]


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 3 * TIMEOUT))


def test_a_def_handler_that_blocks_leaves_websockets_answering() -> None:
    app = Blocking()

    async def scenario() -> list[MutableMapping[str, Any]]:
        ws = await Echo(app).opened()
        request = Http(app, "/sleepy")
        await until(app, "asleep")
        assert await ws.echo("still here?") == "still here?"
        sent = await request.done()
        await ws.close()
        return sent

    sent = run(scenario)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"rested"
    # The echo answered while the handler slept, and promptly.
    assert order(app) == ["asleep", "echoed", "awake"]
    assert when(app, "echoed") - when(app, "asleep") < PROMPT
    assert app.threads["sleepy"] != threading.get_ident()


def test_a_sync_generator_that_blocks_between_chunks_leaves_websockets_answering() -> None:
    app = Blocking()

    async def scenario() -> list[bytes]:
        ws = await Echo(app).opened()
        request = Http(app, "/sleepy_stream")
        assert await request.next_chunk() == b"first\n"
        await until(app, "asleep")
        assert await ws.echo("still here?") == "still here?"
        await request.done()
        await ws.close()
        return request.bodies()

    assert run(scenario) == [b"first\n", b"second\n", b""]
    assert order(app) == ["asleep", "echoed", "awake"]
    assert when(app, "echoed") - when(app, "asleep") < PROMPT
    assert app.threads["sleepy_stream"] != threading.get_ident()


def test_a_sync_generator_blocked_when_the_client_leaves_is_closed_once_its_step_returns() -> None:
    """The step under way cannot be interrupted: the generator is closed, in a
    worker thread, as soon as it returns; what that step yielded is never sent."""
    app = Blocking()

    async def scenario() -> Http:
        ws = await Echo(app).opened()
        request = Http(app, "/held")
        assert await request.next_chunk() == b"first\n"
        await until(app, "holding")
        request.leave()
        assert await ws.echo("still here?") == "still here?"  # the loop is free meanwhile
        await asyncio.sleep(0)
        assert not request.task.done()  # the step still runs: the generator cannot close yet
        app.release.set()
        await request.done()
        await ws.close()
        return request

    request = run(scenario)
    assert order(app) == ["holding", "echoed", "released", "finally"]
    assert b"second\n" not in request.bodies()
    assert app.threads["finally"] != threading.get_ident()


def test_a_sync_generator_is_closed_even_when_the_server_gives_up_waiting_for_its_step() -> None:
    """A server past its graceful shutdown cancels the request, and may cancel it
    again while the generator's step still blocks: the cancellation goes on up at
    once, and the generator is closed, in a worker thread, when the step returns."""
    app = Blocking()

    async def scenario() -> None:
        request = Http(app, "/held")
        assert await request.next_chunk() == b"first\n"
        await until(app, "holding")
        for _ in range(2):  # the first wakes the stream; the second, its closing
            request.task.cancel()
            await asyncio.sleep(0.01)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(request.task, TIMEOUT)
        assert "finally" not in order(app)  # the step still blocks
        app.release.set()
        await until(app, "finally")

    run(scenario)
    assert order(app) == ["holding", "released", "finally"]
    assert app.threads["finally"] != threading.get_ident()


def test_a_sync_generator_whose_cleanup_blocks_leaves_websockets_answering() -> None:
    app = Blocking()

    async def scenario() -> None:
        ws = await Echo(app).opened()
        request = Http(app, "/slow_cleanup")
        assert await request.next_chunk() == b"first\n"
        request.leave()
        app.release.set()
        await until(app, "asleep")  # the generator's finally
        assert await ws.echo("still here?") == "still here?"
        await request.done()  # the request ends once its generator is closed
        assert order(app)[-1] == "awake"
        await ws.close()

    run(scenario)
    assert order(app) == ["asleep", "echoed", "awake"]
    assert when(app, "echoed") - when(app, "asleep") < PROMPT


def test_a_def_handler_that_raises_is_a_500_with_its_traceback_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Blocking()

    async def scenario() -> list[MutableMapping[str, Any]]:
        return await Http(app, "/fail").done()

    sent = run(scenario)
    assert (sent[0]["status"], sent[1]["body"]) == (500, b"Internal Server Error")
    [record] = micropie_errors(caplog)
    assert record.getMessage() == "HTTP handler fail failed"
    assert record.exc_info is not None and isinstance(record.exc_info[1], LookupError)
    # The traceback reaches into the handler, which ran in a worker thread.
    frames = traceback.extract_tb(record.exc_info[2])
    assert frames[-1].name == "fail" and frames[-1].filename == __file__
    assert app.threads["fail"] != threading.get_ident()


def test_the_context_goes_with_the_handler_and_each_step_into_the_thread() -> None:
    """``self.request`` and a context variable that a middleware set are seen
    in a def handler; a sync generator's steps see the sender's context, as an
    async generator does (by then, the request is no longer current)."""
    app = Blocking()
    app.middlewares.append(NamesTheVisitor())

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        handled = await Http(app, "/who").done()
        streamed = Http(app, "/who_streamed")
        await streamed.done()
        return [m.get("body", b"") for m in handled[1:]], streamed.bodies()

    handled, streamed = run(scenario)
    assert handled == [b"ada at /who"]
    assert streamed == [b"ada", b" in True", b""]


def test_def_handlers_run_in_the_event_loops_default_executor() -> None:
    """Its size is the application's to choose: ``loop.set_default_executor()``."""
    app = Blocking()

    async def scenario() -> bytes:
        pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="app-pool")
        asyncio.get_running_loop().set_default_executor(pool)
        sent = await Http(app, "/thread").done()
        return bytes(sent[1]["body"])

    assert run(scenario).startswith(b"app-pool")


def test_a_def_handler_cannot_start_a_background_task_and_is_told_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No event loop runs in the worker thread: the error says to make it async def."""

    async def scenario() -> list[MutableMapping[str, Any]]:
        return await Http(Blocking(), "/start_job").done()

    assert run(scenario)[0]["status"] == 500
    [record] = micropie_errors(caplog)
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
    assert "call it from an async def handler" in str(record.exc_info[1])
    assert "a def handler runs in a worker thread" in str(record.exc_info[1])


def test_a_def_startup_handler_runs_on_the_event_loop() -> None:
    """Startup and shutdown handlers stay on the loop (nothing is served meanwhile),
    where a def one can start tasks and make asyncio objects, as 0.x apps do."""
    seen: list[bool] = []

    class Starts(App):
        def __init__(self) -> None:
            super().__init__()
            self.startup_handlers.append(self._start)

        def _start(self) -> None:
            asyncio.get_running_loop()  # raises in a worker thread
            seen.append(threading.current_thread() is threading.main_thread())

    async def scenario() -> list[dict[str, Any]]:
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return next(messages)

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(dict(message))

        await Starts()({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        return sent

    assert [m["type"] for m in run(scenario)] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert seen == [True]


class SyncBefore(HttpMiddleware):
    def before_request(self, request: Request) -> None:  # type: ignore[override]
        pass


class SyncAfterWebSocket(WebSocketMiddleware):
    def after_websocket(self, request: Any) -> None:  # type: ignore[override]
        pass


@pytest.mark.parametrize(
    ("middleware", "hook"),
    [
        (SyncBefore, "SyncBefore.before_request"),
        (SyncAfterWebSocket, "SyncAfterWebSocket.after_websocket"),
    ],
)
def test_a_middleware_with_a_def_hook_is_refused_when_it_is_added(
    middleware: type[HttpMiddleware | WebSocketMiddleware], hook: str
) -> None:
    message = f"{hook} must be 'async def': MicroPie awaits middleware hooks on the event loop"
    with pytest.raises(TypeError, match=message):
        App(middlewares=[middleware()])
    app = App()
    with pytest.raises(TypeError, match=message):
        app.middlewares.append(middleware())
    assert list(app.middlewares) == []


def test_an_async_hook_behind_a_wrapping_decorator_is_taken() -> None:
    def traced(hook: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(hook)
        def wrapper(*args: Any) -> Any:
            return hook(*args)  # the coroutine, handed on

        return wrapper

    class Stamp(HttpMiddleware):
        @traced
        async def before_request(self, request: Request) -> None:
            request.session["stamped"] = True

        async def after_request(self, request: Request, *answer: Any) -> None:
            pass

    class Site(App):
        async def index(self) -> str:
            return str(self.request.session.get("stamped"))

    from micropie.testing import TestClient

    assert TestClient(Site(middlewares=[Stamp()])).get("/").text == "True"


def test_a_def_websocket_handler_is_refused_when_the_class_is_made() -> None:
    with pytest.raises(TypeError, match="WebSocket handler 'ws_feed' must be 'async def'"):

        class Feed(App):
            def ws_feed(self, ws: WebSocket) -> None:
                pass


def test_a_sync_generator_keeps_its_context_from_one_step_to_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What a step sets, the next step sees, and the token it got resets it at
    the end: one context for the whole stream, as one task's for an async one."""
    seen = contextvars.ContextVar("seen", default="unset")
    resets: list[str] = []

    def chunks() -> Iterator[bytes]:
        token = seen.set("in the stream")
        try:
            yield b"first\n"
            yield f"then {seen.get()}\n".encode()
        finally:
            seen.reset(token)  # a ValueError if this step ran in another context
            resets.append(seen.get())

    class Streams(App):
        async def stream(self) -> Iterator[bytes]:
            return chunks()

    from micropie.testing import TestClient

    response = TestClient(Streams()).get("/stream")
    assert response.text == "first\nthen in the stream\n"
    assert resets == ["unset"]
    assert micropie_errors(caplog) == []
