"""Noticing a departed client on servers that drop sends to it silently."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable

from micropie._asgi import Message, Receive, Send

#: How many of its client's messages a handler that only sends may leave
#: unread while the watch goes on.
_MOST_PARKED = 64


class _ClientDeparted(OSError):
    """A send noticed that the client had left: *message* is the server's disconnect."""

    def __init__(self, message: Message) -> None:
        super().__init__("the client left")
        self.message = message


async def _ready(message: Message) -> Message:
    return message


class _DepartureWatch:
    """Sends that notice a departed client, on servers that do not say so.

    hypercorn, granian and daphne drop a send to a client that has left,
    silently; uvicorn fails it (ASGI 2.4), but not once the client has sent
    a message the handler left unread. A handler that only sends would
    never learn. So while a handler sends without receiving, a
    receive() is kept pending; when it brings the disconnect, the next send
    raises ``_ClientDeparted``; a message it brings instead is parked for the
    handler's next receive, and another receive is kept pending (for up to
    _MOST_PARKED messages: a handler that leaves more of its client's
    messages unread learns of the departure from its receive). A handler
    that receives learns of the departure from its receive: nothing is
    watched while a receive waits (another task of the handler's may be
    sending meanwhile, as a relay does: a second receive would take the
    first one's message), and the first send after a receive starts
    nothing, which keeps an echo loop free of tasks.

    ``send`` returns the server's awaitable rather than awaiting it, so that
    the watch adds no coroutine to a message sent.
    """

    __slots__ = ("_parked", "_pending", "_receive", "_received_last", "_receiving", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._pending: asyncio.Future[Message] | None = None
        # Made when a message is first parked: most connections never need it.
        self._parked: deque[Message] | None = None
        self._received_last = False
        self._receiving = False

    def receive(self) -> Awaitable[Message]:
        """The handler's receive: the server's awaitable, or what came first.

        The caller calls :meth:`received` once it is over, raised or not:
        a method rather than a coroutine here, so that a message received
        costs no coroutine of the watch's.
        """
        self._received_last = True
        self._receiving = True
        if self._parked:  # they came first
            return _ready(self._parked.popleft())
        pending = self._pending
        if pending is not None:
            self._pending = None
            return pending
        return self._receive()

    def received(self) -> None:
        """The handler's receive is over: sends may watch again."""
        self._receiving = False

    def send(self, message: Message) -> Awaitable[None]:
        if self._receiving:
            pass  # the handler is reading: its receive brings the departure
        elif self._received_last:
            self._received_last = False  # the handler reads: its receive brings the departure
        elif message["type"] == "websocket.send":
            pending = self._pending
            if pending is None:
                self._watch()
            elif pending.done() and not pending.cancelled() and pending.exception() is None:
                early = pending.result()
                self._pending = None
                if early.get("type") == "websocket.disconnect":
                    raise _ClientDeparted(early)
                if self._parked is None:
                    self._parked = deque()
                self._parked.append(early)  # the client spoke: keep it, and watch on
                self._watch()
        return self._send(message)

    def _watch(self) -> None:
        if self._parked is None or len(self._parked) < _MOST_PARKED:
            self._pending = asyncio.ensure_future(self._receive())

    def stop(self) -> None:
        """Cancel the pending receive: the handler is done with the connection."""
        self._parked = None
        pending, self._pending = self._pending, None
        if pending is not None:
            if pending.done():
                if not pending.cancelled():
                    pending.exception()  # retrieved, so asyncio does not warn of it
            else:
                pending.cancel()
