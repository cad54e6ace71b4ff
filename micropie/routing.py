"""From a path to a handler method and its arguments.

Each App subclass gets its route table once, when the class is created, so that
a request costs a dictionary look-up, never a signature inspection.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["BindError", "Route", "RouteTable", "split_path"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
WEBSOCKET_PREFIX = "ws_"
logger = logging.getLogger("micropie")


class BindError(Exception):
    """The request cannot fill the handler's parameters; the message says why."""


@dataclass(frozen=True, slots=True)
class _Parameter:
    name: str
    positional: bool
    default: Any  # inspect.Parameter.empty when required


@dataclass(frozen=True, slots=True)
class Route:
    """A handler method and what its signature asks of a request."""

    name: str
    function: Callable[..., Any]
    parameters: tuple[_Parameter, ...]
    takes_rest: bool  # has *args, which takes the remaining path segments
    is_async: bool
    # Whether the request can give it anything (most handlers take nothing):
    # when not, dispatch need not call bind().
    takes_arguments: bool

    @classmethod
    def from_function(cls, name: str, function: Callable[..., Any], skip: int) -> Route:
        """Describe *function*, leaving out its first *skip* parameters (``self``, ...)."""
        signature = inspect.signature(function)
        found = list(signature.parameters.values())
        if len(found) < skip or any(p.kind not in _POSITIONAL for p in found[:skip]):
            what = "self and the WebSocket" if skip == 2 else "self"
            raise TypeError(f"handler {name!r} must take {what} as its first argument")
        parameters = []
        takes_rest = False
        for parameter in found[skip:]:
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                takes_rest = True
            elif parameter.kind is not inspect.Parameter.VAR_KEYWORD:
                parameters.append(
                    _Parameter(parameter.name, parameter.kind in _POSITIONAL, parameter.default)
                )
        return cls(
            name=name,
            function=function,
            parameters=tuple(parameters),
            takes_rest=takes_rest,
            is_async=inspect.iscoroutinefunction(function),
            takes_arguments=bool(parameters) or takes_rest,
        )

    @property
    def takes_segments(self) -> bool:
        """Whether the handler has a parameter that a path segment can fill."""
        return self.takes_rest or any(parameter.positional for parameter in self.parameters)

    def bind(
        self,
        segments: list[str],
        query: Mapping[str, list[str]],
        body: Mapping[str, Any],
        session: Mapping[str, Any],
    ) -> tuple[list[Any], dict[str, Any]]:
        """Arguments for the handler. A parameter the session holds a value for
        gets that value, and the request may not give it too; the others get,
        in order, path segments by position, then by name the query string and
        the body, then their defaults. Segments beyond the parameters go to
        ``*args``, or are left out (as MicroPie 0.x did).

        Raises :class:`BindError` when that is not enough, or when the request
        gives a value the session holds.
        """
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        position = 0
        count = len(segments)
        for parameter in self.parameters:
            name = parameter.name
            segment = parameter.positional and position < count
            if session and name in session:  # most requests have no session: no look-up
                # What the session holds is the server's own record (who is
                # logged in, their rights): a client that names it too is
                # refused, neither obeyed nor silently overruled.
                if segment or name in query or name in body:
                    raise BindError(_refusal(name, segment, query))
                value: Any = session[name]
            elif segment:
                args.append(segments[position])
                position += 1
                continue
            else:
                values = query.get(name)
                if values:
                    value = values[0]
                elif name in body:
                    value = body[name]
                elif parameter.default is not inspect.Parameter.empty:
                    value = parameter.default
                else:
                    raise BindError(f"missing required parameter {name!r}")
            if parameter.positional:
                args.append(value)
            else:
                kwargs[name] = value
        if self.takes_rest:
            args.extend(segments[position:])
        return args, kwargs


def _refusal(name: str, segment: bool, query: Mapping[str, list[str]]) -> str:
    """Why the request may not give *name*: the session holds it, and the
    request has it in the path (*segment*), the query string or the body."""
    # In the query even when empty (``?is_admin=``): a value of the client's choosing.
    where = "path" if segment else "query string" if name in query else "body"
    return f"parameter {name!r} comes from the session and may not be given in the {where}"


class RouteTable:
    """The routes of one App subclass, HTTP and WebSocket apart."""

    def __init__(self, cls: type, reserved: frozenset[str]) -> None:
        self.http: dict[str, Route] = {}
        self.websocket: dict[str, Route] = {}
        self._names = frozenset(dir(cls))
        self._cls = cls
        self._reserved = reserved
        self._chosen: dict[tuple[str, bool], Route] = {}
        self._attached: dict[tuple[str, bool], tuple[Callable[..., Any], Route]] = {}
        for name in dir(cls):
            # The App's own attributes (request, startup_handlers, ...) are never
            # routes, even where a subclass overrides them.
            if name.startswith("_") or name in reserved:
                continue
            member = inspect.getattr_static(cls, name)
            if not inspect.isfunction(member):
                continue
            if name.startswith(WEBSOCKET_PREFIX):
                route_name = name[len(WEBSOCKET_PREFIX) :]
                if not route_name or route_name.startswith("_"):
                    continue  # "ws__private" is as private as "_private"
                if not inspect.iscoroutinefunction(member):
                    raise TypeError(f"WebSocket handler {name!r} must be 'async def'")
                self.websocket[route_name] = Route.from_function(name, member, skip=2)
            else:
                self.http[name] = Route.from_function(name, member, skip=1)
        index = self.http.get("index")
        # A path whose first segment names nothing goes to an index() that
        # takes segments, as in MicroPie 0.x.
        self._fallback = index if index is not None and index.takes_segments else None

    def chosen(self, name: str, path: str, *, websocket: bool) -> Route | None:
        """The handler method named *name*, as a middleware written for MicroPie
        0.x chooses one for *path* (``request._route_handler``,
        ``_ws_route_handler``): private names too, since the middleware, not
        the path, chose it; never one of App's own, nor a ``ws_`` method for
        HTTP. ``None``, and a warning, if there is none."""
        route = self._chosen.get((name, websocket))
        if route is not None:
            return route
        member = inspect.getattr_static(self._cls, name, None) if isinstance(name, str) else None
        if (
            not inspect.isfunction(member)
            or name in self._reserved
            or name.startswith("__")
            or (not websocket and name.startswith(WEBSOCKET_PREFIX))
            or member.__module__ == "micropie.app"  # App's machinery, not a handler
        ):
            attribute, kind = (
                ("_ws_route_handler", "WebSocket") if websocket else ("_route_handler", "HTTP")
            )
            logger.warning(
                "a middleware set request.%s to %r for %s, which names no %s handler: %s",
                attribute,
                name,
                path,
                kind,
                "the handshake is refused" if websocket else "answered with 404",
            )
            return None
        if websocket and not inspect.iscoroutinefunction(member):
            raise TypeError(f"WebSocket handler {name!r} must be 'async def'")
        route = Route.from_function(name, member, skip=2 if websocket else 1)
        self._chosen[(name, websocket)] = route
        return route

    def attached(self, app: object, name: str, *, websocket: bool) -> Route | None:
        """The handler for *name* attached to the instance *app* rather than
        defined in its class (``app.index = handler``, as 0.x's tests do), or
        ``None``. Only looked for where the class has no route."""
        attribute = WEBSOCKET_PREFIX + name if websocket else name
        if name.startswith("_") or attribute in self._reserved:
            return None
        if not websocket and name.startswith(WEBSOCKET_PREFIX):
            return None
        member = vars(app).get(attribute)
        # A function, or a method bound to this App: not any callable an App
        # keeps (a class, a builtin, a client object), which is no handler.
        if not (
            inspect.isfunction(member) or (inspect.ismethod(member) and member.__self__ is app)
        ):
            return None
        cached = self._attached.get((attribute, websocket))
        if cached is not None and cached[0] is member:
            return cached[1]
        if websocket and not inspect.iscoroutinefunction(member):
            raise TypeError(f"WebSocket handler {attribute!r} must be 'async def'")
        # Bound already (or a plain function): it takes no self, so the App
        # that dispatch passes first is dropped.
        route = Route.from_function(attribute, member, skip=1 if websocket else 0)
        route = dataclasses.replace(route, function=_without_app(member))
        self._attached[(attribute, websocket)] = (member, route)
        return route

    def fallback(self, name: str, segments: list[str]) -> tuple[Route | None, list[str]]:
        """For a path whose first segment *name* names no HTTP handler: ``index``
        and every segment, if it takes them and *name* is no name of the App's."""
        if self._fallback is None:
            return None, segments
        if name.startswith(("_", WEBSOCKET_PREFIX)) or name in self._names:
            return None, segments  # private, a WebSocket's, or the App's own: never index's
        return self._fallback, [name, *segments]


def _without_app(function: Callable[..., Any]) -> Callable[..., Any]:
    def call(app: object, *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    return call


def split_path(path: str) -> tuple[str, list[str]]:
    """``"/greet/Alice"`` -> ``("greet", ["Alice"])``; ``"/"`` -> ``("index", [])``."""
    segments = path.strip("/").split("/")
    name = segments[0] or "index"
    return name, segments[1:]
