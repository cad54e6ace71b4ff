"""Publish/subscribe for WebSocket fan-out, in one process or across many.

A :class:`Broadcast` delivers each message published on a channel to every
subscription to that channel. With :class:`InMemoryBroadcastBackend` (the
default) that means the subscriptions of this process; with
:class:`RedisBroadcastBackend`, those of every process that uses the same
Redis server, whichever worker or host it runs on.

Overflow: each subscription has a bounded queue (*max_queue* messages). A
publisher never waits for a subscriber: when a subscription's queue is full,
that subscription is dropped from its channel. It still yields the messages
already queued, then its iteration raises :class:`SubscriberTooSlow`; it never
silently skips a message. The other subscriptions are not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator

from micropie.broadcast_backends import (
    BroadcastBackend,
    BroadcastLost,
    BroadcastUnavailable,
    InMemoryBroadcastBackend,
    RedisBroadcastBackend,
)

__all__ = [
    "Broadcast",
    "BroadcastBackend",
    "BroadcastLost",
    "BroadcastUnavailable",
    "InMemoryBroadcastBackend",
    "RedisBroadcastBackend",
    "SubscriberTooSlow",
    "Subscription",
]

logger = logging.getLogger("micropie")


class SubscriberTooSlow(Exception):
    """A subscription fell *max_queue* messages behind and was dropped.

    Publishers never wait for subscribers. When a subscription's queue is
    full, it leaves its channel: it still yields the messages already queued,
    then raises this exception, so that it never silently skips a message.
    The other subscriptions of the channel are not affected.
    """

    def __init__(self, channel: str, max_queue: int) -> None:
        super().__init__(
            f"the subscription to {channel!r} fell {max_queue} messages behind and was dropped"
        )
        self.channel = channel


class Subscription:
    """The messages of one channel, for one subscriber: ``async for message in subscription``."""

    def __init__(self, channel: str, max_queue: int) -> None:
        self.channel = channel
        self.max_queue = max_queue
        self._messages: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self._error: BaseException | None = None
        self._closed = False

    def _put(self, message: str) -> bool:
        """Queue *message*; False, and the subscription ends, if the queue is full."""
        if self._closed or self._error is not None:
            return False
        if len(self._messages) >= self.max_queue:
            self._fail(SubscriberTooSlow(self.channel, self.max_queue))
            return False
        self._messages.append(message)
        self._wakeup.set()
        return True

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._wakeup.set()

    def _close(self) -> None:
        self._closed = True
        self._wakeup.set()

    @property
    def pending(self) -> int:
        """How many messages wait to be read."""
        return len(self._messages)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> str:
        while True:
            if self._messages:
                return self._messages.popleft()
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()


class Broadcast:
    """Publish messages on channels, and subscribe to them.

    *backend* carries the messages: an :class:`InMemoryBroadcastBackend`
    (this process only) unless you pass another; :meth:`from_url` makes one
    over Redis. Append :meth:`connect` to ``app.startup_handlers`` and
    :meth:`disconnect` to ``app.shutdown_handlers``. Each subscription holds
    at most *max_queue* unread messages; one that falls further behind is
    dropped (see :class:`SubscriberTooSlow`).
    """

    def __init__(self, backend: BroadcastBackend | None = None, *, max_queue: int = 1000) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue!r}")
        self.backend = backend if backend is not None else InMemoryBroadcastBackend()
        self.max_queue = max_queue
        self._channels: dict[str, set[Subscription]] = {}
        self._backend_channels: set[str] = set()
        self._connected = False
        self._lock: asyncio.Lock | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def from_url(cls, url: str, *, max_queue: int = 1000) -> Broadcast:
        """A Broadcast over the Redis server at *url*."""
        return cls(RedisBroadcastBackend(url), max_queue=max_queue)

    async def connect(self) -> None:
        """Connect the backend (a startup handler); fails if it cannot be reached."""
        if self._connected:
            return
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if not self._connected:
                await self.backend.connect(self._deliver, self._fail_all)
                self._connected = True

    async def disconnect(self) -> None:
        """End every subscription and disconnect the backend (a shutdown handler)."""
        for subscriptions in self._channels.values():
            for subscription in subscriptions:
                subscription._close()
        self._channels.clear()
        self._backend_channels.clear()
        if self._connected:
            self._connected = False
            await self.backend.disconnect()

    async def publish(self, channel: str, message: str) -> None:
        """Send *message* to every subscription to *channel*."""
        if not isinstance(message, str):
            raise TypeError(f"message must be a str, not {type(message).__name__}")
        await self.connect()
        await self.backend.publish(channel, message)

    async def ready(self) -> bool:
        """Whether the backend can carry messages now: for a readiness check
        that a load balancer or an orchestrator polls."""
        return await self.backend.ready()

    def subscribers(self, channel: str) -> int:
        """How many subscriptions to *channel* this process holds."""
        return len(self._channels.get(channel, ()))

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        """Subscribe to *channel* for the block: messages published once it is
        entered are yielded by the subscription, in order. Leaving the block,
        however it is left, ends the subscription."""
        await self.connect()
        subscription = Subscription(channel, self.max_queue)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if channel not in self._backend_channels:
                await self.backend.subscribe(channel)
                self._backend_channels.add(channel)
            self._channels.setdefault(channel, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscription._close()
            await self._leave(subscription)

    async def _leave(self, subscription: Subscription) -> None:
        channel = subscription.channel
        members = self._channels.get(channel)
        if members is not None:
            members.discard(subscription)
            if not members:
                del self._channels[channel]
        assert self._lock is not None
        async with self._lock:
            if channel in self._channels or channel not in self._backend_channels:
                return
            self._backend_channels.discard(channel)
            try:
                await self.backend.unsubscribe(channel)
            except Exception:
                logger.exception("unsubscribing from %r failed", channel)

    def _deliver(self, channel: str, message: str) -> None:
        members = self._channels.get(channel)
        if not members:
            return
        for subscription in list(members):
            if not subscription._put(message):
                members.discard(subscription)  # too slow: dropped, the others go on
                logger.warning("a subscriber to %r fell behind and was dropped", channel)

    def _fail_all(self, error: BaseException) -> None:
        for subscriptions in self._channels.values():
            for subscription in subscriptions:
                subscription._fail(error)
        # Forgotten with the connection: the next subscription subscribes anew.
        self._channels.clear()
        self._backend_channels.clear()
