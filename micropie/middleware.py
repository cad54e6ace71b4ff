"""Hooks that run around handlers: the base classes to subclass."""

from __future__ import annotations

import inspect
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
        """Called before the handler, for every request, also one whose path
        names no handler. Return ``None`` to go on, or anything a handler may
        return to answer the request yourself (or MicroPie 0.x's dict
        ``{"status_code": ..., "body": ..., "headers": [...]}``): the handler
        and the ``before_request`` of later middlewares are skipped, while the
        ``after_request`` of every middleware still runs on your answer."""
        return None

    async def after_request(
        self,
        request: Request,
        status_code: int,
        response_body: str | bytes | None,
        extra_headers: list[tuple[str, str]],
    ) -> Any:
        """Called with the response about to be sent: *response_body* is a
        ``str`` for text (``text/*`` and JSON), ``bytes`` otherwise, ``None``
        when it is streamed; *extra_headers* leaves out ``Content-Length`` and
        the session cookie. Return ``None`` to keep it, with any change made to
        *extra_headers* in place (the way to add headers to a streamed
        response), or anything a handler may return to send that instead
        (replacing a streamed response discards its stream). A 0.x dict
        replaces only what it names: a missing ``body`` keeps the body, stream
        and all, and missing ``headers`` keep *extra_headers*."""
        return None


class WebSocketMiddleware:
    """Runs around every WebSocket handler. Override either method; both are optional."""

    __module__ = "micropie"

    async def before_websocket(
        self, request: WebSocketRequest
    ) -> tuple[int, str] | dict[str, Any] | None:
        """Called before the handler, also for a path that names none. Return
        ``None`` to go on, or a pair ``(code, reason)`` (or MicroPie 0.x's
        ``{"code": ..., "reason": ...}``) to refuse the connection: MicroPie
        then accepts it and closes it at once with that close code and reason,
        so that the client can tell why (a browser never sees a refused
        handshake's status). The handler does not run."""
        return None

    async def after_websocket(self, request: WebSocketRequest) -> None:
        """Called once the handler has finished, however it finished, or once a
        middleware refused the connection; every middleware's hook runs, in
        reverse order."""
        return None


Middleware = HttpMiddleware | WebSocketMiddleware

# The keys of the dict that MicroPie 0.x's hooks returned to answer a request.
_ANSWER_KEYS = frozenset(["status_code", "body", "headers"])


def answer_of(result: Any, status: int = 200, body: Any = "", headers: Any = ()) -> Any:
    """What a hook's *result* answers with: ``None`` to go on, the result
    itself, or, for MicroPie 0.x's ``{"status_code": ..., "body": ...,
    "headers": [...]}``, that tuple, with what the dict leaves out taken from
    *status*, *body* and *headers*.

    As in 0.x, an empty dict and ``False`` mean "go on". A dict is 0.x's
    answer when its keys are among those three, or when it has an int
    ``status_code`` (0.x ignored any other key); any other dict is JSON.
    """
    if type(result) is dict:
        if not result:
            return None
        if result.keys() <= _ANSWER_KEYS or type(result.get("status_code")) is int:
            return (
                result.get("status_code", status),
                result.get("body", body),
                result.get("headers", headers),
            )
    elif result is False:
        return None
    return result


def refusal_of(result: Any) -> tuple[int, str] | None:
    """The close code and reason of ``before_websocket``'s refusal, or ``None``
    to go on: a pair, or MicroPie 0.x's ``{"code": ..., "reason": ...}``
    (1008 and a plain reason where it leaves them out; ``{}`` and ``False``
    go on, as in 0.x)."""
    if result is None or result is False or result == {}:
        return None
    if isinstance(result, dict):
        return result.get("code", 1008), result.get("reason", "refused by a middleware")
    code, reason = result
    return code, reason


class MiddlewareList(list[Middleware]):
    """``App.middlewares``: a list that sorts its HTTP and WebSocket middlewares
    apart whenever it changes, so that a request never has to. Anything that
    is not a middleware is refused before the list changes.

    ``App.ws_middlewares``, MicroPie 0.x's list for WebSocket middlewares,
    is one too, which takes WebSocket middlewares only (*websocket_only*).
    """

    __slots__ = ("_owner", "http", "websocket")

    def __init__(
        self, middlewares: Iterable[Middleware] = (), *, websocket_only: bool = False
    ) -> None:
        self._owner = "App.ws_middlewares" if websocket_only else "App.middlewares"
        super().__init__(self._checked(middlewares))
        self._sort_out()

    @classmethod
    def of(cls, middlewares: Iterable[Middleware]) -> MiddlewareList:
        """*middlewares* itself if it is an App.middlewares list, else a new one holding them."""
        if isinstance(middlewares, MiddlewareList) and middlewares._owner == "App.middlewares":
            return middlewares
        return cls(middlewares)

    @classmethod
    def websocket_only(cls, middlewares: Iterable[WebSocketMiddleware]) -> MiddlewareList:
        """As :meth:`of`, for ``App.ws_middlewares``."""
        if isinstance(middlewares, MiddlewareList) and middlewares._owner == "App.ws_middlewares":
            return middlewares
        return cls(middlewares, websocket_only=True)

    def _sort_out(self) -> None:
        #: The HTTP middlewares, in order.
        self.http = tuple(m for m in self if isinstance(m, HttpMiddleware))
        #: The WebSocket middlewares, in order.
        self.websocket = tuple(m for m in self if isinstance(m, WebSocketMiddleware))

    def _checked(self, values: Iterable[Any]) -> list[Middleware]:
        values = list(values)
        websocket_only = self._owner == "App.ws_middlewares"
        kinds = WebSocketMiddleware if websocket_only else (HttpMiddleware, WebSocketMiddleware)
        for value in values:
            if not isinstance(value, kinds):
                wanted = (
                    "WebSocketMiddleware instances (HTTP ones go in App.middlewares)"
                    if websocket_only
                    else "HttpMiddleware and WebSocketMiddleware instances"
                )
                raise TypeError(f"{self._owner} takes {wanted}, not {type(value).__name__}")
            _check_hooks(value)
        return values


# Awaited on every request or handshake: a plain def would fail there, on the first one.
_HOOKS = {
    HttpMiddleware: ("before_request", "after_request"),
    WebSocketMiddleware: ("before_websocket", "after_websocket"),
}


def _check_hooks(middleware: Middleware) -> None:
    """Refuse a middleware whose hooks are not all coroutine functions."""
    for kind, names in _HOOKS.items():
        if isinstance(middleware, kind):
            for name in names:
                # Unwrapped: a decorator (functools.wraps) may hand the coroutine on.
                if not inspect.iscoroutinefunction(inspect.unwrap(getattr(middleware, name))):
                    raise TypeError(
                        f"{type(middleware).__name__}.{name} must be 'async def': "
                        "MicroPie awaits middleware hooks on the event loop"
                    )


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
                self._checked([new])
            else:
                args[position] = self._checked(new)  # a list: an iterator is read once, here
        result = change(self, *args, **kwargs)
        self._sort_out()
        return result

    changed.__name__ = name
    return changed


for _name, (_position, _single) in _CHANGES.items():
    setattr(MiddlewareList, _name, _sorting_out(_name, _position, _single))
