"""Turning what an HTTP handler returns into an HTTP response, and sending it."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import json
import json.encoder
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from micropie._asgi import Receive, Send
from micropie.unavailable import Unavailable

__all__ = ["Response", "error_response", "redirect", "to_response"]

logger = logging.getLogger("micropie")

_HTML = b"text/html; charset=utf-8"
_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"
_BINARY = b"application/octet-stream"

Stream = Iterator[Any] | AsyncIterator[Any]
# Servers send to a departed client without waiting, so a stream that never
# waits itself would keep the event loop, and the news of the departure, from
# ever running: it lets them run after every so many chunks.
_CHUNKS_BETWEEN_YIELDS = 16


@dataclass(slots=True)
class Response:
    """A status, headers, and either a whole body or a stream of chunks."""

    status: int
    body: bytes | None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    stream: Stream | None = None

    async def send(self, send: Send, *, head: bool = False, receive: Receive | None = None) -> None:
        """Send it; with *head*, the status and headers only (for ``HEAD``).

        While a stream is sent, *receive* is watched for ``http.disconnect``:
        when the client leaves, the stream is closed and sending stops.
        """
        headers = self.headers
        if self.body is not None:
            # A new list: sending must leave the response as it was (it may be sent again).
            headers = [*headers, (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        if self.stream is None or head:
            if self.stream is not None:
                await _close_stream(self.stream)
            body = b"" if head or self.body is None else self.body
            await send({"type": "http.response.body", "body": body})
            return
        await _send_stream(send, self.stream, receive)


def error_response(status: int, detail: str | None = None) -> Response:
    """A short plain-text error page; *detail* is ours, never exception text."""
    text = HTTPStatus(status).phrase if detail is None else detail
    return Response(status, text.encode("utf-8"), [(b"content-type", _TEXT)])


def unavailable_response(error: Unavailable) -> Response:
    """503, with the ``Retry-After`` that *error* gives."""
    response = error_response(503, "the service is unavailable; try again shortly")
    response.headers.append((b"retry-after", error.retry_after_header))
    return response


def redirect(
    location: str,
    status: int | Iterable[tuple[str, str]] | None = 302,
    headers: Iterable[tuple[str, str]] = (),
) -> tuple[int, str, list[tuple[str, str]]]:
    """A handler return value that redirects to *location*.

    A location outside ASCII is percent-encoded (a header must be ASCII). A
    list of headers in place of *status* is taken as MicroPie 0.x's
    ``_redirect(location, extra_headers)``, with status 302.
    """
    if status is None or isinstance(status, (list, tuple)):
        headers = [*(status or ()), *headers]
        status = 302
    elif type(status) is not int:
        raise TypeError(
            f"the redirect status must be an int such as 302, not {type(status).__name__} "
            "(or, as in MicroPie 0.x, a list of (name, value) headers)"
        )
    if status not in (301, 302, 303, 307, 308):
        raise ValueError(f"a redirect status is 301, 302, 303, 307 or 308, not {status!r}")
    return status, "", [("Location", quote(location, safe=_URL_CHARACTERS)), *headers]


# What may stand in a URL as it is (RFC 3986's reserved characters, and "%"
# so that what is already encoded stays so); quote() encodes everything else.
_URL_CHARACTERS = ":/?#[]@!$&'()*+,;=%~"


def to_response(result: Any) -> Response:
    """Interpret a handler's return value.

    ``str`` is HTML, ``bytes`` is sent as it is, a ``dict`` or ``list``
    becomes JSON, a number its text, ``None`` an empty body, and a generator (sync or async) is
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
    if extra and body is not None:
        # A whole body's length is MicroPie's to say: a handler's own, wrong
        # or not, would go out beside it (and two lengths split a response).
        extra = without_length(extra)
    headers = extra
    if content_type is not None and not (extra and any(n == b"content-type" for n, _ in extra)):
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
        return _json_text(body).encode("utf-8"), _JSON, None
    if isinstance(body, (Iterator, AsyncIterator)):
        return None, _HTML, body
    if isinstance(body, (int, float)):  # as text, as MicroPie 0.x sent them
        return str(body).encode("ascii"), _HTML, None
    raise TypeError(
        f"a handler returned {type(body).__name__}; return str, bytes, a dict or list "
        "for JSON, a number, None, a generator to stream, or a (status, body[, headers]) tuple"
    )


def _json_text(value: dict[Any, Any] | list[Any]) -> str:
    """``json.dumps(value, separators=(",", ":"))``, for a dict or a list."""
    if _make_encoder is None:  # no C accelerator: json.dumps uses Python's encoder
        return json.dumps(value, separators=(",", ":"))
    # What json.dumps does with the accelerator, less the JSONEncoder it
    # builds and throws away at every call (half the cost of a small body).
    # A new encoder each time, as there: its record of the containers being
    # encoded, to detect circular references, is never shared.
    encode = _make_encoder({}, _JSON_DEFAULT, _JSON_STRING, None, ":", ",", False, False, True)
    return encode(value, 0)[0]


_make_encoder: Callable[..., Callable[[Any, int], tuple[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)
# JSONEncoder's default(): the TypeError json.dumps raises for what it cannot encode.
_JSON_DEFAULT = json.JSONEncoder().default
_JSON_STRING = json.encoder.encode_basestring_ascii  # ensure_ascii, as json.dumps


def without_length(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """*headers* without ``Content-Length``, which MicroPie sets for a whole body."""
    return [(name, value) for name, value in headers if name != b"content-length"]


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


async def _send_stream(send: Send, stream: Stream, receive: Receive | None) -> None:
    """Send each chunk of *stream*, then the end; stop when the client leaves."""
    # uvicorn, hypercorn, daphne and granian drop what is sent to a departed
    # client without a word: only http.disconnect says it left, and a
    # generator waiting for its next event would otherwise wait forever.
    watch = _DisconnectWatch(receive) if receive is not None else None
    # A sync iterator may block in next() (time.sleep, a blocking read): it is
    # stepped in a worker thread, off the event loop that every request needs.
    chunks = stream if isinstance(stream, AsyncIterator) else _SteppedInThread(stream)
    count = 0
    try:
        async for chunk in chunks:
            try:
                await send(_more(chunk))
            except OSError:
                return  # a server that reports the departure on send (ASGI 2.4)
            count += 1
            if count % _CHUNKS_BETWEEN_YIELDS == 0:
                await asyncio.sleep(0)
            if watch is not None and watch.gone:
                return  # the stream swallowed the watch's cancellation
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if watch is None or not watch.gone or watch.settle():
            raise  # the server cancelled us, not the client's departure
    except Exception:
        # The status has gone out, so there is no error page to send: end
        # without the final chunk, and the client sees a truncated response.
        logger.exception("a streamed response failed midway")
    finally:
        if watch is not None:
            await watch.stop()
        # Closing runs the stream's finally clauses; on one that has ended, it does nothing.
        await _close_quietly(chunks)


class _DisconnectWatch:
    """Waits, beside a streamed response, for the client to leave; then cancels the sender.

    One task per streamed response, none per chunk: the sender only reads
    ``gone`` after each send.
    """

    __slots__ = ("_settled", "_task", "_watcher", "gone")

    def __init__(self, receive: Receive) -> None:
        self.gone = False
        self._settled = False
        task = asyncio.current_task()
        assert task is not None, "an ASGI application runs in a task"
        self._task = task
        self._watcher = asyncio.ensure_future(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        try:
            # Anything before the disconnect is the rest of a body nobody read.
            while (await receive()).get("type") != "http.disconnect":
                pass
        except Exception:
            return  # a server whose receive() fails: nothing left to watch
        self.gone = True
        self._task.cancel()  # wakes a stream that waits for its next item

    def settle(self) -> bool:
        """Take back this watch's cancellation; True if another one is pending too."""
        if not self._settled:
            self._settled = True
            self._task.uncancel()
        return self._task.cancelling() > 0

    async def stop(self) -> None:
        """Stop watching, and wait until the watcher has; a cancellation the
        stream swallowed is taken back."""
        self._watcher.cancel()
        # Waited for, so that no receive() of ours outlives the request;
        # asyncio.wait never raises the watcher's cancellation into us.
        await asyncio.wait([self._watcher])
        if self.gone:
            self.settle()


_END = object()  # what a step returns at the end: StopIteration cannot cross into a future


def _step(iterator: Iterator[Any]) -> Any:
    return next(iterator, _END)


class _SteppedInThread:
    """A sync iterator, stepped in the event loop's default executor: one
    ``next()`` per chunk, each in a worker thread, in the sender's context
    (``contextvars``), as an async generator runs in its task's."""

    __slots__ = ("_context", "_iterator", "_step")

    def __init__(self, iterator: Iterator[Any]) -> None:
        self._iterator = iterator
        self._step: asyncio.Future[Any] | None = None
        # One context for every step, as one task's for an async generator:
        # what a step sets (a ContextVar, and the token to reset it) the next
        # step sees. Steps never overlap, so it is entered by one thread at a time.
        self._context = contextvars.copy_context()

    def __aiter__(self) -> _SteppedInThread:
        return self

    async def __anext__(self) -> Any:
        step = asyncio.get_running_loop().run_in_executor(
            None, self._context.run, _step, self._iterator
        )
        self._step = step
        # Shielded: a thread cannot be interrupted, so a cancellation (the
        # client left) leaves the step to finish, and aclose() waits for it.
        chunk = await asyncio.shield(step)
        if chunk is _END:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Close the iterator once the step under way, if any, has returned:
        a generator cannot be closed while it runs in another thread."""
        step = self._step
        if step is not None and not step.done():
            try:
                await asyncio.shield(step)
            except asyncio.CancelledError:
                # The server gave up on the request: the iterator is closed
                # when the step returns, without it.
                step.add_done_callback(self._close_later)
                raise
            except Exception:
                # The step the client did not wait for failed: the stream's own bug.
                logger.exception("a streamed response failed midway")
        await _close_sync(self._iterator, self._context)

    def _close_later(self, step: asyncio.Future[Any]) -> None:
        if not step.cancelled() and (error := step.exception()) is not None:
            logger.error("a streamed response failed midway", exc_info=error)
        with contextlib.suppress(RuntimeError):  # the loop is closing: nothing can run now
            step.get_loop().run_in_executor(
                None, self._context.run, _close_in_thread, self._iterator
            )


async def _close_sync(iterator: Iterator[Any], context: contextvars.Context | None = None) -> None:
    """Close a sync iterator (run its generator's ``finally``) in a worker thread,
    in the *context* its steps ran in, if they did."""
    if inspect.isgenerator(iterator):
        state = inspect.getgeneratorstate(iterator)
        if state == inspect.GEN_CLOSED:
            return  # ended, or closed already: nothing is left to run
        if state == inspect.GEN_CREATED:
            iterator.close()  # never started: closing it runs none of its code
            return
    close = getattr(iterator, "close", None)
    if close is not None:
        await asyncio.to_thread(close if context is None else functools.partial(context.run, close))


def _close_in_thread(iterator: Iterator[Any]) -> None:
    close = getattr(iterator, "close", None)
    try:
        if close is not None:
            close()
    except Exception:
        logger.exception("closing a streamed response failed")


async def close_stream(response: Response) -> None:
    """Close the stream of a response that will not be sent (replaced, or failed)."""
    if response.stream is not None:
        await _close_quietly(response.stream)


async def _close_quietly(stream: Stream | _SteppedInThread) -> None:
    """Close *stream*; a failure of its own cleanup is logged, never raised."""
    try:
        await _close_stream(stream)
    except Exception:
        logger.exception("closing a streamed response failed")


async def _close_stream(stream: Stream | _SteppedInThread | None) -> None:
    if stream is None:
        return
    if isinstance(stream, Iterator):
        await _close_sync(stream)
        return
    close = getattr(stream, "aclose", None) or getattr(stream, "close", None)
    if close is not None:
        outcome = close()
        if inspect.isawaitable(outcome):
            await outcome
