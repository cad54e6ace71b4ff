"""Turning what an HTTP handler returns into an HTTP response."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from micropie._asgi import Send

__all__ = ["Response", "to_response"]

_HTML = b"text/html; charset=utf-8"
_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"
_BINARY = b"application/octet-stream"


@dataclass(slots=True)
class Response:
    """A status, headers and a body, ready to send."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def send(self, send: Send) -> None:
        headers = [*self.headers, (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def error_response(status: int, detail: str | None = None) -> Response:
    """A short plain-text error page; *detail* never carries exception text."""
    text = HTTPStatus(status).phrase if detail is None else detail
    return Response(status, text.encode("utf-8"), [(b"content-type", _TEXT)])


def to_response(result: Any) -> Response:
    """Interpret a handler's return value.

    ``str`` is HTML, ``bytes`` is sent as it is, a ``dict`` or ``list`` becomes
    JSON, ``None`` an empty body; a tuple ``(status, body)`` or
    ``(status, body, headers)`` sets the status and adds headers.
    """
    status = 200
    extra: list[tuple[bytes, bytes]] = []
    if isinstance(result, tuple):
        if len(result) not in (2, 3):
            raise TypeError(
                f"a handler's tuple must be (status, body) or (status, body, headers), "
                f"got {len(result)} items"
            )
        if len(result) == 3:
            extra = _encode_headers(result[2])
        status, result = result[0], result[1]
        if type(status) is not int or not 100 <= status <= 599:
            raise ValueError(f"HTTP status must be an int from 100 to 599, got {status!r}")
    body, content_type = _encode_body(result)
    headers = extra
    if content_type is not None and not any(name == b"content-type" for name, _ in extra):
        headers = [(b"content-type", content_type), *extra]
    return Response(status, body, headers)


def _encode_body(body: Any) -> tuple[bytes, bytes | None]:
    if isinstance(body, str):
        return body.encode("utf-8"), _HTML
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body), _BINARY
    if body is None:
        return b"", None
    if isinstance(body, (dict, list)):
        return json.dumps(body, separators=(",", ":")).encode("utf-8"), _JSON
    raise TypeError(
        f"a handler returned {type(body).__name__}; return str, bytes, a dict or "
        "list for JSON, None, or a (status, body[, headers]) tuple"
    )


def _encode_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> list[tuple[bytes, bytes]]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    encoded = []
    for name, value in pairs:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header names and values must be str, got {name!r}: {value!r}")
        if any(c in name or c in value for c in "\r\n\0") or not name:
            raise ValueError(f"header {name!r} has an empty name or a CR, LF or NUL character")
        encoded.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return encoded
