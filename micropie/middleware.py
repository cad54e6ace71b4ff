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
    apart whenever it changes, so that a request never has to. Anything that
    is not a middleware is refused before the list changes."""

    __slots__ = ("http", "websocket")

    def __init__(self, middlewares: Iterable[Middleware] = ()) -> None:
        super().__init__(_checked(middlewares))
        self._sort_out()

    @classmethod
    def of(cls, middlewares: Iterable[Middleware]) -> MiddlewareList:
        """*middlewares* itself if it is a MiddlewareList, else a new one holding them."""
        return middlewares if isinstance(middlewares, MiddlewareList) else cls(middlewares)

    def _sort_out(self) -> None:
        #: The HTTP middlewares, in order.
        self.http = tuple(m for m in self if isinstance(m, HttpMiddleware))
        #: The WebSocket middlewares, in order.
        self.websocket = tuple(m for m in self if isinstance(m, WebSocketMiddleware))


def _checked(values: Iterable[Any]) -> list[Middleware]:
    values = list(values)
    for value in values:
        if not isinstance(value, (HttpMiddleware, WebSocketMiddleware)):
            raise TypeError(
                "App.middlewares takes HttpMiddleware and WebSocketMiddleware "
                f"instances, not {type(value).__name__}"
            )
    return values


# For each method that changes the list: which argument brings new items
# (None: none; "one": a single item), so that they are checked first.
_CHANGES: dict[str, tuple[int | None, bool]] = {
    "append": (0, True),
    "insert": (1, True),
    "extend": (0, False),
    "__iadd__": (0, False),
    "__setitem__": (1, False),
    "remove": (None, False),
    "pop": (None, False),
    "clear": (None, False),
    "sort": (None, False),
    "reverse": (None, False),
    "__delitem__": (None, False),
    "__imul__": (None, False),
}


def _sorting_out(name: str, position: int | None, single: bool) -> Any:
    change = getattr(list, name)

    def changed(self: MiddlewareList, *given: Any, **kwargs: Any) -> Any:
        args = list(given)
        if position is not None:
            new = args[position]
            if single or (name == "__setitem__" and not isinstance(args[0], slice)):
                _checked([new])
            else:
                args[position] = _checked(new)  # a list: an iterator is read once, here
        result = change(self, *args, **kwargs)
        self._sort_out()
        return result

    changed.__name__ = name
    return changed


for _name, (_position, _single) in _CHANGES.items():
    setattr(MiddlewareList, _name, _sorting_out(_name, _position, _single))
