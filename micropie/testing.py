"""Drive an App in this process, with no server and no sockets.

``TestClient`` plays the part of the ASGI server and of a client at once: it
turns calls such as ``send_text("hi")`` into the ASGI messages a server would
deliver, and the application's messages back into return values.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as _json
import secrets
import weakref
from collections.abc import Awaitable, Coroutine, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import unquote, urlencode, urlsplit

from micropie._asgi import Message
from micropie.cookiejar import CookieJar
from micropie.request import Headers
from micropie.websocket import ConnectionClosed

__all__ = [
    "ClientDisconnected",
    "HTTPResponse",
    "TestClient",
    "WebSocketRejected",
    "WebSocketTestSession",
]

_T = TypeVar("_T")
ASGIApp = Any  # any ASGI 3 callable: app(scope, receive, send)


class WebSocketRejected(Exception):
    """The application refused the handshake; *status_code* is what a browser would see."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"the WebSocket handshake was rejected with HTTP {status_code}")
        #: The HTTP status of the rejection (403 for a close before accept).
        self.status_code = status_code


class ClientDisconnected(OSError):
    """Raised into the application when it sends to a client that has left, as servers do."""


class HTTPResponse:
    """What the application answered to :meth:`TestClient.request`."""

    def __init__(
        self,
        status_code: int,
        headers: list[tuple[bytes, bytes]],
        chunks: list[bytes],
        *,
        complete: bool = True,
    ) -> None:
        #: The HTTP status code.
        self.status_code = status_code
        #: The response headers, looked up without regard to case.
        self.headers = Headers(headers)
        #: The raw header pairs, repeated names included (``set-cookie``).
        self.raw_headers = headers
        #: The body as the application sent it, one item per ASGI message.
        self.chunks = chunks
        #: The response body.
        self.content = b"".join(chunks)
        #: False when the application stopped without the final chunk.
        self.complete = complete

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.content.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON; ``ValueError`` if it is not JSON."""
        return _json.loads(self.content)


class TestClient:
    """A client for *app* that runs it in this process, one call at a time.

    Use it as a context manager to run the application's startup and shutdown
    handlers around the block. It keeps the cookies the application sets, as a
    browser would. Calls wait at most *timeout* seconds for the application.
    """

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(self, app: ASGIApp, *, timeout: float = 5.0) -> None:
        self.app = app
        self.timeout = timeout
        self._cookies = CookieJar()
        self._loop = asyncio.new_event_loop()
        # A client nobody closes (as in a quick example) still releases its loop.
        weakref.finalize(self, self._loop.close)
        self._lifespan: _Lifespan | None = None
        # Set on the clients made by another_client(): the owner of the loop.
        self._loop_owner: TestClient | None = None

    @property
    def cookies(self) -> CookieJar:
        """Cookies set by the application, sent back with the requests they
        apply to, as a browser would: a :class:`~micropie.cookiejar.CookieJar`,
        which maps names to values. Assign a mapping to replace them all."""
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: Mapping[str, str]) -> None:
        jar = CookieJar()
        jar.update(cookies)
        self._cookies = jar

    def __enter__(self) -> TestClient:
        self._lifespan = _Lifespan(self)
        self._lifespan.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._lifespan is not None:
                self._lifespan.stop()
        finally:
            self.close()

    def close(self) -> None:
        """Release the event loop the client runs the application on."""
        if self._loop_owner is None and not self._loop.is_closed():
            self._loop.close()

    def another_client(self) -> TestClient:
        """A second visitor: a client of the same application, with cookies of
        its own, whose WebSockets can meet this client's (they share one event
        loop, which this client owns)."""
        other = TestClient.__new__(TestClient)
        other.app = self.app
        other.timeout = self.timeout
        other._cookies = CookieJar()
        other._loop = self._loop
        other._lifespan = None
        other._loop_owner = self._loop_owner or self
        return other

    def websocket_connect(
        self,
        path: str,
        *,
        subprotocols: Iterable[str] = (),
        headers: RequestHeaders | None = None,
        secure: bool = False,
    ) -> WebSocketTestSession:
        """Open a WebSocket to *path* (which may carry a query string).

        Returns a session to use in a ``with`` block; the handshake happens when
        the block is entered and raises :class:`WebSocketRejected` if refused.
        """
        scope = self._scope("websocket", path, _header_pairs(headers), secure)
        scope["scheme"] = "wss" if secure else "ws"
        scope["subprotocols"] = list(subprotocols)
        return WebSocketTestSession(self, scope)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: RequestHeaders | None = None,
        body: bytes = b"",
        json: Any = None,
        form: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        chunk_size: int | None = None,
        secure: bool = False,
        max_chunks: int | None = None,
    ) -> HTTPResponse:
        """Send a request for *path* and return the response.

        *headers* is a mapping, or a list of ``(name, value)`` pairs in which a
        name may come more than once. The body is *body* as it is, or *json*
        encoded as JSON, or *form* (with *files*, each ``(filename, content,
        content_type)``) encoded as a form, with a matching ``Content-Type``.
        With *chunk_size*, the body reaches the application in pieces of that
        size, as from a slow network.
        With *max_chunks*, the client leaves once that many chunks of the
        response body have come (an endless stream, say): the application
        then receives ``http.disconnect``, and a later send raises
        :class:`ClientDisconnected`.
        """
        pairs = _header_pairs(headers)
        content_type = None
        if json is not None:
            body = _json.dumps(json).encode("utf-8")
            content_type = "application/json"
        elif files:
            body, content_type = _encode_multipart(form or {}, files)
        elif form is not None:
            body = urlencode(form).encode("ascii")
            content_type = "application/x-www-form-urlencoded"
        if content_type is not None:
            _set_default(pairs, "content-type", content_type)
        if body:
            _set_default(pairs, "content-length", str(len(body)))
        scope = self._scope("http", path, pairs, secure)
        scope.update(method=method.upper(), scheme="https" if secure else "http")
        size = chunk_size or len(body) or 1
        chunks = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        if max_chunks is not None and (type(max_chunks) is not int or max_chunks < 1):
            raise ValueError(f"max_chunks must be a positive int, not {max_chunks!r}")
        return self._run(self._http(scope, chunks, max_chunks))

    def get(self, path: str, **options: Any) -> HTTPResponse:
        """Send a ``GET`` request; *options* are those of :meth:`request`."""
        return self.request("GET", path, **options)

    def head(self, path: str, **options: Any) -> HTTPResponse:
        """Send a ``HEAD`` request; *options* are those of :meth:`request`."""
        return self.request("HEAD", path, **options)

    def post(self, path: str, **options: Any) -> HTTPResponse:
        """Send a ``POST`` request; *options* are those of :meth:`request`."""
        return self.request("POST", path, **options)

    async def _http(
        self, scope: dict[str, Any], chunks: list[bytes], max_chunks: int | None = None
    ) -> HTTPResponse:
        sent: list[Message] = []
        done = asyncio.Event()
        left = asyncio.Event()  # done, or the client stopped reading
        pending = list(chunks)

        async def receive() -> Message:
            if pending:
                chunk = pending.pop(0)
                return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
            await left.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if left.is_set() and not done.is_set():
                raise ClientDisconnected("the test client has left the connection")
            sent.append(message)
            if message["type"] == "http.response.body":
                if not message.get("more_body"):
                    done.set()
                    left.set()
                elif max_chunks is not None and len(sent) - 1 >= max_chunks:
                    left.set()

        await self.app(scope, receive, send)
        if not sent or sent[0]["type"] != "http.response.start":
            raise AssertionError(f"the application sent no response start, but {sent!r}")
        response = HTTPResponse(
            sent[0]["status"],
            list(sent[0].get("headers", [])),
            [m.get("body", b"") for m in sent[1:]],
            complete=done.is_set(),
        )
        self._remember_cookies(response.raw_headers, scope["path"])
        return response

    def _scope(
        self, kind: str, path: str, headers: list[tuple[str, str]], secure: bool
    ) -> dict[str, Any]:
        parts = urlsplit(path)
        # Headers the caller gives replace the defaults (a Host of their own, say).
        _set_default(headers, "host", "testserver")
        cookie_header = self.cookies.header_for(unquote(parts.path or "/"))
        if cookie_header:
            _set_default(headers, "cookie", cookie_header)
        raw_headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        return {
            "type": kind,
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            # As servers do: "path" percent-decoded, "raw_path" as sent.
            "path": unquote(parts.path or "/"),
            "raw_path": (parts.path or "/").encode("utf-8"),
            "query_string": parts.query.encode("latin-1"),
            "root_path": "",
            "headers": raw_headers,
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 443 if secure else 80),
        }

    def _remember_cookies(self, headers: Iterable[tuple[bytes, bytes]], path: str) -> None:
        for name, value in headers:
            if name.lower() == b"set-cookie":
                self.cookies.set_from_header(value.decode("latin-1"), path)

    def _run(self, awaitable: Awaitable[_T]) -> _T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if isinstance(awaitable, Coroutine):
                awaitable.close()  # never to run: say so, rather than warn of it
            raise RuntimeError(
                "TestClient is synchronous: call it from plain (not async) test code"
            )
        try:
            return self._loop.run_until_complete(asyncio.wait_for(awaitable, self.timeout))
        except TimeoutError:
            raise TimeoutError(
                f"the application did not answer within {self.timeout} seconds"
            ) from None


RequestHeaders = Mapping[str, str] | Iterable[tuple[str, str]]


def _header_pairs(headers: RequestHeaders | None) -> list[tuple[str, str]]:
    """*headers* as ``(name, value)`` pairs, names in lower case, repeats kept."""
    items = headers.items() if isinstance(headers, Mapping) else headers or ()
    return [(name.lower(), value) for name, value in items]


def _set_default(headers: list[tuple[str, str]], name: str, value: str) -> None:
    if all(given != name for given, _ in headers):
        headers.append((name, value))


class WebSocketTestSession:
    """One WebSocket connection to the application, seen from the client's side."""

    __test__ = False

    def __init__(self, client: TestClient, scope: dict[str, Any]) -> None:
        self._client = client
        self._scope = scope
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._client_left = False
        self._app_task: asyncio.Task[None] | None = None
        #: The subprotocol the application chose in ``accept()``, if any.
        self.subprotocol: str | None = None
        #: The headers of the handshake response, ``set-cookie`` among them.
        self.response_headers: list[tuple[bytes, bytes]] = []
        #: The close code the application sent, once it has closed.
        self.close_code: int | None = None
        #: The close reason the application sent, once it has closed.
        self.close_reason: str | None = None

    def __enter__(self) -> WebSocketTestSession:
        try:
            self._client._run(self._handshake())
        except BaseException:
            self._abandon()
            raise
        return self

    def _abandon(self) -> None:
        """Stop an application that neither accepted nor refused in time."""
        task = self._app_task
        if task is not None and not task.done():
            self._client_left = True
            task.cancel()
            with contextlib.suppress(BaseException):
                self._client._loop.run_until_complete(task)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def send_text(self, data: str) -> None:
        """Send a text message to the application."""
        if not isinstance(data, str):
            raise TypeError(f"send_text() expects str, got {type(data).__name__}")
        data.encode("utf-8")  # a lone surrogate cannot go on the wire: fail as a client would
        self._deliver({"type": "websocket.receive", "text": str(data)})

    def send_bytes(self, data: bytes) -> None:
        """Send a binary message to the application."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"send_bytes() expects bytes, got {type(data).__name__}")
        self._deliver({"type": "websocket.receive", "bytes": bytes(data)})

    def receive_text(self) -> str:
        """Wait for a text message; :class:`~micropie.ConnectionClosed` if it closes instead."""
        data = self._client._run(self._next_data())
        if not isinstance(data, str):
            raise AssertionError(f"expected a text message, got binary {data!r}")
        return data

    def receive_bytes(self) -> bytes:
        """Wait for a binary message; :class:`~micropie.ConnectionClosed` if it closes instead."""
        data = self._client._run(self._next_data())
        if not isinstance(data, bytes):
            raise AssertionError(f"expected a binary message, got text {data!r}")
        return data

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Leave, with *code*, and wait for the application's handler to finish."""
        if not self._client_left:
            self._client_left = True
            self._to_app.put_nowait(
                {"type": "websocket.disconnect", "code": code, "reason": reason}
            )
        if self._app_task is not None:
            self._client._run(self._app_task)

    def _deliver(self, message: Message) -> None:
        if self._client_left:
            raise RuntimeError("this test session has already left the connection")
        if self.close_code is not None:
            raise ConnectionClosed(self.close_code, self.close_reason or "")
        self._to_app.put_nowait(message)

    async def _handshake(self) -> None:
        async def receive() -> Message:
            return await self._to_app.get()

        async def send(message: Message) -> None:
            if self._client_left:
                raise ClientDisconnected("the test client has left the connection")
            await self._from_app.put(message)

        self._to_app.put_nowait({"type": "websocket.connect"})
        self._app_task = asyncio.ensure_future(self._client.app(self._scope, receive, send))
        message = await self._next_message()
        if message["type"] == "websocket.close":
            self._client_left = True
            await self._app_task
            raise WebSocketRejected(403)
        if message["type"] == "websocket.http.response.start":
            self._client_left = True
            await self._app_task
            raise WebSocketRejected(message["status"])
        if message["type"] != "websocket.accept":
            raise AssertionError(f"expected websocket.accept, got {message!r}")
        self.subprotocol = message.get("subprotocol")
        self.response_headers = list(message.get("headers", []))
        self._client._remember_cookies(self.response_headers, self._scope["path"])

    async def _next_data(self) -> str | bytes:
        if self.close_code is not None:
            raise ConnectionClosed(self.close_code, self.close_reason or "")
        message = await self._next_message()
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
            self.close_reason = message.get("reason") or ""
            raise ConnectionClosed(self.close_code, self.close_reason)
        if message["type"] != "websocket.send":
            raise AssertionError(f"expected websocket.send, got {message!r}")
        text = message.get("text")
        return text if text is not None else message["bytes"]  # type: ignore[no-any-return]

    async def _next_message(self) -> Message:
        """The application's next message, or its exception if it fails first."""
        assert self._app_task is not None
        return await _next_from(self._from_app, self._app_task, "sending a message")


class _Lifespan:
    """The lifespan conversation of a TestClient's ``with`` block."""

    def __init__(self, client: TestClient) -> None:
        self._client = client
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._client._run(self._phase("startup"))

    def stop(self) -> None:
        self._client._run(self._phase("shutdown"))

    async def _phase(self, phase: str) -> None:
        if self._task is None:
            scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
            self._task = asyncio.ensure_future(
                self._client.app(scope, self._to_app.get, self._from_app.put)
            )
        await self._to_app.put({"type": f"lifespan.{phase}"})
        reply = await _next_from(self._from_app, self._task, f"answering lifespan.{phase}")
        if reply["type"] == f"lifespan.{phase}.failed":
            raise RuntimeError(f"application {phase} failed: {reply.get('message', '')}")


def _encode_multipart(
    form: Mapping[str, str], files: Mapping[str, tuple[str, bytes, str]]
) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    parts: list[bytes] = []
    for name, value in form.items():
        parts.append(
            f"--{boundary}\r\nContent-Disposition: form-data; name={_quoted(name)}\r\n\r\n".encode()
            + value.encode("utf-8")
            + b"\r\n"
        )
    for name, (filename, content, content_type) in files.items():
        head = (
            f"--{boundary}\r\nContent-Disposition: form-data; name={_quoted(name)}; "
            f"filename={_quoted(filename)}\r\nContent-Type: {content_type}\r\n\r\n"
        )
        parts.append(head.encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _quoted(value: str) -> str:
    """A form field or file name as browsers quote it (the HTML standard's
    multipart encoding): ``"``, CR and LF percent-encoded, so that a name can
    never end the header or start a new one."""
    escaped = value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    return f'"{escaped}"'


async def _next_from(
    queue: asyncio.Queue[Message], task: asyncio.Task[None], doing: str
) -> Message:
    """The next message *task* puts in *queue*; its exception if it fails first."""
    getter = asyncio.ensure_future(queue.get())
    try:
        await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
    finally:
        # Also on a time-out: a getter left waiting would swallow the next message.
        getter.cancel()
    task.result()  # raises the application's exception, if any
    raise AssertionError(f"the application returned without {doing}")
