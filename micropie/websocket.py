"""The WebSocket connection handed to ``ws_*`` handlers."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Awaitable, Callable
from typing import Generic, NoReturn, TypeVar

from micropie._asgi import Message, Receive, Send
from micropie.sessions import session_cookie

__all__ = ["ConnectionClosed", "MessageTypeError", "WebSocket"]

# Close codes an endpoint may put on the wire (RFC 6455, section 7.4).
# 1004, 1005, 1006 and 1015 are reserved for reporting, never for sending.
_SENDABLE_CLOSE_CODES = frozenset([*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)])
# A close frame's payload is at most 125 bytes, two of which carry the code.
_MAX_REASON_BYTES = 123
# What the peer is told when it left without a close frame (RFC 6455, 7.1.5).
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


class _State(enum.Enum):
    CONNECTING = "connecting"  # the handshake has not been answered
    OPEN = "open"  # accepted: messages flow both ways
    CLOSED = "closed"  # the application closed it, or rejected the handshake
    DISCONNECTED = "disconnected"  # the client went away


class WebSocket:
    """Create a new WebSocket wrapper around the ASGI ``receive`` and
    ``send`` callables.  You do not instantiate this class yourself;
    MicroPie does so internally."""

    __module__ = "micropie"
    __slots__ = (
        "_accepted",
        "_closed_by_client",
        "_offered_subprotocols",
        "_on_session_start",
        "_receive",
        "_secure",
        "_send",
        "_session_id",
        "_state",
    )

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._state = _State.CONNECTING
        self._accepted = False
        self._session_id: str | None = None
        self._closed_by_client: ConnectionClosed | None = None
        # The App sets this when the handshake came over TLS (wss), so that
        # the session cookie is marked Secure.
        self._secure = False
        # Set by the App from the handshake; None when nobody told us.
        self._offered_subprotocols: list[str] | None = None
        # Set by the App: stores a new session before its cookie reaches the
        # client, so that the client's next request already finds it.
        self._on_session_start: Callable[[str], Awaitable[None]] | None = None

    # The reference page documents the methods first, then the attributes.

    async def accept(self, subprotocol: str | None = None, session_id: str | None = None) -> None:
        """Accept the WebSocket connection.  You must call this method before
        sending or receiving messages.  If you provide a *session_id*,
        MicroPie sets a ``session_id`` cookie during the handshake.  The
        optional *subprotocol* argument specifies a negotiated subprotocol."""
        if self._state is not _State.CONNECTING:
            raise RuntimeError(
                f"accept() was called on a WebSocket that is {self._state.value}: "
                "call it once, before sending or receiving"
            )
        if subprotocol is not None:
            if type(subprotocol) is not str:
                raise TypeError(
                    f"subprotocol must be a str or None, not {type(subprotocol).__name__}"
                )
            offered = self._offered_subprotocols
            if offered is not None and subprotocol not in offered:
                # Clients fail the handshake when the server picks one they did not offer.
                raise ValueError(
                    f"subprotocol {subprotocol!r} was not offered by the client, "
                    f"which offered {offered!r}"
                )
        headers: list[tuple[bytes, bytes]] = []
        if session_id is not None:
            headers.append((b"set-cookie", session_cookie(session_id, secure=self._secure)))
        message = await self._receive()
        if message["type"] == "websocket.disconnect":
            self._client_left(message)
        if message["type"] != "websocket.connect":
            raise RuntimeError(
                f"expected the ASGI message 'websocket.connect', got {message['type']!r}"
            )
        if session_id is not None and self._on_session_start is not None:
            await self._on_session_start(session_id)
        await self._send_or_disconnect(
            {"type": "websocket.accept", "subprotocol": subprotocol, "headers": headers}
        )
        self._state = _State.OPEN
        self._accepted = True
        self._session_id = session_id

    async def receive_text(self) -> str:
        """Await a text message from the client.  Returns a string.  Raises
        :class:`~micropie.ConnectionClosed` if the client has disconnected or
        ``ValueError`` if a binary message is received."""
        data = await self._receive_data()
        if isinstance(data, str):
            return data
        raise MessageTypeError(
            "receive_text() got a binary message; use receive_bytes() to read it "
            "(its payload is in this exception's 'data' attribute)",
            data,
        )

    async def receive_bytes(self) -> bytes:
        """Await a binary message from the client.  Returns bytes.  Raises
        :class:`~micropie.ConnectionClosed` if the client has disconnected or
        ``ValueError`` if a text message is received."""
        data = await self._receive_data()
        if isinstance(data, bytes):
            return data
        raise MessageTypeError(
            "receive_bytes() got a text message; use receive_text() to read it "
            "(its payload is in this exception's 'data' attribute)",
            data,
        )

    async def send_text(self, data: str) -> None:
        """Send a text message to the client.  Raises ``RuntimeError`` if you
        have not called :meth:`accept`."""
        if type(data) is not str:
            raise TypeError(
                f"send_text() expects str, got {type(data).__name__}; "
                "use send_bytes() for binary data"
            )
        if self._state is not _State.OPEN:
            self._refuse("send")
        await self._send_or_disconnect({"type": "websocket.send", "text": data})

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
        if self._state is not _State.OPEN:
            self._refuse("send")
        await self._send_or_disconnect({"type": "websocket.send", "bytes": data})

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the WebSocket connection.  By default uses code 1000
        (normal closure).  The optional *reason* is sent to the client."""
        if type(code) is not int:
            raise TypeError(f"close code must be an int, not {type(code).__name__}")
        if code not in _SENDABLE_CLOSE_CODES:
            raise ValueError(
                f"close code {code} cannot be sent: use 1000-1003, 1007-1014 "
                "or an application code in 3000-4999"
            )
        if reason is None:
            reason = ""
        elif type(reason) is not str:
            raise TypeError(f"close reason must be a str, not {type(reason).__name__}")
        elif len(reason.encode("utf-8")) > _MAX_REASON_BYTES:
            raise ValueError(
                f"close reason is {len(reason.encode('utf-8'))} bytes in UTF-8; "
                f"the protocol allows at most {_MAX_REASON_BYTES}"
            )
        if self._state is _State.CLOSED or self._state is _State.DISCONNECTED:
            return  # closing twice, or after the client left, is harmless
        # Before accept() this rejects the handshake: servers answer HTTP 403.
        self._state = _State.CLOSED
        with contextlib.suppress(OSError):  # the client left first: closed either way
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

    @property
    def accepted(self) -> bool:
        """``True`` if the WebSocket has been accepted."""
        return self._accepted

    @property
    def session_id(self) -> str | None:
        """The session ID set during the handshake, or ``None`` if not set."""
        return self._session_id

    # Internals.

    async def _receive_data(self) -> str | bytes:
        if self._state is not _State.OPEN:
            self._refuse("receive")
        message = await self._receive()
        if message["type"] == "websocket.receive":
            # Servers differ: hypercorn sends both keys with one None, and an
            # empty text frame is "", so only "is not None" tells them apart.
            text = message.get("text")
            if text is not None:
                return text  # type: ignore[no-any-return]
            data = message.get("bytes")
            if data is not None:
                return data  # type: ignore[no-any-return]
            raise RuntimeError("the server sent a 'websocket.receive' with no payload")
        if message["type"] == "websocket.disconnect":
            self._client_left(message)
        raise RuntimeError(f"unexpected ASGI message {message['type']!r} while receiving")

    async def _send_or_disconnect(self, message: Message) -> None:
        try:
            await self._send(message)
        except OSError as exc:
            # uvicorn raises ClientDisconnected (an OSError) on a dead socket;
            # handlers see one exception for "the client left", whatever the server.
            self._state = _State.DISCONNECTED
            self._closed_by_client = ConnectionClosed(_ABNORMAL_CLOSURE)
            raise ConnectionClosed(_ABNORMAL_CLOSURE) from exc

    def _client_left(self, message: Message) -> NoReturn:
        self._state = _State.DISCONNECTED
        self._closed_by_client = ConnectionClosed(
            message.get("code") or _NO_STATUS_RECEIVED, message.get("reason") or ""
        )
        raise ConnectionClosed(self._closed_by_client.code, self._closed_by_client.reason)

    def _refuse(self, action: str) -> NoReturn:
        if self._state is _State.CONNECTING:
            raise RuntimeError(f"cannot {action}: call accept() first")
        closed = self._closed_by_client
        if closed is not None:  # the state is DISCONNECTED
            raise ConnectionClosed(closed.code, closed.reason)
        raise RuntimeError(f"cannot {action}: the WebSocket is closed")
