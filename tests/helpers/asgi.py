"""Raw ASGI for the in-process tests: hand-made scopes, scripted servers, what an app sent."""

from __future__ import annotations

import asyncio
from typing import Any

from micropie import HttpMiddleware, Request, WebSocket, WebSocketMiddleware, WebSocketRequest
from micropie._asgi import Receive, Scope, Send

CONNECT = {"type": "websocket.connect"}


def text_frame(data: str | None, **extra: Any) -> dict[str, Any]:
    return {"type": "websocket.receive", "text": data, **extra}


def binary_frame(data: bytes | None, **extra: Any) -> dict[str, Any]:
    return {"type": "websocket.receive", "bytes": data, **extra}


def disconnect(code: int = 1000, reason: str = "") -> dict[str, Any]:
    return {"type": "websocket.disconnect", "code": code, "reason": reason}


class Peer:
    """The ASGI server side of a WebSocket: hands out scripted messages, records what is sent.

    While *send_error* is set, ``send`` raises it instead of recording the message.
    """

    def __init__(self, *incoming: dict[str, Any], send_error: OSError | None = None) -> None:
        self.incoming = list(incoming)
        self.sent: list[dict[str, Any]] = []
        self.receive_calls = 0
        self.send_calls = 0
        self.send_error = send_error

    async def receive(self) -> dict[str, Any]:
        self.receive_calls += 1
        if not self.incoming:
            raise AssertionError("the WebSocket read more messages than the test scripted")
        return self.incoming.pop(0)

    async def send(self, message: dict[str, Any]) -> None:
        self.send_calls += 1
        if self.send_error is not None:
            raise self.send_error
        self.sent.append(message)

    def websocket(self) -> WebSocket:
        return WebSocket(self.receive, self.send)

    def sent_types(self) -> list[str]:
        return [message["type"] for message in self.sent]


async def opened(peer: Peer) -> WebSocket:
    """A WebSocket on *peer* that has been accepted (the peer must script CONNECT first)."""
    ws = peer.websocket()
    await ws.accept()
    return ws


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def call_asgi(
    target: Any,
    scope: dict[str, Any],
    incoming: list[dict[str, Any]] | None = None,
    *,
    then: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run the ASGI app *target* on a hand-made *scope*; return what it sent.

    ``receive`` hands out *incoming*, then *then* (the end of the conversation)
    for ever after.
    """
    pending = list(incoming or [])
    sent: list[dict[str, Any]] = []
    last = then or {"type": f"{scope['type']}.disconnect"}

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else dict(last)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def main() -> None:
        await asyncio.wait_for(target(scope, receive, send), 10)

    asyncio.run(main())
    return sent


def http_scope(
    path: str,
    *,
    raw_path: bytes | None = None,
    query_string: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "GET",
) -> dict[str, Any]:
    """An HTTP scope as uvicorn makes it, for a request from 127.0.0.1."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode("utf-8"),
        "query_string": query_string,
        "root_path": "",
        "headers": headers or [],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


class Answer:
    """What an application answered to one HTTP request."""

    def __init__(self, sent: list[dict[str, Any]]) -> None:
        self.status: int = sent[0]["status"]
        self.headers: list[tuple[bytes, bytes]] = list(sent[0].get("headers", []))
        self.text = b"".join(m.get("body", b"") for m in sent[1:]).decode()

    def set_cookies(self) -> list[str]:
        return [value.decode() for name, value in self.headers if name == b"set-cookie"]


async def http_call(target: Any, path: str, *, cookie: str | None = None) -> Answer:
    """One GET of *path* from *target* in the running event loop, so that
    several can run at once; *cookie* is the ``session_id`` to send."""
    headers = [(b"host", b"testserver")]
    if cookie is not None:
        headers.append((b"cookie", f"session_id={cookie}".encode()))
    sent: list[dict[str, Any]] = []
    requested, answered = False, asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await answered.wait()  # the client stays until the whole answer came
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    await target(http_scope(path, headers=headers), receive, send)
    return Answer(sent)


def websocket_scope(
    path: str, *, query_string: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> dict[str, Any]:
    """A WebSocket scope as uvicorn makes it, with no subprotocol offered."""
    scope = http_scope(path, query_string=query_string, headers=headers)
    del scope["method"]
    scope.update(type="websocket", scheme="ws", subprotocols=[])
    return scope


def without_host(app: Any) -> Any:
    """*app* behind a server that received no ``Host`` header (an HTTP/1.0 client)."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(name, value) for name, value in scope["headers"] if name != b"host"]
        await app({**scope, "headers": headers}, receive, send)

    return serve


class HookTrap(HttpMiddleware, WebSocketMiddleware):
    """Raises ``RuntimeError(secret)`` from the hooks that the request's *header* names:
    ``before`` (``before_request``, ``before_websocket``) or ``after`` (the after hooks)."""

    def __init__(self, header: str, secret: str) -> None:
        self.header = header
        self.secret = secret

    def spring(self, request: Request | WebSocketRequest, hook: str) -> None:
        if request.headers.get(self.header) == hook:
            raise RuntimeError(self.secret)

    async def before_request(self, request: Request) -> Any:
        self.spring(request, "before")
        return None

    async def after_request(self, request: Request, *response: Any) -> Any:
        self.spring(request, "after")
        return None

    async def before_websocket(self, request: WebSocketRequest) -> tuple[int, str] | None:
        self.spring(request, "before")
        return None

    async def after_websocket(self, request: WebSocketRequest) -> None:
        self.spring(request, "after")
