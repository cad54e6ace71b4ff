"""Noticing a departed client on servers that drop sends to it silently."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from micropie._asgi import Message, Receive, Send


class _ClientDeparted(OSError):
    """A send noticed that the client had left: *message* is the server's disconnect."""

    def __init__(self, message: Message) -> None:
        super().__init__("the client left")
        self.message = message


class _DepartureWatch:
    """Sends that notice a departed client, on servers that do not say so.

    uvicorn fails a send to a client that has left (ASGI 2.4); hypercorn,
    granian and daphne drop the message silently, and a handler that only
    sends would never learn. So while a handler sends without receiving, a
    receive() is kept pending; when it brings the disconnect, the next send
    raises ``_ClientDeparted``, and a message it brings instead is kept for
    the next receive. A handler that receives between its sends learns of
    the departure from its receive: the first send after a receive starts
    nothing, which keeps an echo loop free of tasks. Servers that report
    the departure themselves never get one of these.

    Both methods return the server's awaitable rather than awaiting it, so
    that the watch adds no coroutine to a message's path.
    """

    __slots__ = ("_pending", "_receive", "_received_last", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._pending: asyncio.Future[Message] | None = None
        self._received_last = False

    def receive(self) -> Awaitable[Message]:
        self._received_last = True
        pending = self._pending
        if pending is not None:
            self._pending = None
            return pending
        return self._receive()

    def send(self, message: Message) -> Awaitable[None]:
        if self._received_last:
            self._received_last = False  # the handler reads: its receive brings the departure
        elif message["type"] == "websocket.send":
            pending = self._pending
            if pending is None:
                self._pending = asyncio.ensure_future(self._receive())
            elif pending.done() and not pending.cancelled() and pending.exception() is None:
                early = pending.result()
                if early.get("type") == "websocket.disconnect":
                    self._pending = None
                    raise _ClientDeparted(early)
        return self._send(message)

    def stop(self) -> None:
        """Cancel the pending receive: the handler is done with the connection."""
        pending, self._pending = self._pending, None
        if pending is not None:
            if pending.done():
                if not pending.cancelled():
                    pending.exception()  # retrieved, so asyncio does not warn of it
            else:
                pending.cancel()
