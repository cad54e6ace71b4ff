"""The App: an ASGI application whose methods are its routes."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from micropie._asgi import Receive, Scope, Send
from micropie.request import Request, WebSocketRequest, current_request
from micropie.responses import error_response, to_response
from micropie.routing import BindError, Route, RouteTable, split_path
from micropie.sessions import (
    SESSION_COOKIE,
    InMemorySessionBackend,
    SessionBackend,
    new_session_id,
    session_cookie,
)
from micropie.websocket import ConnectionClosed, WebSocket

__all__ = ["App"]

logger = logging.getLogger("micropie")

LifespanHandler = Callable[[], Awaitable[None] | None]

# Sent to the client when a handler fails; the error itself goes to the log.
_HANDLER_ERROR_REASON = "Internal server error"
_INTERNAL_ERROR = 1011


class App:
    """An ASGI application: subclass it, and each method becomes a route.

    ``/greet/Alice`` calls ``greet("Alice")`` over HTTP, and a WebSocket
    handshake at ``/chat`` calls ``ws_chat(websocket)``. Sessions are kept by
    *session_backend*, an :class:`~micropie.sessions.InMemorySessionBackend`
    unless you pass another.

    .. attribute:: session_backend
       :type: micropie.sessions.SessionBackend

       Where sessions are loaded from and saved to.

    .. attribute:: startup_handlers
       :type: list

       Called in order, with no arguments, when the server starts; each may
       be a plain function or a coroutine function.

    .. attribute:: shutdown_handlers
       :type: list

       Called in order, with no arguments, when the server shuts down.
    """

    __module__ = "micropie"
    _routes: ClassVar[RouteTable]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._routes = RouteTable(cls, reserved=_RESERVED_NAMES)

    def __init__(self, session_backend: SessionBackend | None = None) -> None:
        self.session_backend: SessionBackend = (
            session_backend if session_backend is not None else InMemorySessionBackend()
        )
        self.startup_handlers: list[LifespanHandler] = []
        self.shutdown_handlers: list[LifespanHandler] = []

    @property
    def request(self) -> Request:
        """The request the current handler is answering."""
        try:
            return current_request.get()
        except LookupError:
            raise RuntimeError("self.request is only available inside a handler") from None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._serve_websocket(scope, receive, send)
        elif kind == "http":
            await self._serve_http(scope, receive, send)
        elif kind == "lifespan":
            await self._serve_lifespan(receive, send)
        else:
            raise ValueError(f"MicroPie does not serve ASGI scopes of type {kind!r}")

    async def _serve_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(receive, send)
        websocket._secure = scope.get("scheme") == "wss"
        websocket._offered_subprotocols = scope.get("subprotocols", [])
        name, segments = split_path(scope["path"])
        route = self._routes.websocket.get(name)
        if route is None:
            await websocket.close()  # before accept(): the client sees HTTP 403
            return
        request = WebSocketRequest(scope, segments)
        try:
            args, kwargs = route.bind(segments, request.query_params)
        except BindError as exc:
            logger.info("WebSocket handshake for %s rejected: %s", scope["path"], exc)
            await websocket.close()
            return
        known_id = await self._load_session(request)

        async def start_session(session_id: str) -> None:
            await self.session_backend.save(session_id, request.session)

        websocket._on_session_start = start_session
        token = current_request.set(request)
        try:
            await route.function(self, websocket, *args, **kwargs)
        except ConnectionClosed:
            pass  # the client left; the handler had nothing more to do
        except Exception:
            logger.exception("WebSocket handler %s failed", route.name)
            await websocket.close(_INTERNAL_ERROR, _HANDLER_ERROR_REASON)
        finally:
            current_request.reset(token)
        try:
            await self._save_session(request, websocket.session_id or known_id)
        except Exception:
            logger.exception("saving the session after %s failed", route.name)
            await websocket.close(_INTERNAL_ERROR, _HANDLER_ERROR_REASON)
        # A handler that never accepted is rejected (403); one that left the
        # socket open has it closed normally. Servers answer 500 otherwise.
        await websocket.close()

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        name, segments = split_path(scope["path"])
        route = self._routes.http.get(name)
        if route is None:
            await error_response(404).send(send)
            return
        request = Request(scope, segments)
        try:
            args, kwargs = route.bind(segments, request.query_params)
        except BindError as exc:
            if exc.not_found:
                await error_response(404).send(send)
            else:
                await error_response(400, f"Bad Request: {exc}").send(send)
            return
        known_id = await self._load_session(request)
        token = current_request.set(request)
        try:
            result = await _call(route, self, *args, **kwargs)
            response = to_response(result)
            if known_id is None and request.session:
                known_id = new_session_id()
                secure = scope.get("scheme") == "https"
                response.headers.append((b"set-cookie", session_cookie(known_id, secure=secure)))
            await self._save_session(request, known_id)
        except Exception:
            logger.exception("HTTP handler %s failed", route.name)
            response = error_response(500)
        finally:
            current_request.reset(token)
        await response.send(send)

    async def _load_session(self, request: Request) -> str | None:
        """Load the session named by the cookie into *request*; return its ID if known.

        An ID the backend does not know is ignored, never adopted.
        """
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        data = await self.session_backend.load(session_id)
        if data is None:
            return None
        request.session = data
        return session_id

    async def _save_session(self, request: Request, session_id: str | None) -> None:
        if session_id is not None:
            await self.session_backend.save(session_id, request.session)
        elif request.session:
            logger.warning(
                "the session of %s was changed but has no ID, so it was not saved: "
                "pass session_id to accept()",
                request.path,
            )

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                phase, handlers = "startup", self.startup_handlers
            elif message["type"] == "lifespan.shutdown":
                phase, handlers = "shutdown", self.shutdown_handlers
            else:
                continue
            try:
                for handler in handlers:
                    outcome = handler()
                    if inspect.isawaitable(outcome):
                        await outcome
            except Exception as exc:
                logger.exception("a %s handler failed", phase)
                await send({"type": f"lifespan.{phase}.failed", "message": repr(exc)})
                return
            await send({"type": f"lifespan.{phase}.complete"})
            if phase == "shutdown":
                return


async def _call(route: Route, *args: Any, **kwargs: Any) -> Any:
    if route.is_async:
        return await route.function(*args, **kwargs)
    return route.function(*args, **kwargs)


# Every public name of App itself: never routable, whatever the subclass defines.
_RESERVED_NAMES = frozenset(name for name in dir(App) if not name.startswith("_")) | {
    "session_backend",
    "startup_handlers",
    "shutdown_handlers",
}
App._routes = RouteTable(App, reserved=_RESERVED_NAMES)
