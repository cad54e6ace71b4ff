"""Hooks that run around handlers: the base classes to subclass."""

from __future__ import annotations

from typing import Any

from micropie.request import Request, WebSocketRequest

__all__ = ["HttpMiddleware", "WebSocketMiddleware"]


class HttpMiddleware:
    """Runs around every HTTP handler. Override either method; both are optional.

    Middlewares in ``App.middlewares`` run in list order before the handler,
    and in reverse order after it, so that the first one wraps all the others.
    """

    __module__ = "micropie"

    async def before_request(self, request: Request) -> Any:
        """Called before the handler. Return ``None`` to go on, or anything a
        handler may return to answer the request yourself: the handler and the
        ``before_request`` of later middlewares are skipped, while the
        ``after_request`` of every middleware still runs on your answer."""
        return None

    async def after_request(
        self,
        request: Request,
        status_code: int,
        response_body: bytes | None,
        extra_headers: list[tuple[str, str]],
    ) -> Any:
        """Called with the response about to be sent (*response_body* is
        ``None`` when it is streamed; *extra_headers* leaves out
        ``Content-Length`` and the session cookie). Return ``None`` to keep
        it, with any change made to *extra_headers* in place (the way to add
        headers to a streamed response), or anything a handler may return to
        send that instead; replacing a streamed response discards its stream."""
        return None


class WebSocketMiddleware:
    """Runs around every WebSocket handler. Override either method; both are optional."""

    __module__ = "micropie"

    async def before_websocket(self, request: WebSocketRequest) -> tuple[int, str] | None:
        """Called before the handler. Return ``None`` to go on, or a pair
        ``(code, reason)`` to refuse the connection: MicroPie then accepts it
        and closes it at once with that close code and reason, so that the
        client can tell why (a browser never sees a refused handshake's
        status). The handler does not run."""
        return None

    async def after_websocket(self, request: WebSocketRequest) -> None:
        """Called once the handler has finished, however it finished, or once a
        middleware refused the connection; every middleware's hook runs, in
        reverse order."""
        return None
