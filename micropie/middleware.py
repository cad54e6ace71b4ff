"""Hooks that run around handlers: the base classes to subclass."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from micropie.request import Request, WebSocketRequest

__all__ = ["HttpMiddleware", "MiddlewareList", "WebSocketMiddleware"]


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


Middleware = HttpMiddleware | WebSocketMiddleware


class MiddlewareList(list[Middleware]):
    """``App.middlewares``: a list that sorts its HTTP and WebSocket middlewares
    apart whenever it changes, so that a request never has to."""

    __slots__ = ("http", "websocket")

    def __init__(self, middlewares: Iterable[Middleware] = ()) -> None:
        super().__init__(middlewares)
        self._sort_out()

    def _sort_out(self) -> None:
        wrong = [m for m in self if not isinstance(m, (HttpMiddleware, WebSocketMiddleware))]
        for middleware in wrong:
            list.remove(self, middleware)  # the list stays usable after the error
        #: The HTTP middlewares, in order.
        self.http = tuple(m for m in self if isinstance(m, HttpMiddleware))
        #: The WebSocket middlewares, in order.
        self.websocket = tuple(m for m in self if isinstance(m, WebSocketMiddleware))
        if wrong:
            raise TypeError(
                "App.middlewares takes HttpMiddleware and WebSocketMiddleware "
                f"instances, not {type(wrong[0]).__name__}"
            )


def _sorting_out(name: str) -> Any:
    change = getattr(list, name)

    def changed(self: MiddlewareList, *args: Any) -> Any:
        result = change(self, *args)
        self._sort_out()
        return result if result is not self else self

    changed.__name__ = name
    return changed


for _name in (
    "append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse",
    "__setitem__", "__delitem__", "__iadd__", "__imul__",
):  # fmt: skip
    setattr(MiddlewareList, _name, _sorting_out(_name))
