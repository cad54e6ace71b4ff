"""The App: an ASGI application whose methods are its routes."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from micropie._asgi import Receive, Scope, Send
from micropie.background import BackgroundTasks
from micropie.bodies import (
    BodyError,
    ClientGone,
    MultipartMissing,
    parse_form,
    parse_json,
    read_multipart,
)
from micropie.lifespan import LifespanHandler, serve_lifespan
from micropie.middleware import HttpMiddleware, WebSocketMiddleware
from micropie.request import Request, WebSocketRequest, current_request, header_values
from micropie.responses import (
    Response,
    encode_headers,
    error_response,
    redirect,
    to_response,
)
from micropie.routing import BindError, Route, RouteTable, split_path
from micropie.sessions import (
    InMemorySessionBackend,
    SessionBackend,
    SessionHandle,
    session_cookie,
)
from micropie.templates import TemplateRenderer
from micropie.websocket import ConnectionClosed, WebSocket, _Handshake

__all__ = ["App"]

logger = logging.getLogger("micropie")

# Sent to the client when a handler fails; the error itself goes to the log.
_HANDLER_ERROR_REASON = "Internal server error"
_INTERNAL_ERROR = 1011
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"


class App:
    """An ASGI application: subclass it, and each method becomes a route.

    ``/greet/Alice`` calls ``greet("Alice")`` over HTTP, and a WebSocket
    handshake at ``/chat`` calls ``ws_chat(websocket)``. Sessions are kept by
    *session_backend*, an :class:`~micropie.sessions.InMemorySessionBackend`
    unless you pass another. WebSocket handshakes from pages of other sites are
    refused unless *allowed_origins* names them. Templates are read from
    *templates_dir*, relative to the working directory unless absolute. A
    request body larger than *max_body_size* bytes is refused with 413.

    .. attribute:: session_backend
       :type: micropie.sessions.SessionBackend

       Where sessions are loaded from and saved to.

    .. attribute:: startup_handlers
       :type: list

       Called in order, with no arguments, when the server starts; each may
       be a plain function or a coroutine function.

    .. attribute:: shutdown_handlers
       :type: list

       Called in order, with no arguments, when the server shuts down,
       once the :attr:`background_tasks` have been cancelled and have ended.

    .. attribute:: background_tasks
       :type: micropie.BackgroundTasks

       Work that outlives a request: ``self.background_tasks.create_task(job())``
       runs ``job()`` in a task that is kept, logged if it fails, and
       cancelled when the server shuts down.

    .. attribute:: middlewares
       :type: list

       :class:`~micropie.HttpMiddleware` and
       :class:`~micropie.WebSocketMiddleware` instances: their ``before_*``
       hooks run in list order, their ``after_*`` hooks in reverse order.

    .. attribute:: max_body_size
       :type: int

       The largest request body accepted, in bytes.

    .. attribute:: allowed_origins
       :type: frozenset[str]

       Origins besides the site's own whose pages may open its WebSockets,
       such as ``"https://app.example.com"``; ``"*"`` allows every origin. A
       browser's handshake from any other origin is refused with HTTP 403,
       so that another site's page cannot ride a visitor's session cookie.
       Handshakes without an ``Origin`` header (clients that are not
       browsers) are let through.
    """

    __module__ = "micropie"
    _routes: ClassVar[RouteTable]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._routes = RouteTable(cls, reserved=_RESERVED_NAMES)

    def __init__(
        self,
        session_backend: SessionBackend | None = None,
        *,
        templates_dir: str | Path = "templates",
        max_body_size: int = 10 * 1024 * 1024,
        allowed_origins: Iterable[str] = (),
        middlewares: Iterable[HttpMiddleware | WebSocketMiddleware] = (),
    ) -> None:
        self.session_backend: SessionBackend = (
            session_backend if session_backend is not None else InMemorySessionBackend()
        )
        self.startup_handlers: list[LifespanHandler] = []
        self.shutdown_handlers: list[LifespanHandler] = []
        self.background_tasks = BackgroundTasks()
        self.middlewares: list[HttpMiddleware | WebSocketMiddleware] = list(middlewares)
        self.max_body_size = max_body_size
        if isinstance(allowed_origins, str):
            raise TypeError(
                "allowed_origins takes a list of origins, such as "
                f'["https://app.example.com"], not the string {allowed_origins!r}'
            )
        self.allowed_origins = frozenset(origin.lower().rstrip("/") for origin in allowed_origins)
        self._templates = TemplateRenderer(templates_dir)

    @property
    def request(self) -> Request:
        """The request the current handler is answering."""
        try:
            return current_request.get()
        except LookupError:
            raise RuntimeError("self.request is only available inside a handler") from None

    def _redirect(
        self, location: str, status: int = 302, headers: Iterable[tuple[str, str]] = ()
    ) -> tuple[int, str, list[tuple[str, str]]]:
        """Return this from a handler to redirect the client to *location*."""
        return redirect(location, status, headers)

    async def _render_template(self, name: str, /, **context: Any) -> str:
        """Render the Jinja2 template *name* from the templates directory, autoescaped."""
        return await self._templates.render(name, context)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._serve_http(scope, receive, send)
        elif kind == "websocket":
            await self._serve_websocket(scope, receive, send)
        elif kind == "lifespan":
            await serve_lifespan(
                receive,
                send,
                self.startup_handlers,
                self.shutdown_handlers,
                before_shutdown=self.background_tasks.shutdown,
            )
        else:
            raise ValueError(f"MicroPie does not serve ASGI scopes of type {kind!r}")

    # HTTP

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = scope["method"] == "HEAD"
        name, segments = split_path(scope["path"])
        route = self._routes.http.get(name)
        if route is None:
            await error_response(404).send(send, head=head)
            return
        request = Request(scope, segments)
        request._receive = receive
        request._max_body_size = self.max_body_size
        try:
            await self._read_body(request, receive)
        except BodyError as exc:
            await error_response(exc.status, str(exc)).send(send, head=head)
            return
        except MultipartMissing as exc:
            logger.warning("%s refused: %s", request.path, exc)
            refusal = error_response(415, "multipart/form-data is not supported here")
            await refusal.send(send, head=head)
            return
        except ClientGone:
            return
        session = SessionHandle(self.session_backend)
        try:
            request.session = await session.load(request.cookies)
        except Exception:
            logger.exception("loading the session for %s failed", request.path)
            await error_response(500).send(send, head=head)
            return
        token = current_request.set(request)
        try:
            response = await self._respond(route, request, session)
        finally:
            current_request.reset(token)
            for uploads in request.files.values():
                for upload in uploads:
                    upload.close()
        if response is not None:
            await response.send(send, head=head, receive=receive)

    async def _read_body(self, request: Request, receive: Receive) -> None:
        """Parse a form or JSON body up front, so that it can fill parameters."""
        content_type = request.content_type
        if content_type == _FORM:
            request.body_params = parse_form(await request.body())
        elif content_type == _MULTIPART:
            header = request.headers["content-type"]
            request.body_params, request.files = await read_multipart(
                receive, header, self.max_body_size
            )
        elif content_type == "application/json" or content_type.endswith("+json"):
            body = await request.body()
            if body:
                request._json = parse_json(body)

    async def _respond(
        self, route: Route, request: Request, session: SessionHandle
    ) -> Response | None:
        middlewares = (
            [m for m in self.middlewares if isinstance(m, HttpMiddleware)]
            if self.middlewares
            else ()
        )
        try:
            result = None
            for middleware in middlewares:
                result = await middleware.before_request(request)
                if result is not None:
                    break
            else:
                result = await self._call_handler(route, request)
            response = result if isinstance(result, Response) else to_response(result)
            for middleware in reversed(middlewares):
                # Without the Content-Length a streamed file may carry: it is
                # not the middleware's to change, and is kept as it is.
                length = [(k, v) for k, v in response.headers if k == b"content-length"]
                headers = [
                    (k.decode("latin-1"), v.decode("latin-1"))
                    for k, v in response.headers
                    if k != b"content-length"
                ]
                given = headers.copy()
                replaced = await middleware.after_request(
                    request, response.status, response.body, headers
                )
                if replaced is not None:
                    response = to_response(replaced)
                elif headers != given:
                    # Headers changed in place: the response, stream and all, stays.
                    response.headers = [*encode_headers(headers), *length]
            cookie = await session.commit_http(
                request.session, secure=request.is_secure, renew=request._renew_session
            )
            if cookie is not None:
                response.headers.append((b"set-cookie", cookie))
        except BodyError as exc:  # from request.body() inside the handler
            return error_response(exc.status, str(exc))
        except ClientGone:
            return None  # nobody is left to answer
        except Exception:
            logger.exception("HTTP handler %s failed", route.name)
            return error_response(500)
        return response

    async def _call_handler(self, route: Route, request: Request) -> Any:
        try:
            args, kwargs = route.bind(
                request.path_params, request.query_params, _body_values(request), request.session
            )
        except BindError as exc:
            if exc.not_found:
                return error_response(404)
            return error_response(400, f"Bad Request: {exc}")
        if route.is_async:
            return await route.function(self, *args, **kwargs)
        return route.function(self, *args, **kwargs)

    # WebSocket

    async def _serve_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        name, segments = split_path(scope["path"])
        route = self._routes.websocket.get(name)
        request = WebSocketRequest(scope, segments)
        session = SessionHandle(self.session_backend)

        async def start_session(session_id: str) -> None:
            if request.session:  # an empty one is stored when the handler ends, if filled
                await session.save(session_id, request.session)

        spec = _spec_version(scope)
        handshake = _Handshake(
            secure=request.is_secure,
            subprotocols=request.subprotocols,
            set_cookie=functools.partial(session_cookie, secure=request.is_secure),
            on_session_start=start_session,
            accept_headers=spec >= (2, 1),
        )
        # ASGI 2.4 servers fail a send to a departed client; older ones do not.
        websocket = WebSocket._for_handshake(receive, send, handshake, watch_sends=spec < (2, 4))
        if route is None:
            await _close_quietly(websocket)  # before accept(): the client sees HTTP 403
            return
        if not self._origin_allowed(request):
            logger.info(
                "WebSocket handshake for %s refused: Origin %r is another site's",
                request.path,
                request.headers.get("origin"),
            )
            await _close_quietly(websocket)
            return
        try:
            request.session = await session.load(request.cookies)
            args, kwargs = route.bind(segments, request.query_params, {}, request.session)
        except BindError as exc:
            logger.info("WebSocket handshake for %s rejected: %s", request.path, exc)
            await _close_quietly(websocket)
            return
        except Exception:
            logger.exception("loading the session for %s failed", request.path)
            await _close_quietly(websocket)
            return
        middlewares: list[WebSocketMiddleware] = (
            [m for m in self.middlewares if isinstance(m, WebSocketMiddleware)]
            if self.middlewares
            else []
        )
        failed = False
        cancelled: asyncio.CancelledError | None = None
        token = current_request.set(request)
        try:
            if await self._admit(websocket, request, middlewares):
                await route.function(self, websocket, *args, **kwargs)
        except ConnectionClosed:
            pass  # the client left; the handler had nothing more to do
        except Exception:
            failed = True
            logger.exception("WebSocket handler %s failed", route.name)
            await _close_quietly(websocket, _INTERNAL_ERROR, _HANDLER_ERROR_REASON)
        except asyncio.CancelledError as exc:
            # The server gave up on the handler (a shutdown past its graceful
            # timeout): its session and after-hooks still count, then it stops.
            cancelled = exc
        finally:
            current_request.reset(token)
        if cancelled is not None:
            # No close: the server is tearing the connection down, and a send
            # may block as the cancelled one did.
            await self._finish_websocket(request, session, websocket, middlewares, close=False)
            raise cancelled
        await self._finish_websocket(request, session, websocket, middlewares, failed=failed)

    async def _finish_websocket(
        self,
        request: WebSocketRequest,
        session: SessionHandle,
        websocket: WebSocket,
        middlewares: list[WebSocketMiddleware],
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
                await self._save_websocket_session(request, session, websocket.session_id)
            except Exception:
                logger.exception("saving the session after %s failed", request.path)
                await _close_quietly(websocket, _INTERNAL_ERROR, _HANDLER_ERROR_REASON)
        if close:
            # A handler that never accepted is rejected (403); one that left the
            # socket open has it closed normally. Servers answer 500 otherwise.
            await _close_quietly(websocket)

    def _origin_allowed(self, request: WebSocketRequest) -> bool:
        """Whether a browser on the page that opened this WebSocket may use it.

        A page of another site could otherwise open a WebSocket that rides the
        visitor's session cookie. Browsers always name the page's origin;
        clients that send no ``Origin`` are not browsers, and carry no
        visitor's cookies.
        """
        origins = header_values(request.scope, b"origin")
        if not origins or "*" in self.allowed_origins:
            return True
        origin = origins[0].lower().rstrip("/")
        if origin in self.allowed_origins:
            return True
        hosts = header_values(request.scope, b"host")
        host = hosts[0].lower() if hosts else ""
        page = urlsplit(origin)
        # Over TLS, a plain-http page of the same host may have been injected
        # by anyone on the network: it does not count as the site's own.
        if request.is_secure and page.scheme == "http":
            return False
        return bool(host) and page.netloc == host

    @staticmethod
    async def _save_websocket_session(
        request: WebSocketRequest, session: SessionHandle, accepted_id: str | None
    ) -> None:
        if not session.changed(request.session):
            return
        session_id = accepted_id or session.known_id
        if session_id is None:
            logger.warning(
                "the session of %s changed but has no ID, so it was not saved: "
                "pass session_id to accept()",
                request.path,
            )
            return
        started_here = accepted_id is not None and accepted_id != session.known_id
        if not await session.commit_changes(session_id, request.session, started_here=started_here):
            logger.info("the session of %s was deleted meanwhile; not restored", request.path)

    @staticmethod
    async def _admit(
        websocket: WebSocket, request: WebSocketRequest, middlewares: list[WebSocketMiddleware]
    ) -> bool:
        """Ask each middleware; a refusal is sent as a close code the client can read."""
        for middleware in middlewares:
            refusal = await middleware.before_websocket(request)
            if refusal is not None:
                code, reason = refusal
                await websocket.accept()
                await websocket.close(code, reason)
                return False
        return True


def _spec_version(scope: Scope) -> tuple[int, ...]:
    """The ASGI spec version the server speaks; 2.0 when it does not say."""
    try:
        return _parse_version(scope["asgi"]["spec_version"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return (2, 0)


@functools.lru_cache(maxsize=8)  # a server says the same thing at every handshake
def _parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


async def _close_quietly(websocket: WebSocket, code: int = 1000, reason: str | None = None) -> None:
    """The framework's own close, which must not fail whatever the server thinks of it."""
    try:
        await websocket.close(code, reason)
    except Exception:  # some servers refuse some close codes with a bare Exception
        logger.exception("closing the WebSocket with code %s failed", code)


def _body_values(request: Request) -> dict[str, Any]:
    """What a body offers to fill parameters: form fields, files, JSON keys."""
    if not request.body_params and not request.files and not isinstance(request._json, dict):
        return {}
    values: dict[str, Any] = {}
    if isinstance(request._json, dict):
        values.update(request._json)
    values.update((name, items[0]) for name, items in request.files.items() if items)
    values.update((name, items[0]) for name, items in request.body_params.items() if items)
    return values


# Every public name of App itself: never routable, whatever the subclass defines.
_RESERVED_NAMES = frozenset(name for name in dir(App) if not name.startswith("_")) | {
    "session_backend",
    "startup_handlers",
    "shutdown_handlers",
    "background_tasks",
    "middlewares",
    "max_body_size",
    "allowed_origins",
}
App._routes = RouteTable(App, reserved=_RESERVED_NAMES)
