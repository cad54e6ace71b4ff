"""Publish/subscribe for WebSocket fan-out, in one process or across many.

A :class:`Broadcast` delivers each message published on a channel to every
subscription to that channel. With :class:`InMemoryBroadcastBackend` (the
default) that means the subscriptions of this process; with
:class:`RedisBroadcastBackend`, those of every process that uses the same
Redis server, whichever worker or host it runs on.

Overflow: each subscription has a bounded queue (*max_queue* messages, and
*max_queue_bytes* of them in memory). A publisher never waits for a
subscriber: when a subscription's queue is full,
that subscription is dropped from its channel. It still yields the messages
already queued, then its iteration raises :class:`SubscriberTooSlow`; it never
silently skips a message. The other subscriptions are not affected.

History: with a :class:`History`, each message gets an id, the backend
keeps the last messages of each channel, and ``subscribe(channel,
since=last_id)`` resumes after the last message a subscriber saw: the
messages it missed first, then the new ones, each once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sys
from collections import deque
from collections.abc import AsyncIterator

from micropie.broadcast_backends import (
    BroadcastBackend,
    BroadcastLost,
    BroadcastUnavailable,
    InMemoryBroadcastBackend,
    RedisBroadcastBackend,
)
from micropie.broadcast_history import History, Replay, is_message_id, message_key
from micropie.unavailable import Unavailable

__all__ = [
    "Broadcast",
    "BroadcastBackend",
    "BroadcastLost",
    "BroadcastUnavailable",
    "History",
    "InMemoryBroadcastBackend",
    "RedisBroadcastBackend",
    "Replay",
    "SubscriberTooSlow",
    "Subscription",
    "is_message_id",
]

logger = logging.getLogger("micropie")

#: What a subscription may hold in memory unless the Broadcast says otherwise: 16 MiB.
MAX_QUEUE_BYTES = 2**24


class SubscriberTooSlow(Exception):
    """A subscription fell *max_queue* messages (or *max_queue_bytes*) behind and was dropped.

    Publishers never wait for subscribers. When a subscription's queue is
    full, it leaves its channel: it still yields the messages already queued,
    then raises this exception, so that it never silently skips a message.
    The other subscriptions of the channel are not affected.
    """

    def __init__(self, channel: str, behind: str) -> None:
        super().__init__(f"the subscription to {channel!r} fell {behind} behind and was dropped")
        self.channel = channel


#: A message, its id and the id's sort key (None, None without a history), and its
#: size in memory.
Entry = tuple[str | None, str, tuple[int, int] | None, int]


class Subscription:
    """The messages of one channel, for one subscriber: ``async for message in subscription``.

    With a history, :attr:`last_id` is the id of the message last yielded:
    the place to resume from (``subscribe(channel, since=last_id)``) if the
    subscriber goes away. Before the first message it is where the
    subscription started. :attr:`gap` says whether messages after *since*
    were no longer in the history, so that the subscriber missed some.
    """

    def __init__(
        self, channel: str, max_queue: int, max_queue_bytes: int = MAX_QUEUE_BYTES
    ) -> None:
        self.channel = channel
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self._queued_bytes = 0
        #: The id of the last message yielded (None without a history).
        self.last_id: str | None = None
        #: True when the history no longer held every message after *since*.
        self.gap = False
        self._messages: deque[Entry] = deque()
        self._wakeup = asyncio.Event()
        self._error: BaseException | None = None
        self._closed = False
        # Live messages that arrive while the history is read, merged after it.
        self._held: list[Entry] | None = None
        # The key of the newest message queued: with a history, the live copy
        # of a message the replay already gave can come later (another
        # connection), and must not be queued twice.
        self._newest = (0, 0)

    def _put(self, entry: Entry) -> bool:
        """Queue *entry*; False, and the subscription ends, if the queue is full."""
        if self._closed or self._error is not None:
            return False
        if self._held is not None:
            self._held.append(entry)
            return True
        key = entry[2]
        if key is not None:
            if key <= self._newest:
                return True  # queued already, from the history
            self._newest = key
        if len(self._messages) >= self.max_queue:
            self._fail(SubscriberTooSlow(self.channel, f"{self.max_queue} messages"))
            return False
        if self._queued_bytes + entry[3] > self.max_queue_bytes and self._messages:
            self._fail(SubscriberTooSlow(self.channel, f"{self.max_queue_bytes:,} bytes"))
            return False
        self._queued_bytes += entry[3]
        self._messages.append(entry)
        self._wakeup.set()
        return True

    def _catch_up(self, replay: Replay, since: str | None) -> None:
        """Queue the messages *replay* holds, then those held meanwhile, each once, in order."""
        held, self._held = self._held or [], None
        newest = message_key(replay.newest)
        # A since beyond the newest message (a clock ahead, a made-up id)
        # starts at the newest: it must not silence what comes next.
        if since is None or message_key(since) >= newest:
            self.last_id, self._newest = replay.newest, newest
        else:
            self.last_id, self._newest = since, message_key(since)
        self.gap = replay.gap
        replayed = (
            (i, message, message_key(i), sys.getsizeof(message)) for i, message in replay.entries
        )
        for entry in itertools.chain(replayed, held):
            if not self._put(entry):
                return

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
                entry = self._messages.popleft()
                self._queued_bytes -= entry[3]
                self.last_id = entry[0]
                return entry[1]
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
    at most *max_queue* unread messages, and *max_queue_bytes* of them in
    memory (16 MiB); one that falls further behind is dropped (see
    :class:`SubscriberTooSlow`), and ``publish`` refuses a message larger
    than *max_queue_bytes* with ``ValueError``. *history* keeps the last
    messages of each channel in the default backend (give a backend of your
    own its history yourself), so that subscribers can resume.
    """

    def __init__(
        self,
        backend: BroadcastBackend | None = None,
        *,
        max_queue: int = 1000,
        max_queue_bytes: int = MAX_QUEUE_BYTES,
        history: History | None = None,
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue!r}")
        if max_queue_bytes < 1024:
            raise ValueError(f"max_queue_bytes must be at least 1024, got {max_queue_bytes!r}")
        if backend is None:
            backend = InMemoryBroadcastBackend(history=history)
        elif history is not None:
            raise ValueError(
                "give the history to the backend: "
                f"{type(backend).__name__}(..., history=History(...))"
            )
        self.backend = backend
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self._channels: dict[str, set[Subscription]] = {}
        self._backend_channels: set[str] = set()
        self._connected = False
        self._lock: asyncio.Lock | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        max_queue: int = 1000,
        max_queue_bytes: int = MAX_QUEUE_BYTES,
        history: History | None = None,
    ) -> Broadcast:
        """A Broadcast over the Redis server at *url*, keeping *history* in Redis streams."""
        backend = RedisBroadcastBackend(url, history=history)
        return cls(backend, max_queue=max_queue, max_queue_bytes=max_queue_bytes)

    @property
    def history(self) -> History | None:
        """How much of each channel the backend keeps; None if it keeps nothing."""
        return self.backend.history

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

    async def publish(self, channel: str, message: str) -> str | None:
        """Send *message* to every subscription to *channel*; its id with a
        history, else None."""
        _check_channel(channel)
        if not isinstance(message, str):
            raise TypeError(f"message must be a str, not {type(message).__name__}")
        if (size := sys.getsizeof(message)) > self.max_queue_bytes:
            raise ValueError(
                f"a message of {size:,} bytes in memory is larger than any subscription may "
                f"hold (max_queue_bytes={self.max_queue_bytes:,}): send less at a time"
            )
        await self.connect()
        return await self.backend.publish(channel, message)

    async def ready(self) -> bool:
        """Whether the backend can carry messages now: for a readiness check
        that a load balancer or an orchestrator polls."""
        return await self.backend.ready()

    def subscribers(self, channel: str) -> int:
        """How many subscriptions to *channel* this process holds."""
        return len(self._channels.get(channel, ()))

    @contextlib.asynccontextmanager
    async def subscribe(
        self, channel: str, *, since: str | None = None
    ) -> AsyncIterator[Subscription]:
        """Subscribe to *channel* for the block: messages published once it is
        entered are yielded by the subscription, in order. Leaving the block,
        however it is left, ends the subscription.

        *since*, a message id (a former subscription's ``last_id``), resumes:
        the messages published after it come first, from the history.
        """
        _check_channel(channel)
        history = self.backend.history
        if since is not None:
            if history is None:
                raise ValueError(
                    "resuming needs a history: Broadcast(history=History(...)), "
                    "or a backend made with one"
                )
            message_key(since)  # a bad id fails here, before anything starts
        await self.connect()
        subscription = Subscription(channel, self.max_queue, self.max_queue_bytes)
        if history is not None:
            subscription._held = []
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if channel not in self._backend_channels:
                await self.backend.subscribe(channel)
                self._backend_channels.add(channel)
            self._channels.setdefault(channel, set()).add(subscription)
        try:
            if history is not None:
                limit = self.max_queue + 1  # one more than fits tells a subscriber it fell behind
                subscription._catch_up(await self.backend.replay(channel, since, limit), since)
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
            except Unavailable:
                pass  # the subscription went with the connection; the outage is logged once
            except Exception:
                logger.exception("unsubscribing from %r failed", channel)

    def _deliver(self, channel: str, message: str, message_id: str | None = None) -> None:
        members = self._channels.get(channel)
        if not members:
            return
        size = sys.getsizeof(message)
        if message_id is None:
            entry: Entry = (None, message, None, size)
        else:
            try:
                entry = (message_id, message, message_key(message_id), size)
            except ValueError:  # not ours (a shared Redis): dropped, the channel goes on
                logger.warning("a message on %r has no message id; dropped", channel)
                return
        for subscription in list(members):
            if not subscription._put(entry):
                members.discard(subscription)  # too slow: dropped, the others go on
                logger.warning("a subscriber to %r fell behind and was dropped", channel)

    def _fail_all(self, error: BaseException) -> None:
        for subscriptions in self._channels.values():
            for subscription in subscriptions:
                subscription._fail(error)
        # Forgotten with the connection: the next subscription subscribes anew.
        self._channels.clear()
        self._backend_channels.clear()


#: The longest channel name: a room named by a client is a few words, not a payload.
MAX_CHANNEL = 200


def _check_channel(channel: object) -> None:
    """A ``ValueError`` (or ``TypeError``) saying what is wrong with *channel*, if anything."""
    if not isinstance(channel, str):
        raise TypeError(f"a channel name is a str, not {type(channel).__name__}")
    if not 0 < len(channel) <= MAX_CHANNEL or not channel.isprintable():
        raise ValueError(
            f"a channel name is 1 to {MAX_CHANNEL} printable characters, not {channel[:40]!r}"
        )
