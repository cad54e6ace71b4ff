"""What a handler knows about the request it answers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any, NoReturn
from urllib.parse import parse_qs

from micropie._asgi import Receive, Scope
from micropie.bodies import (
    DEFAULT_MAX_BODY_SIZE,
    UploadList,
    parse_form,
    parse_json,
    read_body,
    read_multipart,
)

__all__ = ["HTTPConnection", "Headers", "Request", "WebSocketRequest", "current_request"]


class Headers(Mapping[str, str]):
    """Request headers, looked up without regard to case.

    A name sent more than once maps to its values joined by ``", "``
    (``"; "`` for ``Cookie``); :meth:`getlist` gives them one by one.

    .. attribute:: raw
       :type: list[tuple[bytes, bytes]]

       The headers as the server passed them: ``(name, value)`` byte
       strings, names in lower case, in the order received.
    """

    __module__ = "micropie"

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw
        self._joined: dict[str, str] | None = None
        # Each value by name, for what MicroPie reads itself (the cookie, the
        # content type, a handshake's origin and host): made by dict() in C,
        # cheaper than one scan of the headers. None when a name repeats
        # (every value counts) or for what is no list of pairs: _get scans.
        index: dict[bytes, bytes] | None
        try:
            index = dict(raw)
            if len(index) != len(raw):
                index = None
        except Exception:  # the scan fails on it as it would have
            index = None
        self._index = index

    def getlist(self, name: str) -> list[str]:
        """Every value of the header *name*, in the order received; ``[]`` if none."""
        key = name.lower().encode("latin-1")
        return [value.decode("latin-1") for header, value in self.raw if header.lower() == key]

    def _get(self, key: bytes) -> list[str]:
        # ASGI servers lower-case header names, so *key* is lower case too.
        index = self._index
        if index is None:
            return [value.decode("latin-1") for header, value in self.raw if header == key]
        value = index.get(key, _ABSENT)
        return [] if value is _ABSENT else [value.decode("latin-1")]

    def _values(self) -> dict[str, str]:
        joined = self._joined
        if joined is None:
            values: dict[str, list[str]] = {}
            for name, value in self.raw:
                values.setdefault(name.decode("latin-1").lower(), []).append(
                    value.decode("latin-1")
                )
            # Joined once per name, not once per repeat: a flood of repeated
            # headers must cost linear time. HTTP/2 sends each cookie in a
            # header of its own, and cookies join with "; ".
            joined = self._joined = {
                key: ("; " if key == "cookie" else ", ").join(texts)
                for key, texts in values.items()
            }
        return joined

    def __getitem__(self, name: str) -> str:
        return self._values()[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values()

    def __iter__(self) -> Iterator[str]:
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())

    def __repr__(self) -> str:
        return f"Headers({self._values()!r})"


_ABSENT: Any = object()


def parse_cookies(header: str) -> dict[str, str]:
    """Parse a ``Cookie`` header; pieces that are not ``name=value`` are skipped."""
    cookies: dict[str, str] = {}
    for piece in header.split(";"):
        name, sep, value = piece.partition("=")
        name = name.strip()
        if sep and name:
            cookies.setdefault(name, value.strip().strip('"'))
    return cookies


class HTTPConnection:
    """What HTTP requests and WebSocket handshakes have in common.

    .. attribute:: scope
       :type: dict

       The ASGI connection scope.

    .. attribute:: path_params
       :type: list[str]

       The path segments after the handler's name.

    .. attribute:: session
       :type: dict

       The session: loaded before the handler runs, saved after it returns.
    """

    __module__ = "micropie"

    # What a middleware written for MicroPie 0.x sets to route the request
    # itself: class defaults, read on every request without a dict look-up.
    _route_handler: str | None = None
    _ws_route_handler: str | None = None
    _subapp: Any = None

    def __init__(
        self,
        scope: Scope,
        path_params: list[str] | None = None,
        session: dict[str, Any] | None = None,
    ) -> None:
        self.scope = scope
        self.path_params: list[str] = path_params if path_params is not None else []
        self.session: dict[str, Any] = session if session is not None else {}
        self._headers: Headers | None = None
        self._cookies: dict[str, str] | None = None
        self._query_params: dict[str, list[str]] | None = None

    @property
    def method(self) -> str:
        """The HTTP method, such as ``"GET"``; ``"GET"`` for a WebSocket handshake."""
        return str(self.scope.get("method", "GET"))

    @property
    def path(self) -> str:
        """The request path, percent-decoded, such as ``"/greet/Alice"``."""
        return str(self.scope["path"])

    @property
    def is_secure(self) -> bool:
        """Whether the request came over TLS (``https`` or ``wss``)."""
        return self.scope.get("scheme") in ("https", "wss")

    # Cached by hand, not with functools.cached_property, which takes a lock
    # on every first read on Python 3.11 (and each request reads these); a
    # middleware may still replace them (query_params, say).
    @property
    def headers(self) -> Headers:
        """The request headers."""
        if self._headers is None:
            self._headers = Headers(self.scope.get("headers", []))
        return self._headers

    @headers.setter
    def headers(self, headers: Headers) -> None:
        self._headers = headers

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies the client sent."""
        if self._cookies is None:
            values = self.headers._get(b"cookie")
            self._cookies = parse_cookies("; ".join(values)) if values else {}
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: dict[str, str]) -> None:
        self._cookies = cookies

    @property
    def query_params(self) -> dict[str, list[str]]:
        """The query string's parameters, each with all of its values in order."""
        if self._query_params is None:
            query = self.scope.get("query_string", b"")
            self._query_params = (
                parse_qs(query.decode("latin-1"), keep_blank_values=True) if query else {}
            )
        return self._query_params

    @query_params.setter
    def query_params(self, params: dict[str, list[str]]) -> None:
        self._query_params = params

    def query(self, name: str, default: str | None = None) -> str | None:
        """The first value of the query parameter *name*, or *default*."""
        values = self.query_params.get(name)
        return values[0] if values else default


class Request(HTTPConnection):
    """The HTTP request being handled: ``self.request`` inside a handler.

    *receive* and *max_body_size* let :meth:`body` read a body that was not
    parsed up front; a Request built without them (in a test, say) has an
    empty one.

    .. attribute:: body_params
       :type: dict[str, list[str]]

       The fields of a form body (URL-encoded or multipart), each with all
       of its values in order.

    .. attribute:: files
       :type: dict[str, list[micropie.UploadFile]]

       The files of a ``multipart/form-data`` body.
    """

    __module__ = "micropie"

    def __init__(
        self,
        scope: Scope,
        path_params: list[str] | None = None,
        session: dict[str, Any] | None = None,
        *,
        receive: Receive | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        super().__init__(scope, path_params, session)
        self.body_params: dict[str, list[str]] = {}
        self.files: dict[str, UploadList] = {}
        self._json: Any = _NO_JSON
        self._renew_session = False
        self._body: bytes | None = None
        self._receive = receive
        self._max_body_size = max_body_size

    def renew_session(self) -> None:
        """Move the session to a new ID when this response is sent, and retire
        the old one: call it when a user logs in, so that an ID planted or seen
        before the login is worth nothing after it (session fixation).

        Over HTTP only: a WebSocket cannot set a cookie once accepted.
        """
        self._renew_session = True

    def form(self, name: str, default: str | None = None) -> str | None:
        """The first value of the form field *name*, or *default*."""
        values = self.body_params.get(name)
        return values[0] if values else default

    def json(self, name: str | None = None, default: Any = None) -> Any:
        """The JSON body, parsed; with *name*, that key of a JSON object.

        *default* when the body was not JSON, or has no such key.
        """
        if self._json is _NO_JSON:
            return default
        if name is None:
            return self._json
        if isinstance(self._json, dict):
            return self._json.get(name, default)
        return default

    @property
    def get_json(self) -> Any:
        """The parsed JSON body, or ``{}`` when the body was not JSON: the
        attribute of MicroPie 0.x (before 0.32), kept for apps written for it.
        New code calls :meth:`json`."""
        return {} if self._json is _NO_JSON else self._json

    async def body(self) -> bytes:
        """The raw request body, read once, at most ``App.max_body_size`` bytes.

        When it is larger, the request is answered with 413 instead. A
        ``multipart/form-data`` body is not available this way: read
        :attr:`body_params` and :attr:`files`.
        """
        if self._body is None:
            if self.files or self.content_type == _MULTIPART:
                raise RuntimeError(
                    "a multipart body is parsed as it arrives, into body_params and "
                    "files; its raw bytes are not kept"
                )
            if self._receive is None:
                self._body = b""
            else:
                self._body = await read_body(self._receive, self._max_body_size)
        return self._body

    @property
    def content_type(self) -> str:
        """The media type of the body, without parameters, lower case."""
        values = self.headers._get(b"content-type")
        return values[0].split(";", 1)[0].strip().lower() if values else ""

    async def _parse_body(self) -> None:
        """Parse a form or JSON body up front, so that it can fill parameters."""
        content_type = self.content_type
        if content_type == _FORM:
            self.body_params = parse_form(await self.body())
        elif content_type == _MULTIPART:
            if self._receive is not None:
                self.body_params, self.files = await read_multipart(
                    self._receive, self.headers["content-type"], self._max_body_size
                )
        elif content_type == "application/json" or content_type.endswith("+json"):
            body = await self.body()
            if body:
                self._json = parse_json(body)

    async def _read_whole_body(self) -> None:
        """Read what is left of the body, if anything may be: afterwards nothing
        but ``http.disconnect`` can come from ``receive``."""
        if self._body is None and not self.files and self.content_type != _MULTIPART:
            await self.body()

    def _parameter_values(self) -> dict[str, Any]:
        """What the body offers to fill parameters: form fields, files, JSON keys."""
        json_object = self._json if isinstance(self._json, dict) else None
        if not self.body_params and not self.files and json_object is None:
            return {}
        values: dict[str, Any] = dict(json_object or {})
        values.update((name, items[0]) for name, items in self.files.items() if items)
        values.update((name, items[0]) for name, items in self.body_params.items() if items)
        return values

    def _close_files(self) -> None:
        for uploads in self.files.values():
            for upload in uploads:
                upload.close()


class WebSocketRequest(HTTPConnection):
    """The handshake of the WebSocket being handled: ``self.request`` in a ``ws_`` handler."""

    __module__ = "micropie"

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        return list(self.scope.get("subprotocols", []))

    def renew_session(self) -> NoReturn:
        """Raise :class:`RuntimeError`: a WebSocket cannot renew its session.

        Moving a session to a new ID needs a new cookie, and a WebSocket
        handler can send one in its handshake only, to start a session
        (:meth:`WebSocket.accept`). Renew the session over HTTP instead, in
        the request that logs the user in (:meth:`Request.renew_session`).
        """
        raise RuntimeError(
            "renew_session() works over HTTP only: a WebSocket cannot send the new session "
            "cookie, nor retire the old one; renew the session in the HTTP request that "
            "logs the user in"
        )


_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
_NO_JSON: Any = object()

#: The request being handled by the current task: a :class:`Request`, or a
#: :class:`WebSocketRequest` in a ``ws_`` handler.
current_request: ContextVar[Request | WebSocketRequest] = ContextVar("micropie_current_request")
