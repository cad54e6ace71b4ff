"""The App: an ASGI application whose methods are its routes."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, cast

from micropie._asgi import ASGIApp, Receive, Scope, Send
from micropie.background import BackgroundTasks
from micropie.bodies import DEFAULT_MAX_BODY_SIZE
from micropie.http_dispatch import serve_http
from micropie.lifespan import LifespanHandler, serve_lifespan
from micropie.middleware import HttpMiddleware, MiddlewareList, WebSocketMiddleware
from micropie.mounting import add_mount, find_mount
from micropie.origins import normalize_hosts, normalize_origins, refuse_host
from micropie.request import Request, current_request
from micropie.responses import redirect
from micropie.routing import RouteTable
from micropie.sessions import InMemorySessionBackend, SessionBackend
from micropie.settings import AppSettings, Setting
from micropie.templates import TemplateRenderer
from micropie.websocket_dispatch import serve_websocket

__all__ = ["App"]


class App:
    """An ASGI application: subclass it, and each method becomes a route.

    ``/greet/Alice`` calls ``greet("Alice")`` over HTTP, and a WebSocket
    handshake at ``/chat`` calls ``ws_chat(websocket)``. Sessions are kept by
    *session_backend*, an :class:`~micropie.sessions.InMemorySessionBackend`
    unless you pass another. WebSocket handshakes from pages of other sites are
    refused unless *allowed_origins* names them. Requests for hosts that
    *allowed_hosts* does not name are refused. Templates are read from
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

    .. attribute:: ws_middlewares
       :type: list

       More :class:`~micropie.WebSocketMiddleware` instances, the list
       MicroPie 0.x had for them: they run after those of
       :attr:`middlewares` (and their ``after_websocket`` before them).

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

    .. attribute:: allowed_hosts
       :type: frozenset[str]

       The host names the site answers for, compared with each request's
       ``Host`` header without regard to case: ``"example.com"`` on any
       port, ``"example.com:8000"`` on that port only, ``"*.example.com"``
       for every subdomain (not ``example.com`` itself), ``"[::1]"`` for an
       IPv6 address. ``"*"``, the default, answers for every host. Any other
       ``Host``, a malformed one, or none at all is answered with 400 (a
       WebSocket handshake: refused with HTTP 403) before anything else
       runs, mounted applications included. Set it in production: it is what
       stops DNS rebinding (see :doc:`/security`).
    """

    __module__ = "micropie"
    # Name-mangled (_App__routes, _App__settings): a subclass's own helpers,
    # whatever their names, never collide with what App keeps.
    __routes: ClassVar[RouteTable]

    session_backend: Setting[SessionBackend, SessionBackend] = Setting()
    startup_handlers: Setting[list[LifespanHandler], list[LifespanHandler]] = Setting()
    shutdown_handlers: Setting[list[LifespanHandler], list[LifespanHandler]] = Setting()
    background_tasks: Setting[BackgroundTasks, BackgroundTasks] = Setting()
    middlewares: Setting[MiddlewareList, Iterable[HttpMiddleware | WebSocketMiddleware]] = Setting(
        MiddlewareList.of
    )
    ws_middlewares: Setting[MiddlewareList, Iterable[WebSocketMiddleware]] = Setting(
        MiddlewareList.websocket_only
    )
    max_body_size: Setting[int, int] = Setting()
    allowed_origins: Setting[frozenset[str], Iterable[str]] = Setting(normalize_origins)
    allowed_hosts: Setting[frozenset[str], Iterable[str]] = Setting(normalize_hosts)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _SETTINGS & vars(cls).keys():
            if inspect.isfunction(vars(cls)[name]):
                continue  # a method of that name: never a route, and harmless
            # A value would hide the setting from the machinery, which would go
            # on with App's: say so now rather than ignore it.
            raise TypeError(
                f"{cls.__name__}.{name}: {name!r} is a setting of App; set it in "
                f"__init__ after super().__init__() (self.{name} = ...), or pass "
                "it to App.__init__"
            )
        cls.__routes = RouteTable(cls, reserved=_RESERVED_NAMES)

    def __init__(
        self,
        session_backend: SessionBackend | None = None,
        *,
        templates_dir: str | Path = "templates",
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        allowed_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] = ("*",),
        middlewares: Iterable[HttpMiddleware | WebSocketMiddleware] = (),
    ) -> None:
        self.__settings = AppSettings(
            session_backend=(
                session_backend if session_backend is not None else InMemorySessionBackend()
            ),
            startup_handlers=[],
            shutdown_handlers=[],
            background_tasks=BackgroundTasks(),
            middlewares=MiddlewareList.of(middlewares),
            ws_middlewares=MiddlewareList.websocket_only(()),
            mounts=(),
            max_body_size=max_body_size,
            allowed_origins=normalize_origins(allowed_origins),
            allowed_hosts=normalize_hosts(allowed_hosts),
            templates=TemplateRenderer(templates_dir),
        )

    def on_startup(self, handlers: Iterable[LifespanHandler]) -> None:
        """Add *handlers* to :attr:`startup_handlers` (as MicroPie 0.x's
        ``app.on_startup([...])`` did)."""
        self.startup_handlers.extend(_handlers(handlers, "on_startup"))

    def on_shutdown(self, handlers: Iterable[LifespanHandler]) -> None:
        """Add *handlers* to :attr:`shutdown_handlers` (as MicroPie 0.x's
        ``app.on_shutdown([...])`` did)."""
        self.shutdown_handlers.extend(_handlers(handlers, "on_shutdown"))

    def mount(self, path: str, app: ASGIApp) -> None:
        """Serve *app*, any ASGI application (another :class:`App`, Starlette,
        python-socketio's ``ASGIApp``), at *path* and every path below it,
        over HTTP and WebSocket.

        It gets the request as the ASGI specification says: ``root_path``
        grows by *path*, and ``path`` stays whole. It answers for itself: this
        App's middlewares, sessions and Origin check do not apply to it, and
        its lifespan events are not sent (start what it needs in
        :attr:`startup_handlers`); only :attr:`allowed_hosts` does. *path*
        starts with ``/``; the longest mounted prefix that matches wins.
        """
        settings = AppSettings.for_app(self)
        settings.mounts = add_mount(settings.mounts, path, app)

    def __copy__(self) -> App:
        # A copy has settings of its own, as it had when they were attributes.
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.__settings = dataclasses.replace(self.__settings)
        return clone

    @property
    def request(self) -> Request:
        """The request the current handler is answering (in a ``ws_`` handler,
        the :class:`~micropie.WebSocketRequest` of its handshake)."""
        try:
            request = current_request.get()
        except LookupError:
            raise RuntimeError("self.request is only available inside a handler") from None
        # Typed for the common case, an HTTP handler; a ws_ handler gets the
        # handshake, which has everything but a body.
        return cast(Request, request)

    def _redirect(
        self,
        location: str,
        status: int | Iterable[tuple[str, str]] | None = 302,
        headers: Iterable[tuple[str, str]] = (),
        *,
        extra_headers: Iterable[tuple[str, str]] | None = (),
    ) -> tuple[int, str, list[tuple[str, str]]]:
        """Return this from a handler to redirect the client to *location*
        (percent-encoded where it is not ASCII), with *status* and *headers*.

        Apps written for MicroPie 0.x pass a list of headers second, or as
        *extra_headers*: both mean status 302 with those headers."""
        return redirect(location, status, [*headers, *(extra_headers or ())])

    async def _render_template(self, name: str, /, **context: Any) -> str:
        """Render the Jinja2 template *name* from the templates directory, autoescaped."""
        return await AppSettings.for_app(self).templates.render(name, context)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            settings = self.__settings
        except AttributeError:
            settings = AppSettings.for_app(self)  # which says what is wrong
        kind = scope["type"]
        hosts = settings.allowed_hosts
        # Before everything, mounts included; nothing to do unless hosts are named.
        if hosts.checked and (kind == "http" or kind == "websocket") and not hosts.allow(scope):
            await refuse_host(scope, send)
            return
        if settings.mounts and kind != "lifespan":
            mounted = find_mount(settings.mounts, scope)
            if mounted is not None:
                app, scope = mounted
                await app(scope, receive, send)
                return
        if kind == "http":
            await serve_http(self, type(self).__routes, settings, scope, receive, send)
        elif kind == "websocket":
            await serve_websocket(self, type(self).__routes, settings, scope, receive, send)
        elif kind == "lifespan":
            await serve_lifespan(
                receive,
                send,
                settings.startup_handlers,
                settings.shutdown_handlers,
                before_shutdown=settings.background_tasks.shutdown,
            )
        else:
            raise ValueError(f"MicroPie does not serve ASGI scopes of type {kind!r}")


def _handlers(handlers: Iterable[LifespanHandler], method: str) -> list[LifespanHandler]:
    """*handlers* as a list (a single function, too), each checked to be callable."""
    listed: list[Any] = [handlers] if callable(handlers) else list(handlers)
    for handler in listed:
        if not callable(handler):
            raise TypeError(f"{method}() takes functions to call, not {type(handler).__name__}")
    return listed


# Every public name of App itself (its settings, request): never a route,
# whatever a subclass defines under that name.
_RESERVED_NAMES = frozenset(name for name in dir(App) if not name.startswith("_"))
_SETTINGS = frozenset(name for name, value in vars(App).items() if isinstance(value, Setting))
App._App__routes = RouteTable(App, reserved=_RESERVED_NAMES)  # type: ignore[attr-defined]
