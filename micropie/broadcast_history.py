"""A broadcast's history: the last messages of each channel, kept so that a
subscriber that lost its connection resumes from the last message it saw.

Message ids are Redis stream ids (``"1733140800000-0"``: milliseconds, then
a sequence number), made by Redis for :class:`RedisHistory` and in the same
form for :class:`MemoryHistory`, so that they order the same way.

A resume from id *X* is complete when *X* is still held: the messages after
it are all there. Each history keeps one message beyond its bounds, so that
a subscriber that missed exactly as many messages as the history holds
still resumes without a gap. A channel nothing was published on yet gets an
origin, an id of its own that no other history has (a marker entry in the
Redis stream), so that a subscriber that joined it empty also knows whether
what followed is still held; ``"0-0"`` is never a position.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

from micropie._redis import as_text, import_redis

__all__ = [
    "History",
    "MemoryHistory",
    "RedisHistory",
    "Replay",
    "is_message_id",
    "message_key",
]

logger = logging.getLogger("micropie")

_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
# Redis reads a stream id as two unsigned 64-bit numbers, and the exclusive
# range after the largest one does not exist.
_LARGEST = 2**64 - 2


def message_key(message_id: str) -> tuple[int, int]:
    """*message_id* as (milliseconds, sequence), which orders ids; ValueError if it is none."""
    match = _ID.fullmatch(message_id) if isinstance(message_id, str) else None
    if match is None or int(match[1]) > _LARGEST or int(match[2]) > _LARGEST:
        raise ValueError(
            f"a message id looks like '1733140800000-0' (from subscription.last_id), "
            f"not {message_id!r}"
        )
    return int(match[1]), int(match[2])


def is_message_id(value: object) -> bool:
    """Whether *value* is a message id that ``subscribe(since=...)`` takes:
    check one that a client sent before resuming from it."""
    try:
        message_key(value)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


# The sequence numbers of in-memory origins: below those of messages.
_ORIGINS = 2**40
# Bounds that Redis and the Lua scripts' numbers (doubles) take exactly.
_MOST = 1_000_000_000
_LONGEST = 10 * 365 * 24 * 3600


@dataclass(frozen=True)
class History:
    """How much of each channel a broadcast keeps, so that a subscriber can
    resume from the last message it saw (``subscribe(channel, since=...)``).

    *max_length* bounds the messages kept per channel, *max_age* their age
    in seconds; give either or both. Older messages are dropped when a new
    one is published on the channel. With Redis, the history of *channel*
    is the stream ``key_prefix + channel``.
    """

    max_length: int | None = 1000
    max_age: float | None = None
    key_prefix: str = "micropie:history:"

    __module__ = "micropie.broadcast"

    def __post_init__(self) -> None:
        if self.max_length is None and self.max_age is None:
            raise ValueError("bound the history: give max_length, max_age or both")
        length, age = self.max_length, self.max_age
        if length is not None and (
            not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= _MOST
        ):
            raise ValueError(
                f"max_length must be a whole number from 1 to {_MOST:,}, got {length!r}"
            )
        if age is not None and not (isinstance(age, (int, float)) and 0 < age <= _LONGEST):
            raise ValueError(
                f"max_age must be a number of seconds above 0 and at most {_LONGEST:,} "
                f"(ten years), got {age!r}"
            )


class Replay(NamedTuple):
    """What a history holds after a subscriber's last message."""

    #: (id, message) pairs after *since*, oldest first.
    entries: list[tuple[str, str]]
    #: The newest id the history holds (the channel's origin while it holds no message).
    newest: str
    #: True when messages after *since* are no longer held: the subscriber missed some.
    gap: bool


Replay.__module__ = "micropie.broadcast"


class _ChannelHistory:
    __slots__ = ("entries", "trimmed")

    def __init__(self) -> None:
        # (key, id, message, time.monotonic() when published)
        self.entries: deque[tuple[tuple[int, int], str, str, float]] = deque()
        self.trimmed = False


class MemoryHistory:
    """The history of the channels of one process (with :class:`InMemoryBroadcastBackend`)."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._channels: dict[str, _ChannelHistory] = {}
        # The origin of every channel here: this history's own, since another
        # process's (a restarted one) holds none of these messages. Message
        # ids come after any origin made in the same millisecond.
        started = time.time_ns() // 1_000_000
        self._origin = f"{started}-{secrets.randbelow(_ORIGINS)}"
        self._last = (started, _ORIGINS)

    def add(self, channel: str, message: str) -> str:
        """Keep *message*; its new id."""
        milliseconds = time.time_ns() // 1_000_000
        last_ms, last_sequence = self._last
        # Ids only grow, even if the clock steps back.
        key = (milliseconds, 0) if milliseconds > last_ms else (last_ms, last_sequence + 1)
        self._last = key
        message_id = f"{key[0]}-{key[1]}"
        kept = self._channels.get(channel)
        if kept is None:
            kept = self._channels[channel] = _ChannelHistory()
        kept.entries.append((key, message_id, message, time.monotonic()))
        self._trim(kept)
        return message_id

    def _trim(self, kept: _ChannelHistory) -> None:
        entries, history = kept.entries, self.history
        if history.max_length is not None:
            while len(entries) > history.max_length + 1:
                entries.popleft()
                kept.trimmed = True
        if history.max_age is not None:
            cutoff = time.monotonic() - history.max_age
            while len(entries) > 1 and entries[1][3] < cutoff:
                entries.popleft()
                kept.trimmed = True

    def replay(self, channel: str, since: str | None, limit: int) -> Replay:
        kept = self._channels.get(channel)
        entries = kept.entries if kept is not None else deque()
        newest = entries[-1][1] if entries else self._origin
        if since is None:
            return Replay([], newest, False)
        key = message_key(since)
        keys = [entry[0] for entry in entries]
        start = bisect.bisect_right(keys, key)
        if since == self._origin:
            held = kept is None or not kept.trimmed
        else:
            held = start > 0 and keys[start - 1] == key
        after = itertools.islice(entries, start, start + limit)
        return Replay([(entry[1], entry[2]) for entry in after], newest, not held)


# Append, trim (keeping one message beyond each bound), and publish the id
# with the message, in one step: every subscriber sees the stream's order.
_ADD = """
local key, message = KEYS[1], ARGV[1]
local id = redis.call('XADD', key, '*', 'm', message)
if ARGV[2] ~= '' then
  redis.call('XTRIM', key, 'MAXLEN', tonumber(ARGV[2]) + 1)
end
if ARGV[3] ~= '' then
  local now = redis.call('TIME')
  local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[3])
  if cutoff > 0 then
    local before = '(' .. string.format('%d', cutoff) .. '-0'
    local older = redis.call('XREVRANGE', key, before, '-', 'COUNT', 1)
    if #older > 0 then
      redis.call('XTRIM', key, 'MINID', older[1][1])
    end
  end
end
redis.call('PUBLISH', key, id .. ' ' .. message)
return id
"""

# {held, entries after since, newest id}; held is 1 when since is still in
# the stream. An empty stream gets its origin: a marker entry, never
# delivered, whose id a subscriber that joined it empty resumes from.
_REPLAY = """
local key, since, limit = KEYS[1], ARGV[1], tonumber(ARGV[2])
local newest = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
local last
if #newest > 0 then
  last = newest[1][1]
else
  last = redis.call('XADD', key, '*', 'origin', '')
end
if since == '' then
  return {1, {}, last}
end
local held = 0
if #redis.call('XRANGE', key, since, since) > 0 then
  held = 1
end
return {held, redis.call('XRANGE', key, '(' .. since, '+', 'COUNT', limit), last}
"""


class RedisHistory:
    """The history of each channel in a Redis stream (with :class:`RedisBroadcastBackend`)."""

    def __init__(self, history: History, client: Any) -> None:
        self.history = history
        self._refused = import_redis().ResponseError
        self._add = client.register_script(_ADD)
        self._replay = client.register_script(_REPLAY)
        self._bounds = [
            "" if history.max_length is None else str(history.max_length),
            "" if history.max_age is None else str(round(history.max_age * 1000)),
        ]

    def stream(self, channel: str) -> str:
        """The stream, and the pub/sub channel, of *channel*."""
        return self.history.key_prefix + channel

    async def add(self, channel: str, message: str) -> str:
        try:
            added = await self._add(keys=[self.stream(channel)], args=[message, *self._bounds])
        except self._refused as exc:
            raise self._misused(channel, exc) from exc
        return as_text(added)

    def _misused(self, channel: str, error: BaseException) -> RuntimeError:
        return RuntimeError(
            f"Redis refused the history of {channel!r} at the key {self.stream(channel)!r} "
            f"({error}): is something else using that key? Give History(key_prefix=...) "
            "a prefix of its own"
        )

    async def replay(self, channel: str, since: str | None, limit: int) -> Replay:
        if since is not None:
            message_key(since)  # never send Redis an id it would refuse
        try:
            held, raw_entries, newest = await self._replay(
                keys=[self.stream(channel)], args=["" if since is None else since, limit]
            )
        except self._refused as exc:
            raise self._misused(channel, exc) from exc
        entries = []
        for raw_id, fields in raw_entries:
            field = as_text(fields[0]) if len(fields) == 2 else None
            if field == "origin":
                continue
            message = _text_or_none(fields[1]) if field == "m" else None
            if message is None:
                logger.warning("a message in the history of %r is not ours; skipped", channel)
                continue
            entries.append((as_text(raw_id), message))
        return Replay(entries, as_text(newest), not held)


def _text_or_none(value: Any) -> str | None:
    try:
        return as_text(value)
    except UnicodeDecodeError:
        return None
