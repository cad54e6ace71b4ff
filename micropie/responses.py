"""Turning what an HTTP handler returns into an HTTP response, and sending it."""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from micropie._asgi import Send

__all__ = ["Response", "error_response", "redirect", "to_response"]

logger = logging.getLogger("micropie")

_HTML = b"text/html; charset=utf-8"
_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"
_BINARY = b"application/octet-stream"

Stream = Iterator[Any] | AsyncIterator[Any]


@dataclass(slots=True)
class Response:
    """A status, headers, and either a whole body or a stream of chunks."""

    status: int
    body: bytes | None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    stream: Stream | None = None

    async def send(self, send: Send, *, head: bool = False) -> None:
        """Send it; with *head*, the status and headers only (for ``HEAD``)."""
        headers = self.headers
        if self.body is not None:
            headers.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        if self.stream is None or head:
            await _close_stream(self.stream)
            body = b"" if head or self.body is None else self.body
            await send({"type": "http.response.body", "body": body})
            return
        await self._send_stream(send, self.stream)

    @staticmethod
    async def _send_stream(send: Send, stream: Stream) -> None:
        try:
            if isinstance(stream, AsyncIterator):
                async for chunk in stream:
                    await send(_more(chunk))
            else:
                for chunk in stream:
                    await send(_more(chunk))
        except OSError:
            await _close_stream(stream)  # the client left: stop producing
            return
        except Exception:
            # The status has gone out, so there is no error page to send: end
            # without the final chunk, and the client sees a truncated response.
            logger.exception("a streamed response failed midway")
            await _close_stream(stream)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def error_response(status: int, detail: str | None = None) -> Response:
    """A short plain-text error page; *detail* is ours, never exception text."""
    text = HTTPStatus(status).phrase if detail is None else detail
    return Response(status, text.encode("utf-8"), [(b"content-type", _TEXT)])


def redirect(
    location: str, status: int = 302, headers: Iterable[tuple[str, str]] = ()
) -> tuple[int, str, list[tuple[str, str]]]:
    """A handler return value that redirects to *location*."""
    if status not in (301, 302, 303, 307, 308):
        raise ValueError(f"a redirect status is 301, 302, 303, 307 or 308, not {status!r}")
    return status, "", [("Location", location), *headers]


def to_response(result: Any) -> Response:
    """Interpret a handler's return value.

    ``str`` is HTML, ``bytes`` is sent as it is, a ``dict`` or ``list``
    becomes JSON, ``None`` an empty body, and a generator (sync or async) is
    streamed chunk by chunk. A tuple ``(status, body)`` or
    ``(status, body, headers)`` sets the status and adds headers, given as a
    mapping or as ``(name, value)`` pairs.
    """
    status = 200
    extra: list[tuple[bytes, bytes]] = []
    if isinstance(result, tuple):
        if len(result) not in (2, 3):
            raise TypeError(
                "a handler's tuple must be (status, body) or (status, body, headers), "
                f"got {len(result)} items"
            )
        if len(result) == 3:
            extra = encode_headers(result[2])
        status, result = result[0], result[1]
        if type(status) is not int or not 100 <= status <= 599:
            raise ValueError(f"HTTP status must be an int from 100 to 599, got {status!r}")
    body, content_type, stream = _encode_body(result)
    headers = extra
    if content_type is not None and not any(name == b"content-type" for name, _ in extra):
        headers = [(b"content-type", content_type), *extra]
    return Response(status, body, headers, stream)


def _encode_body(body: Any) -> tuple[bytes | None, bytes | None, Stream | None]:
    if isinstance(body, str):
        return body.encode("utf-8"), _HTML, None
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body), _BINARY, None
    if body is None:
        return b"", None, None
    if isinstance(body, (dict, list)):
        return json.dumps(body, separators=(",", ":")).encode("utf-8"), _JSON, None
    if isinstance(body, (Iterator, AsyncIterator)):
        return None, _HTML, body
    raise TypeError(
        f"a handler returned {type(body).__name__}; return str, bytes, a dict or list "
        "for JSON, None, a generator to stream, or a (status, body[, headers]) tuple"
    )


def encode_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> list[tuple[bytes, bytes]]:
    """Headers as ASGI wants them; a CR, LF or NUL anywhere is a ``ValueError``."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    encoded = []
    for name, value in pairs:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header names and values must be str, got {name!r}: {value!r}")
        if not name or any(c in name or c in value for c in "\r\n\0"):
            raise ValueError(f"header {name!r} has an empty name or a CR, LF or NUL character")
        encoded.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return encoded


def _more(chunk: Any) -> dict[str, Any]:
    """The ASGI message for one chunk of a streamed body."""
    if isinstance(chunk, str):
        body = chunk.encode("utf-8")
    elif isinstance(chunk, (bytes, bytearray, memoryview)):
        body = bytes(chunk)
    else:
        raise TypeError(f"a streamed chunk must be str or bytes, not {type(chunk).__name__}")
    return {"type": "http.response.body", "body": body, "more_body": True}


async def _close_stream(stream: Stream | None) -> None:
    if stream is None:
        return
    close = getattr(stream, "aclose", None) or getattr(stream, "close", None)
    if close is not None:
        outcome = close()
        if inspect.isawaitable(outcome):
            await outcome
