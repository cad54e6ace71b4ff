"""What a handler knows about the request it answers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs

from micropie._asgi import Receive, Scope
from micropie.bodies import UploadFile, read_body

__all__ = ["Headers", "Request", "WebSocketRequest", "current_request"]


class Headers(Mapping[str, str]):
    """Request headers, looked up without regard to case.

    A name sent more than once maps to its values joined by ``", "``
    (``"; "`` for ``Cookie``).
    """

    __module__ = "micropie"

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        values: dict[str, list[str]] = {}
        for name, value in raw:
            values.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        # Joined once per name, not once per repeat: a flood of repeated
        # headers must cost linear time. HTTP/2 sends each cookie in a header
        # of its own, and cookies join with "; ".
        self._values = {
            key: ("; " if key == "cookie" else ", ").join(texts) for key, texts in values.items()
        }

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Headers({self._values!r})"


def parse_cookies(header: str) -> dict[str, str]:
    """Parse a ``Cookie`` header; pieces that are not ``name=value`` are skipped."""
    cookies: dict[str, str] = {}
    for piece in header.split(";"):
        name, sep, value = piece.partition("=")
        name = name.strip()
        if sep and name:
            cookies.setdefault(name, value.strip().strip('"'))
    return cookies


class Request:
    """The HTTP request being handled: ``self.request`` inside a handler.

    .. attribute:: scope
       :type: dict

       The ASGI connection scope.

    .. attribute:: path_params
       :type: list[str]

       The path segments after the handler's name.

    .. attribute:: session
       :type: dict

       The session: loaded before the handler runs, saved after it returns.

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
    ) -> None:
        self.scope = scope
        self.path_params: list[str] = path_params if path_params is not None else []
        self.session: dict[str, Any] = session if session is not None else {}
        self.body_params: dict[str, list[str]] = {}
        self.files: dict[str, list[UploadFile]] = {}
        self._json: Any = _NO_JSON
        self._renew_session = False
        self._body: bytes | None = None
        # Set by the App, for reading a body that it did not parse itself.
        self._receive: Receive | None = None
        self._max_body_size = 0

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

    @cached_property
    def headers(self) -> Headers:
        """The request headers."""
        return Headers(self.scope.get("headers", []))

    @cached_property
    def cookies(self) -> dict[str, str]:
        """The cookies the client sent."""
        # Every request reads this (for the session): scan for the one header
        # rather than build all of them.
        values = header_values(self.scope, b"cookie")
        return parse_cookies("; ".join(values)) if values else {}

    @cached_property
    def query_params(self) -> dict[str, list[str]]:
        """The query string's parameters, each with all of its values in order."""
        query = self.scope.get("query_string", b"")
        if not query:
            return {}
        return parse_qs(query.decode("latin-1"), keep_blank_values=True)

    def query(self, name: str, default: str | None = None) -> str | None:
        """The first value of the query parameter *name*, or *default*."""
        values = self.query_params.get(name)
        return values[0] if values else default

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

    async def body(self) -> bytes:
        """The raw request body, read once, at most ``App.max_body_size`` bytes.

        When it is larger, the request is answered with 413 instead. A
        ``multipart/form-data`` body is not available this way: read
        :attr:`body_params` and :attr:`files`.
        """
        if self._body is None:
            if self.files or self.content_type == "multipart/form-data":
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
        values = header_values(self.scope, b"content-type")
        return values[0].split(";", 1)[0].strip().lower() if values else ""


class WebSocketRequest(Request):
    """The handshake of the WebSocket being handled: ``self.request`` in a ``ws_`` handler."""

    __module__ = "micropie"

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        return list(self.scope.get("subprotocols", []))


def header_values(scope: Scope, name: bytes) -> list[str]:
    """The values of the header *name* (lower case), straight from the scope.

    Cheaper than :attr:`Request.headers` where one header is all a request needs.
    """
    # ASGI servers lower-case header names, so one comparison does.
    return [value.decode("latin-1") for key, value in scope.get("headers", ()) if key == name]


_NO_JSON: Any = object()

#: The request being handled by the current task.
current_request: ContextVar[Request] = ContextVar("micropie_current_request")
