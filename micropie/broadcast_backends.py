"""How a :class:`~micropie.broadcast.Broadcast`'s messages travel: in this
process, or through Redis to every process subscribed."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from micropie._redis import Outage, RedisTarget, RedisUnavailable, as_text
from micropie.broadcast_history import History, MemoryHistory, RedisHistory, Replay
from micropie.unavailable import Unavailable

__all__ = [
    "BroadcastBackend",
    "BroadcastLost",
    "BroadcastUnavailable",
    "Deliver",
    "InMemoryBroadcastBackend",
    "RedisBroadcastBackend",
]

logger = logging.getLogger("micropie")


class Deliver(Protocol):
    """What a backend calls for each message that reaches this process."""

    def __call__(self, channel: str, message: str, message_id: str | None = None) -> None: ...


class BroadcastLost(ConnectionError):
    """The backend lost its connection: the subscription ends, since messages
    published meanwhile did not reach it. Tell the client (close its
    WebSocket with 1012, say, so that it reconnects) and subscribe again."""

    __module__ = "micropie.broadcast"


class BroadcastUnavailable(Unavailable):
    """The backend cannot carry messages now (Redis is unreachable and the
    backend is reconnecting): raised at once by ``publish`` and
    ``subscribe``, never after a wait. Escaping a handler, it is answered
    with 503 (over HTTP) or a close with 1013 (a WebSocket)."""

    __module__ = "micropie.broadcast"


class BroadcastBackend(abc.ABC):
    """How messages travel between the processes that share a :class:`Broadcast`.

    The backend calls *deliver(channel, message, message_id)*, given to
    :meth:`connect`, for each message published on a channel it is
    subscribed to, in the order of publication. A backend that keeps a
    :class:`History` sets ``history``, gives each message its id, and
    answers :meth:`replay`.
    """

    __module__ = "micropie.broadcast"

    #: How much of each channel the backend keeps, or None: no resuming.
    history: History | None = None

    async def connect(self, deliver: Deliver, fail: Callable[[BaseException], None]) -> None:
        """Start; *fail(error)* ends every subscription if the backend breaks."""
        self._deliver = deliver
        self._fail = fail

    async def disconnect(self) -> None:
        """Stop; :meth:`connect` may be called again later."""
        return None

    async def ready(self) -> bool:
        """Whether messages can travel now, for a readiness check."""
        return True

    @abc.abstractmethod
    async def publish(self, channel: str, message: str) -> str | None:
        """Send *message*; its id if the backend keeps a history, else None."""

    async def replay(self, channel: str, since: str | None, limit: int) -> Replay:
        """At most *limit* messages of *channel* after *since* (a message id),
        or, if *since* is None, only the newest id."""
        raise NotImplementedError(f"{type(self).__name__} keeps no history to replay")

    @abc.abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Receive *channel* from now on: messages published after this returns arrive."""

    @abc.abstractmethod
    async def unsubscribe(self, channel: str) -> None: ...


class InMemoryBroadcastBackend(BroadcastBackend):
    """Messages reach the subscriptions of this process only.

    ``publish`` queues the message for every subscriber at once, then yields
    to the event loop, so that a publisher in a tight loop lets the
    subscribers read. With a *history*, the process keeps the last messages
    of each channel (until it stops).
    """

    __module__ = "micropie.broadcast"

    def __init__(self, *, history: History | None = None) -> None:
        self.history = history
        self._kept = MemoryHistory(history) if history is not None else None

    async def publish(self, channel: str, message: str) -> str | None:
        message_id = None if self._kept is None else self._kept.add(channel, message)
        self._deliver(channel, message, message_id)
        await asyncio.sleep(0)
        return message_id

    async def replay(self, channel: str, since: str | None, limit: int) -> Replay:
        if self._kept is None:
            return await super().replay(channel, since, limit)
        return self._kept.replay(channel, since, limit)

    async def subscribe(self, channel: str) -> None:
        pass

    async def unsubscribe(self, channel: str) -> None:
        pass


class RedisBroadcastBackend(BroadcastBackend):
    """Messages travel through Redis pub/sub, to every process subscribed.

    *redis* is a URL or a ``redis.asyncio.Redis`` client. :meth:`connect`
    pings Redis and raises :class:`~micropie.RedisUnavailable`
    naming the URL if it cannot. Messages published one after another (each
    ``publish`` awaited) arrive in that order everywhere.

    If the connection to Redis is lost, every subscription ends with
    :class:`BroadcastLost` (its subscriber has missed messages, and must be
    told), and the backend reconnects by itself, waiting longer between tries
    up to *max_backoff* seconds. Until it has, ``publish`` and ``subscribe``
    raise :class:`BroadcastUnavailable` at once, never waiting; commands give
    up after *timeout* seconds (for a client made from a URL), and a
    ``publish`` that does raises :class:`BroadcastUnavailable` by itself,
    leaving the subscriptions be. The subscriptions' connection is pinged
    after *keepalive* seconds of quiet, so that one that died without a
    word is found out within *keepalive* + *timeout* seconds, and at most
    two more. The outage is logged once when it starts and once when it
    ends.

    Each channel is the Redis pub/sub channel ``prefix + channel``, so that
    a client that names a channel cannot reach Redis's own (keyspace
    notifications) or another application's.

    With a *history*, each channel's last messages are kept in a Redis
    stream, published with their ids, so that a subscriber can resume from
    the last one it saw, on any worker; every process that shares the
    channels must use the same *history*. Streams need Redis 6.2 or later.
    """

    __module__ = "micropie.broadcast"

    def __init__(
        self,
        redis: Any,
        *,
        check_timeout: float = 5.0,
        timeout: float = 2.0,
        retry_after: float = 5.0,
        max_backoff: float = 5.0,
        keepalive: float = 5.0,
        history: History | None = None,
        prefix: str = "micropie:broadcast:",
    ) -> None:
        self._target = RedisTarget(redis)
        #: Where the messages travel, for messages: the URL without its password.
        self.where = self._target.where
        self.check_timeout = check_timeout
        self.timeout = timeout
        self.retry_after = retry_after
        self.max_backoff = max_backoff
        self.keepalive = keepalive
        self.history = history
        self.prefix = prefix
        self._kept: RedisHistory | None = None
        self._errors = self._target.errors()
        # The user's channel of each pub/sub channel this backend subscribed to,
        # by the name Redis gives back: no decoding per message.
        self._channel_of: dict[bytes | str, str] = {}
        self._client: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._outage = Outage(f"the broadcast, Redis at {self.where},")
        self._confirmations: dict[str, deque[asyncio.Future[None]]] = {}

    async def connect(self, deliver: Deliver, fail: Callable[[BaseException], None]) -> None:
        await super().connect(deliver, fail)
        if self._client is not None:
            return
        client = self._target.client(self.timeout)
        try:
            await self._target.ping(client, self.check_timeout)
        except BaseException:
            await self._target.close(client)
            raise
        self._client = client
        self._pubsub = client.pubsub()
        if self.history is not None:
            self._kept = RedisHistory(self.history, client)

    async def disconnect(self) -> None:
        for task in (self._reader, self._reconnecting):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._reader = self._reconnecting = None
        await self._close_pubsub()
        if self._client is not None:
            await self._target.close(self._client)
        self._client = None
        self._outage = Outage(self._outage.what)
        self._cancel_confirmations(None)

    async def ready(self) -> bool:
        """Whether Redis answers a ping now, within *check_timeout*; False before connect()."""
        if self._client is None or self._outage.ongoing:
            return False
        try:
            await self._target.ping(self._client, self.check_timeout)
        except RedisUnavailable:
            return False
        return True

    def _require(self) -> None:
        if self._client is None:
            raise RuntimeError("call await broadcast.connect() first (a startup handler)")
        if self._outage.ongoing:
            raise self._unavailable()

    async def publish(self, channel: str, message: str) -> str | None:
        self._require()
        try:
            if self._kept is not None:
                return await self._kept.add(channel, message)
            await self._client.publish(self.prefix + channel, message)
        except self._errors as exc:
            raise self._unavailable() from exc  # this call only: see _lost
        return None

    async def replay(self, channel: str, since: str | None, limit: int) -> Replay:
        if self._kept is None:
            return await super().replay(channel, since, limit)
        self._require()
        try:
            return await self._kept.replay(channel, since, limit)
        except self._errors as exc:
            raise self._unavailable() from exc  # this call only: see _lost

    def _wire(self, channel: str) -> str:
        """The Redis pub/sub channel that carries *channel*: never Redis's own
        (``__keyspace@0__:...``) nor another application's."""
        return self.prefix + channel if self._kept is None else self._kept.stream(channel)

    async def _confirmed(self, command: str, channel: str) -> None:
        user_channel, channel = channel, self._wire(channel)
        if command == "subscribe":
            self._channel_of[channel] = self._channel_of[channel.encode()] = user_channel
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(f"{command}:{channel}", deque()).append(waiter)
        try:
            if command == "subscribe":
                await self._pubsub.subscribe(channel)
            else:
                await self._pubsub.unsubscribe(channel)
        except self._errors as exc:
            self._lost(exc)
            raise self._unavailable() from exc
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())
        await waiter

    async def subscribe(self, channel: str) -> None:
        self._require()
        await self._confirmed("subscribe", channel)

    async def unsubscribe(self, channel: str) -> None:
        if self._client is None or self._outage.ongoing:
            return  # down: the subscription is gone with the connection
        await self._confirmed("unsubscribe", channel)

    async def _read(self) -> None:
        # Redis sends nothing on a quiet channel, so a read that waited for
        # good would never learn of a connection that died without a word
        # (and redis-py before 8 gives such a read the command timeout, which
        # a quiet channel would outlast). Reads give up after *poll* seconds;
        # *keepalive* seconds of silence are broken with a PING, and a PING
        # that as many reads as *timeout* lasts find unanswered is a lost
        # connection. Reads are counted, not seconds: after the event loop
        # stalled, the answer may be waiting, unread, and the next read has it.
        loop = asyncio.get_running_loop()
        poll = min(1.0, self.keepalive, self.timeout)
        patience = max(1, math.ceil(self.timeout / poll))
        heard, quiet_since, unanswered = False, loop.time(), -1
        try:
            while True:
                item = await self._pubsub.get_message(timeout=poll)
                if item is not None:
                    heard = True
                    self._handle(item)
                    continue
                if heard:
                    heard, quiet_since, unanswered = False, loop.time(), -1
                elif unanswered >= 0:
                    unanswered += 1
                    if unanswered > patience:
                        raise TimeoutError(f"Redis did not answer a PING within {self.timeout} s")
                elif loop.time() - quiet_since >= self.keepalive:
                    await self._pubsub.ping()
                    unanswered = 0
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._reader is asyncio.current_task():  # not a newer reader's place
                self._reader = None
            self._lost(exc)

    def _handle(self, item: dict[str, Any]) -> None:
        """One reply on the pub/sub connection: a message, a confirmation, or a pong."""
        kind = item["type"]
        if kind == "message":
            channel = self._channel_of.get(item["channel"])
            if channel is None:
                return  # from a channel left meanwhile: nobody here wants it
            try:
                message = as_text(item["data"])
            except UnicodeDecodeError:
                # Not ours (a shared Redis): dropped, the channel goes on.
                logger.warning("a message on %r is not UTF-8 text; dropped", channel)
                return
            if self._kept is None:
                self._deliver(channel, message)
            else:  # "<id> <message>" on the stream's channel
                message_id, _, message = message.partition(" ")
                self._deliver(channel, message, message_id)
        elif kind in ("subscribe", "unsubscribe"):
            channel = as_text(item["channel"])
            key = f"{kind}:{channel}"
            waiters = self._confirmations.get(key)
            if waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                if not waiters:  # nothing kept per channel once it is done with
                    del self._confirmations[key]
            if kind == "unsubscribe" and f"subscribe:{channel}" not in self._confirmations:
                self._channel_of.pop(channel, None)
                self._channel_of.pop(channel.encode(), None)

    def _lost(self, error: BaseException) -> None:
        """The subscriptions' connection is gone: end every subscription, and
        reconnect in the background. Only that connection's failures come
        here: a publish that fails (a busy Redis, no free connection in a
        crowd of clients) fails alone, and the reader finds out by itself
        whether Redis is gone."""
        meanwhile = "subscriptions end with BroadcastLost, publish() raises BroadcastUnavailable"
        if not self._outage.begin(error, meanwhile):
            return
        lost = BroadcastLost(f"lost the Redis broadcast connection to {self.where}: {error}")
        self._cancel_confirmations(self._unavailable())  # a subscribe() under way
        self._channel_of.clear()
        self._fail(lost)
        self._reconnecting = asyncio.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        await self._close_pubsub()
        wait = 0.05
        while True:
            try:
                await self._target.ping(self._client, self.check_timeout)
            except RedisUnavailable:
                await asyncio.sleep(wait)
                wait = min(wait * 2, self.max_backoff)
                continue
            break
        self._pubsub = self._client.pubsub()
        self._reconnecting = None
        self._outage.end()

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    def _cancel_confirmations(self, error: BaseException | None) -> None:
        for waiters in self._confirmations.values():
            for waiter in waiters:
                if waiter.done():
                    continue
                if error is None:
                    waiter.cancel()
                else:
                    waiter.set_exception(error)
        self._confirmations.clear()

    def _unavailable(self) -> BroadcastUnavailable:
        return BroadcastUnavailable(
            f"the broadcast cannot reach Redis at {self.where} now", retry_after=self.retry_after
        )
