"""Serving one HTTP request: from the ASGI scope to the handler and back."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from micropie._asgi import ASGIApp, Receive, Scope, Send
from micropie.bodies import BodyError, ClientGone, MultipartMissing
from micropie.middleware import HttpMiddleware, answer_of
from micropie.mounting import legacy_subapp_scope, replaying, route_path
from micropie.request import Request, current_request
from micropie.responses import (
    Response,
    close_stream,
    encode_headers,
    error_response,
    to_response,
    unavailable_response,
    without_length,
)
from micropie.routing import BindError, Route, RouteTable, split_path
from micropie.sessions import SessionHandle
from micropie.settings import AppSettings
from micropie.unavailable import Unavailable

__all__ = ["serve_http"]

logger = logging.getLogger("micropie")


async def serve_http(
    app: Any, routes: RouteTable, settings: AppSettings, scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer the request of *scope* with the handler of *app* that its path names."""
    head = scope["method"] == "HEAD"
    name, segments = split_path(route_path(scope) if scope.get("root_path") else scope["path"])
    route = routes.http.get(name)
    middlewares = settings.middlewares.http
    if route is None:
        route = routes.attached(app, name, websocket=False)
        # With middlewares, an unknown path is theirs first: one may route it
        # (request._route_handler) or hand it on (request._subapp), as in 0.x;
        # index() gets it only if none does.
        if route is None and not middlewares:
            route, segments = routes.fallback(name, segments)
            if route is None:
                await error_response(404).send(send, head=head)
                return
    request = Request(scope, segments, receive=receive, max_body_size=settings.max_body_size)
    try:
        if request.headers._get(b"content-type"):  # without one, there is nothing to parse
            await request._parse_body()
    except BodyError as exc:
        await error_response(exc.status, str(exc)).send(send, head=head)
        return
    except MultipartMissing as exc:
        logger.warning("%s refused: %s", request.path, exc)
        await error_response(415, "multipart/form-data is not supported here").send(send, head=head)
        return
    except ClientGone:
        return
    session = SessionHandle(settings.session_backend)
    try:
        if request.cookies:  # without a cookie there is no session to load
            request.session = await session.load(request.cookies)
    except Unavailable as exc:  # the store said so in the log, once per outage
        await unavailable_response(exc).send(send, head=head)
        return
    except Exception:
        logger.exception("loading the session for %s failed", request.path)
        await error_response(500).send(send, head=head)
        return
    token = current_request.set(request)
    try:
        response = await _respond(app, routes, name, route, request, session, middlewares)
    finally:
        current_request.reset(token)
        if request.files:
            request._close_files()
    if response is None:
        return
    if isinstance(response, _HandOff):
        await response.app(response.scope, replaying(await request.body(), receive), send)
        return
    watch: Receive | None = receive
    if response.stream is not None and not head:
        # The stream's disconnect watch reads receive(): the rest of the body
        # must be read first, or a stream that reads it would lose part of it.
        try:
            await request._read_whole_body()
        except ClientGone:
            await close_stream(response)
            return
        except Exception:
            # Too large to read here (BodyError), or a server whose receive()
            # fails: the stream goes unwatched.
            watch = None
    await response.send(send, head=head, receive=watch)


@dataclass(frozen=True, slots=True)
class _HandOff:
    """A middleware gave the request to another application (0.x's ``_subapp``)."""

    app: ASGIApp
    scope: Scope


async def _respond(
    app: Any,
    routes: RouteTable,
    name: str,
    route: Route | None,
    request: Request,
    session: SessionHandle,
    middlewares: tuple[HttpMiddleware, ...],
) -> Response | _HandOff | None:
    try:
        result = None
        for middleware in middlewares:
            result = answer_of(await middleware.before_request(request))
            if result is not None:
                break
        else:
            if request._subapp is not None:  # set by a 0.x middleware, rarely
                return await _hand_off(request)
            if request._route_handler is not None:
                route = routes.chosen(request._route_handler, request.path, websocket=False)
            elif route is None:
                route, request.path_params = routes.fallback(name, request.path_params)
            if route is None:
                result = error_response(404)
            elif route.takes_arguments:
                result = await _call_handler(app, route, request)
            elif route.is_async:  # most handlers take nothing: called as they are
                result = await route.function(app)
            else:
                # A def handler may block (time.sleep, a database driver): off
                # the event loop, which every other request and WebSocket needs.
                result = await asyncio.to_thread(route.function, app)
        response = result if isinstance(result, Response) else to_response(result)
        if middlewares:
            body = _as_text(response)
            for middleware in reversed(middlewares):
                answered = await _after_request(middleware, request, response, body)
                if answered is not response:
                    response, body = answered, _as_text(answered)
        if request._renew_session or session.changed(request.session):
            cookie = await session.commit_http(
                request.session,
                secure=request.is_secure,
                path=request.path,
                renew=request._renew_session,
            )
            if cookie is not None:
                response.headers.append((b"set-cookie", cookie))
    except BodyError as exc:  # from request.body() inside the handler
        return error_response(exc.status, str(exc))
    except ClientGone:
        return None  # nobody is left to answer
    except Unavailable as exc:  # a session store or a broadcast cannot be reached now
        logger.info("%s answered with 503: %s", request.path, exc)
        return unavailable_response(exc)
    except Exception:
        logger.exception("HTTP handler %s failed", route.name if route else request.path)
        return error_response(500)
    return response


async def _hand_off(request: Request) -> _HandOff | Response:
    """The request for the application a 0.x middleware chose (``request._subapp``)."""
    if request.files or request.content_type == "multipart/form-data":
        # Parsed as it came, for the middlewares: it is not kept to give again.
        logger.error(
            "a middleware handed the multipart request %s to request._subapp, but its "
            "body was parsed already; serve that application with App.mount instead",
            request.path,
        )
        return error_response(501, "multipart bodies cannot be handed on here")
    await request._read_whole_body()  # to be given again, whole
    return _HandOff(request._subapp, legacy_subapp_scope(request.scope, request))


async def _after_request(
    middleware: HttpMiddleware, request: Request, response: Response, body: str | bytes | None
) -> Response:
    """*response* after the middleware's hook: itself, changed in place, or what it returned."""
    # Without the Content-Length a streamed file may carry: it is not the
    # middleware's to change, and is kept as it is.
    length = [(k, v) for k, v in response.headers if k == b"content-length"]
    headers = [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in response.headers
        if k != b"content-length"
    ]
    given = headers.copy()
    returned = await middleware.after_request(request, response.status, body, headers)
    answer = answer_of(returned, response.status, body, headers)
    if answer is None:
        if headers != given:
            # Headers changed in place: the response, stream and all, stays.
            changed = encode_headers(headers)
            if response.body is not None:
                changed = without_length(changed)
            response.headers = [*changed, *length]
        return response
    if type(returned) is dict and "body" not in returned and response.stream is not None:
        # A 0.x dict that leaves the body out keeps it: the stream goes on.
        try:
            kept = to_response((answer[0], response.stream, answer[2]))
        except Exception:
            await close_stream(response)
            raise
        kept.headers.extend(length)
        return kept
    await close_stream(response)  # the stream is dropped: let it clean up now
    return to_response(answer)


def _as_text(response: Response) -> str | bytes | None:
    """The body as ``after_request`` sees it: text (HTML, JSON, ...) as ``str``, as in 0.x."""
    body = response.body
    if body is None:
        return None
    content_type = next((v for k, v in response.headers if k == b"content-type"), b"")
    if content_type.startswith(b"text/") or b"json" in content_type:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return body


async def _call_handler(app: Any, route: Route, request: Request) -> Any:
    """Call a handler that takes arguments with those the request gives."""
    try:
        args, kwargs = route.bind(
            request.path_params, request.query_params, request._parameter_values(), request.session
        )
    except BindError as exc:
        return error_response(400, f"Bad Request: {exc}")
    if route.is_async:
        return await route.function(app, *args, **kwargs)
    return await asyncio.to_thread(route.function, app, *args, **kwargs)
