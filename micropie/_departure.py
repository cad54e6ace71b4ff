"""Noticing a departed client on servers that drop sends to it silently."""

from __future__ import annotations

import asyncio

from micropie._asgi import Message, Receive, Send


class _ClientDeparted(OSError):
    """A send noticed that the client had left: *message* is the server's disconnect."""

    def __init__(self, message: Message) -> None:
        super().__init__("the client left")
        self.message = message


class _DepartureWatch:
    """Sends that notice a departed client, on servers that do not say so.

    uvicorn fails a send to a client that has left (ASGI 2.4); hypercorn and
    daphne drop the message silently, and a handler that only sends would
    never learn. Here each send keeps a receive() pending; when it brings the
    disconnect, the next send raises ``_ClientDeparted``, and a message it
    brings instead is kept for the next receive. Servers that report the
    departure themselves never get one of these.
    """

    __slots__ = ("_pending", "_receive", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._pending: asyncio.Future[Message] | None = None

    async def receive(self) -> Message:
        pending = self._pending
        if pending is not None:
            self._pending = None
            return await pending
        return await self._receive()

    async def send(self, message: Message) -> None:
        if message["type"] == "websocket.send":
            pending = self._pending
            if pending is None:
                self._pending = asyncio.ensure_future(self._receive())
            elif pending.done() and not pending.cancelled() and pending.exception() is None:
                early = pending.result()
                if early.get("type") == "websocket.disconnect":
                    self._pending = None
                    raise _ClientDeparted(early)
        await self._send(message)

    def stop(self) -> None:
        """Cancel the pending receive: the handler is done with the connection."""
        pending, self._pending = self._pending, None
        if pending is not None:
            if pending.done():
                if not pending.cancelled():
                    pending.exception()  # retrieved, so asyncio does not warn of it
            else:
                pending.cancel()
