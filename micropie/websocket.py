"""The WebSocket connection handed to ``ws_*`` handlers."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, Generic, NoReturn, TypeVar

from micropie._asgi import Message, Receive, Send
from micropie._departure import _ClientDeparted, _DepartureWatch
from micropie.cookies import session_cookie

__all__ = ["ConnectionClosed", "MessageTypeError", "WebSocket"]

logger = logging.getLogger("micropie")

# Close codes an endpoint may put on the wire (RFC 6455, section 7.4).
# 1004, 1005, 1006 and 1015 are reserved for reporting, never for sending.
_SENDABLE_CLOSE_CODES = frozenset([*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)])
# A close frame's payload is at most 125 bytes, two of which carry the code.
_MAX_REASON_BYTES = 123
# Codes that are only ever reported, never sent (RFC 6455, 7.1.5 and 7.4.1):
# a close frame that carried no code, and a connection lost without one.
_NO_STATUS_RECEIVED = 1005
_ABNORMAL_CLOSURE = 1006


class ConnectionClosed(Exception):
    """Raised by :meth:`receive_text` and :meth:`receive_bytes` when the
    client has closed the connection.  Catch this exception in your
    handlers to perform cleanup after a disconnect."""

    __module__ = "micropie"

    def __init__(self, code: int = _NO_STATUS_RECEIVED, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        detail = f": {self.reason}" if self.reason else ""
        return f"the WebSocket connection closed with code {self.code}{detail}"


_Payload = TypeVar("_Payload", str, bytes)


class MessageTypeError(ValueError, Generic[_Payload]):
    """A text message arrived where a binary one was awaited, or the reverse.

    The message is not lost: its payload is kept in :attr:`data`.

    .. attribute:: data
       :type: str | bytes

       The payload of the message that had the other type.
    """

    __module__ = "micropie"

    def __init__(self, message: str, data: _Payload) -> None:
        super().__init__(message)
        self.data: _Payload = data


class _State:
    """Where a connection stands. Plain strings: every message compares against one."""

    CONNECTING: Final = "connecting"  # the handshake has not been answered
    ACCEPTING: Final = "accepting"  # accept() is under way
    OPEN: Final = "open"  # accepted: messages flow both ways
    CLOSED: Final = "closed"  # the application closed it, or rejected the handshake
    DISCONNECTED: Final = "disconnected"  # the client went away


_PLAIN_SESSION_COOKIE = functools.partial(session_cookie, secure=False)


class _Handshake:
    """What the App knows of the handshake; a WebSocket built by hand knows nothing.

    *subprotocols* is what the client offered (``None``: not known, so not
    checked); *set_cookie* makes the ``Set-Cookie`` value that hands a session
    ID to the client; *on_session_start* stores a session started by
    accept(); *accept_headers* is false on servers speaking ASGI 2.0
    (daphne), which ignore headers in ``websocket.accept``.
    """

    # A plain class with slots: made at every handshake, it must be cheap to make.
    __slots__ = ("accept_headers", "on_session_start", "secure", "set_cookie", "subprotocols")

    def __init__(
        self,
        secure: bool = False,
        subprotocols: list[str] | None = None,
        set_cookie: Callable[[str], bytes] = _PLAIN_SESSION_COOKIE,
        on_session_start: Callable[[str], Awaitable[None]] | None = None,
        accept_headers: bool = True,
    ) -> None:
        self.secure = secure
        self.subprotocols = subprotocols
        self.set_cookie = set_cookie
        self.on_session_start = on_session_start
        self.accept_headers = accept_headers


_BUILT_BY_HAND = _Handshake()
# The one state every message checks, as a module global: measured with
# callgrind on 3.11, a global costs about 90 instructions fewer per echo than
# looking the class constant up (some 2.5% of MicroPie's cost per message).
_OPEN = _State.OPEN


class WebSocket:
    """Create a new WebSocket wrapper around the ASGI ``receive`` and
    ``send`` callables.  You do not instantiate this class yourself;
    MicroPie does so internally."""

    __module__ = "micropie"
    __slots__ = (
        "__weakref__",  # so that a room of sockets can be a WeakSet
        "_accepted",
        "_after_receive",
        "_client_close",
        "_handshake",
        "_receive",
        "_send",
        "_session_id",
        "_state",
        "_watch",
    )

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._state: str = _State.CONNECTING
        self._accepted = False
        self._session_id: str | None = None
        # The code and reason the client left with, once it has.
        self._client_close: tuple[int, str] | None = None
        self._handshake = _BUILT_BY_HAND
        self._watch: _DepartureWatch | None = None
        # Called once each receive is over, raised or not.
        self._after_receive: Callable[[], None] = _nothing

    @classmethod
    def _for_handshake(
        cls, receive: Receive, send: Send, handshake: _Handshake, *, watch_sends: bool
    ) -> WebSocket:
        """The App's constructor; *watch_sends*: see ``_DepartureWatch``."""
        websocket = cls(receive, send)
        websocket._handshake = handshake
        if watch_sends:
            watch = websocket._watch = _DepartureWatch(receive, send)
            websocket._receive = watch.receive
            websocket._after_receive = watch.received
            websocket._send = watch.send
        return websocket

    # The reference page documents the methods first, then the attributes.

    async def accept(self, subprotocol: str | None = None, session_id: str | None = None) -> None:
        """Accept the WebSocket connection.  You must call this method before
        sending or receiving messages.  If you provide a *session_id*,
        MicroPie sets a ``session_id`` cookie during the handshake.  The
        optional *subprotocol* argument specifies a negotiated subprotocol."""
        if self._state is not _State.CONNECTING:
            raise RuntimeError(
                f"accept() was called on a WebSocket that is {self._state}: "
                "call it once, before sending or receiving"
            )
        handshake = self._handshake
        headers: list[tuple[bytes, bytes]] = []
        if session_id is not None:
            headers.append((b"set-cookie", handshake.set_cookie(session_id)))
            if not handshake.accept_headers:
                # The cookie would be dropped, and the session stored for nobody.
                logger.warning(
                    "this server speaks ASGI 2.0, which cannot set a cookie on a WebSocket "
                    "handshake: start the session over HTTP instead"
                )
                headers, session_id = [], None
        if subprotocol is not None:
            self._check_subprotocol(subprotocol)
        self._state = _State.ACCEPTING  # a second accept() now fails at once
        try:
            message = await self._receive()
        finally:
            self._after_receive()
        kind = message.get("type")
        if kind == "websocket.disconnect":
            self._client_left(message)
        if kind != "websocket.connect":
            raise RuntimeError(f"expected the ASGI message 'websocket.connect', got {kind!r}")
        if self._state is not _State.ACCEPTING:  # close() ran while accept() waited
            raise RuntimeError("the WebSocket was closed while accept() was waiting")
        try:
            await self._send(
                {"type": "websocket.accept", "subprotocol": subprotocol, "headers": headers}
            )
        except OSError as exc:
            self._lost(exc)
        self._state = _State.OPEN
        self._accepted = True
        if session_id is not None:
            self._session_id = session_id
            if handshake.on_session_start is not None:
                # Stored now, not only when the handler ends, so that the
                # client's next connection already finds it.
                await handshake.on_session_start(session_id)

    async def receive_text(self) -> str:
        """Await a text message from the client.  Returns a string.  Raises
        :class:`~micropie.ConnectionClosed` if the client has disconnected or
        ``ValueError`` if a binary message is received."""
        if self._state is not _OPEN:
            self._refuse("receive")
        try:
            message = await self._receive()
        finally:
            self._after_receive()
        # Servers differ: hypercorn sends both keys with one None, and an
        # empty text frame is "", so only "is not None" tells them apart.
        if message.get("type") == "websocket.receive":
            text = message.get("text")
            if text is not None:
                return text  # type: ignore[no-any-return]
        self._not_received(message, "text")

    async def receive_bytes(self) -> bytes:
        """Await a binary message from the client.  Returns bytes.  Raises
        :class:`~micropie.ConnectionClosed` if the client has disconnected or
        ``ValueError`` if a text message is received."""
        if self._state is not _OPEN:
            self._refuse("receive")
        try:
            message = await self._receive()
        finally:
            self._after_receive()
        if message.get("type") == "websocket.receive":
            data = message.get("bytes")
            if data is not None:
                return data  # type: ignore[no-any-return]
        self._not_received(message, "bytes")

    async def send_text(self, data: str) -> None:
        """Send a text message to the client.  Raises ``RuntimeError`` if you
        have not called :meth:`accept`."""
        if not isinstance(data, str):
            raise TypeError(
                f"send_text() expects str, got {type(data).__name__}; "
                "use send_bytes() for binary data"
            )
        if self._state is not _OPEN:
            self._refuse("send")
        try:
            await self._send({"type": "websocket.send", "text": data})
        except OSError as exc:
            self._lost(exc)

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message to the client.  Raises ``RuntimeError`` if
        the connection has not been accepted."""
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(
                    f"send_bytes() expects bytes, got {type(data).__name__}; "
                    "use send_text() for text"
                )
            data = bytes(data)
        if self._state is not _OPEN:
            self._refuse("send")
        try:
            await self._send({"type": "websocket.send", "bytes": data})
        except OSError as exc:
            self._lost(exc)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the WebSocket connection.  By default uses code 1000
        (normal closure).  The optional *reason* is sent to the client."""
        if type(code) is not int:
            if isinstance(code, bool) or not isinstance(code, int):
                raise TypeError(f"close code must be an int, not {type(code).__name__}")
            code = int(code)  # an IntEnum member: servers want a plain int
        if code not in _SENDABLE_CLOSE_CODES:
            raise ValueError(
                f"close code {code} cannot be sent: use 1000-1003, 1007-1014 "
                "or an application code in 3000-4999"
            )
        if reason is None:
            reason = ""
        elif not isinstance(reason, str):
            raise TypeError(f"close reason must be a str, not {type(reason).__name__}")
        elif len(reason.encode("utf-8")) > _MAX_REASON_BYTES:
            raise ValueError(
                f"close reason is {len(reason.encode('utf-8'))} bytes in UTF-8; "
                f"the protocol allows at most {_MAX_REASON_BYTES}"
            )
        if self._state is _State.CLOSED or self._state is _State.DISCONNECTED:
            return  # closing twice, or after the client left, is harmless
        # Before accept() this rejects the handshake: servers answer HTTP 403.
        previous, self._state = self._state, _State.CLOSED
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except OSError:
            pass  # the client left first: closed either way
        except Exception as exc:
            if code == 1000:
                self._state = previous
                raise
            # daphne refuses codes 1001-1003 and 1007-1014 (with a bare
            # Exception): a close frame with 1000 beats leaving the client
            # with no close frame at all.
            logger.warning(
                "the server refused close code %s (%s); closing with 1000 instead", code, exc
            )
            self._state = previous
            await self.close()

    @property
    def accepted(self) -> bool:
        """``True`` if the WebSocket has been accepted."""
        return self._accepted

    @property
    def session_id(self) -> str | None:
        """The session ID set during the handshake, or ``None`` if not set."""
        return self._session_id

    # More than the reference page documents: the loops every handler writes.

    def iter_text(self) -> AsyncIterator[str]:
        """Yield each text message from the client, until it leaves.

        ``async for text in ws.iter_text():`` reads each message as
        :meth:`receive_text` does, and ends when the client disconnects,
        raising nothing. A binary message ends it too: it closes the
        connection with code 1003 (unsupported data) and a reason that
        asks for text.
        """
        return self._messages(self.receive_text, "text")

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """Yield each binary message from the client, until it leaves.

        As :meth:`iter_text`, for binary messages: a text message closes the
        connection with code 1003 and ends the loop.
        """
        return self._messages(self.receive_bytes, "binary")

    # Internals: the rare paths, kept out of the methods above.

    async def _messages(
        self, receive: Callable[[], Awaitable[_Payload]], kind: str
    ) -> AsyncIterator[_Payload]:
        try:
            while True:
                yield await receive()
        except ConnectionClosed:
            return
        except MessageTypeError:
            await self.close(1003, f"this endpoint takes {kind} messages only")

    @property
    def _closed(self) -> bool:
        # Closed by either side: close() would do nothing.
        return self._state is _State.CLOSED or self._state is _State.DISCONNECTED

    def _stop_watching(self) -> None:
        """The handler is done with the connection: no more watching for departures."""
        if self._watch is not None:
            self._watch.stop()

    def _check_subprotocol(self, subprotocol: str) -> None:
        if not isinstance(subprotocol, str):
            raise TypeError(f"subprotocol must be a str or None, not {type(subprotocol).__name__}")
        offered = self._handshake.subprotocols
        if offered is not None and subprotocol not in offered:
            # Clients fail the handshake when the server picks one they did not offer.
            raise ValueError(
                f"subprotocol {subprotocol!r} was not offered by the client, "
                f"which offered {offered!r}"
            )

    def _lost(self, error: OSError) -> NoReturn:
        if isinstance(error, _ClientDeparted):  # the watch saw the server's disconnect
            self._client_left(error.message)
        # uvicorn raises ClientDisconnected (an OSError) on a dead socket;
        # handlers see one exception for "the client left", whatever the server.
        # The server had no close frame to give us: 1006.
        self._state = _State.DISCONNECTED
        self._client_close = (_ABNORMAL_CLOSURE, "")
        raise ConnectionClosed(_ABNORMAL_CLOSURE) from error

    def _not_received(self, message: Message, wanted: str) -> NoReturn:
        """What a receive_* raises when *message* is not a message of the *wanted* kind."""
        kind = message.get("type")
        if kind == "websocket.receive":
            other = "bytes" if wanted == "text" else "text"
            raise MessageTypeError(
                f"receive_{wanted}() got a {'binary' if other == 'bytes' else 'text'} message; "
                f"use receive_{other}() to read it "
                "(its payload is in this exception's 'data' attribute)",
                _payload(message, other),
            )
        if kind == "websocket.disconnect":
            self._client_left(message)
        raise RuntimeError(f"unexpected ASGI message {kind!r} while receiving")

    def _client_left(self, message: Message) -> NoReturn:
        code = message.get("code") or _NO_STATUS_RECEIVED
        reason = message.get("reason") or ""
        # Some servers echo the application's own close back as a disconnect:
        # the socket stays CLOSED (sending is the app's mistake, a RuntimeError).
        if self._state is not _State.CLOSED:
            self._state = _State.DISCONNECTED
            self._client_close = (code, reason)
        raise ConnectionClosed(code, reason)

    def _refuse(self, action: str) -> NoReturn:
        if self._state is _State.CONNECTING or self._state is _State.ACCEPTING:
            raise RuntimeError(f"cannot {action}: call accept() first")
        if self._client_close is not None:  # DISCONNECTED
            raise ConnectionClosed(*self._client_close)
        raise RuntimeError(f"cannot {action}: the WebSocket is closed")


def _nothing() -> None:
    pass


def _payload(message: Message, key: str) -> Any:
    """The payload under *key*, the one the caller did not expect."""
    data = message.get(key)
    if data is None:
        raise RuntimeError("the server sent a 'websocket.receive' with neither text nor bytes")
    return data
