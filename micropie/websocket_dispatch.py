"""Serving one WebSocket connection: the handshake, the handler, and its end."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from micropie._asgi import ASGIApp, Receive, Scope, Send
from micropie.cookies import session_cookie
from micropie.middleware import WebSocketMiddleware, refusal_of
from micropie.mounting import legacy_subapp_scope, route_path
from micropie.origins import origin_allowed
from micropie.request import WebSocketRequest, current_request
from micropie.routing import BindError, Route, RouteTable, split_path
from micropie.sessions import SessionHandle
from micropie.settings import AppSettings
from micropie.unavailable import Unavailable
from micropie.websocket import ConnectionClosed, WebSocket, _Handshake

__all__ = ["serve_websocket"]

logger = logging.getLogger("micropie")

# Sent to the client when a handler fails; the error itself goes to the log.
_HANDLER_ERROR_REASON = "Internal server error"
_INTERNAL_ERROR = 1011
# Sent when what the connection needs (a session store) cannot be reached now.
_TRY_AGAIN_LATER = 1013
_TRY_AGAIN_REASON = "the service is unavailable; try again shortly"
# The two ways to hand a session ID over, made once: over TLS or not.
_SESSION_COOKIE = {
    secure: functools.partial(session_cookie, secure=secure) for secure in (False, True)
}


async def serve_websocket(
    app: Any, routes: RouteTable, settings: AppSettings, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run the ``ws_`` handler of *app* that the path of *scope* names."""
    name, segments = split_path(route_path(scope) if scope.get("root_path") else scope["path"])
    route = routes.websocket.get(name) or routes.attached(app, name, websocket=True)
    # Both lists, every handshake: a tuple of each, kept up to date by the lists.
    middlewares = settings.middlewares.websocket + settings.ws_middlewares.websocket
    request = WebSocketRequest(scope, segments)
    session = SessionHandle(settings.session_backend)

    async def start_session(session_id: str) -> None:
        await session.start(session_id, request.session)

    spec = _spec_version(scope)
    secure = request.is_secure
    handshake = _Handshake(
        secure, request.subprotocols, _SESSION_COOKIE[secure], start_session, spec >= (2, 1)
    )
    # Servers older than ASGI 2.4 drop a send to a departed client, and
    # uvicorn (2.4) does too once the client has sent a message the handler
    # left unread: every WebSocket watches for the departure itself.
    websocket = WebSocket._for_handshake(receive, send, handshake, watch_sends=True)
    # With middlewares, an unknown path is theirs first, as in MicroPie 0.x.
    if route is None and not middlewares:
        await _close_quietly(websocket)  # before accept(): the client sees HTTP 403
        return
    if not origin_allowed(request, settings.allowed_origins, secure):
        logger.info(
            "WebSocket handshake for %s refused: Origin %r is another site's",
            request.path,
            request.headers.get("origin"),
        )
        await _close_quietly(websocket)
        return
    try:
        if request.cookies:  # without a cookie there is no session to load
            request.session = await session.load(request.cookies)
    except Unavailable:  # the store said so in the log, once per outage
        await _try_again_later(websocket)
        return
    except Exception:
        logger.exception("loading the session for %s failed", request.path)
        await _close_quietly(websocket)
        return
    failed = False
    subapp: ASGIApp | None = None
    cancelled: asyncio.CancelledError | None = None
    token = current_request.set(request)
    try:
        if not middlewares or await _admit(websocket, request, middlewares):
            subapp = request._subapp  # set by a 0.x middleware, rarely
            if request._ws_route_handler is not None:
                route = routes.chosen(request._ws_route_handler, request.path, websocket=True)
            if subapp is not None:
                pass  # handed on below, once this App is out of the way
            elif route is None:
                await _close_quietly(websocket)  # the handshake is refused: HTTP 403
            elif not route.takes_arguments:  # the WebSocket only: nothing to bind
                await route.function(app, websocket)
            else:
                await _run(app, route, websocket, request)
    except ConnectionClosed:
        pass  # the client left; the handler had nothing more to do
    except Unavailable as exc:  # what it needs cannot be reached now: not a bug
        failed = True
        logger.info("WebSocket %s closed with 1013: %s", request.path, exc)
        await _try_again_later(websocket)
    except Exception:
        failed = True
        logger.exception("WebSocket handler %s failed", route.name if route else request.path)
        await _close_quietly(websocket, _INTERNAL_ERROR, _HANDLER_ERROR_REASON)
    except asyncio.CancelledError as exc:
        # The server gave up on the handler (a shutdown past its graceful
        # timeout): its session and after-hooks still count, then it stops.
        cancelled = exc
    finally:
        current_request.reset(token)
    if subapp is not None:
        # The other application has the connection from the start: none of
        # this App's after-hooks, session or close.
        await subapp(legacy_subapp_scope(scope, request), receive, send)
        return
    if cancelled is not None:
        # No close: the server is tearing the connection down, and a send
        # may block as the cancelled one did.
        await _finish(request, session, websocket, middlewares, close=False)
        raise cancelled
    await _finish(request, session, websocket, middlewares, failed=failed)


async def _run(app: Any, route: Route, websocket: WebSocket, request: WebSocketRequest) -> None:
    try:
        args, kwargs = route.bind(request.path_params, request.query_params, {}, request.session)
    except BindError as exc:
        logger.info("WebSocket handshake for %s rejected: %s", request.path, exc)
        await _close_quietly(websocket)
        return
    await route.function(app, websocket, *args, **kwargs)


async def _admit(
    websocket: WebSocket, request: WebSocketRequest, middlewares: tuple[WebSocketMiddleware, ...]
) -> bool:
    """Ask each middleware; a refusal is sent as a close code the client can read."""
    for middleware in middlewares:
        refusal = refusal_of(await middleware.before_websocket(request))
        if refusal is not None:
            code, reason = refusal
            await websocket.accept()
            await websocket.close(code, reason)
            return False
    return True


async def _finish(
    request: WebSocketRequest,
    session: SessionHandle,
    websocket: WebSocket,
    middlewares: tuple[WebSocketMiddleware, ...],
    *,
    failed: bool = False,
    close: bool = True,
) -> None:
    """After the handler: after-hooks, the session, and the close."""
    websocket._stop_watching()
    for middleware in reversed(middlewares):
        try:
            await middleware.after_websocket(request)
        except Exception:
            logger.exception("after_websocket of %r failed", middleware)
    if not failed:  # a handler that failed may have left its session half-changed
        try:
            if session.changed(request.session):
                await _save_session(request, session, websocket.session_id)
        except Unavailable:  # the store said so in the log, once per outage
            await _try_again_later(websocket)
        except Exception:
            logger.exception("saving the session after %s failed", request.path)
            await _close_quietly(websocket, _INTERNAL_ERROR, _HANDLER_ERROR_REASON)
    if close and not websocket._closed:
        # A handler that never accepted is rejected (403); one that left the
        # socket open has it closed normally. Servers answer 500 otherwise.
        await _close_quietly(websocket)


async def _save_session(
    request: WebSocketRequest, session: SessionHandle, accepted_id: str | None
) -> None:
    """Save the session, which changed."""
    session_id = accepted_id or session.known_id
    if session_id is None:
        logger.warning(
            "the session of %s changed but has no ID, so it was not saved: "
            "pass session_id to accept()",
            request.path,
        )
        return
    await session.commit_websocket(session_id, request.session, request.path)


def _spec_version(scope: Scope) -> tuple[int, ...]:
    """The ASGI spec version the server speaks; 2.0 when it does not say."""
    try:
        return _parse_version(scope["asgi"]["spec_version"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return (2, 0)


@functools.lru_cache(maxsize=8)  # a server says the same thing at every handshake
def _parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


async def _try_again_later(websocket: WebSocket) -> None:
    """Accept if need be, so that the client reads why, and close with 1013."""
    try:
        if not websocket.accepted:
            await websocket.accept()
    except Exception:  # the client left, or the server refused: nothing to tell
        return
    await _close_quietly(websocket, _TRY_AGAIN_LATER, _TRY_AGAIN_REASON)


async def _close_quietly(websocket: WebSocket, code: int = 1000, reason: str | None = None) -> None:
    """The framework's own close, which must not fail whatever the server thinks of it."""
    try:
        await websocket.close(code, reason)
    except Exception:  # some servers refuse some close codes with a bare Exception
        logger.exception("closing the WebSocket with code %s failed", code)
