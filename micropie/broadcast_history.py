"""A broadcast's history: the last messages of each channel, kept so that a
subscriber that lost its connection resumes from the last message it saw.

Message ids are Redis stream ids (``"1733140800000-0"``: milliseconds, then
a sequence number), made by Redis for :class:`RedisHistory` and in the same
form for :class:`MemoryHistory`, so that they order the same way.

A resume from id *X* is complete when *X* is still held: the messages after
it are all there. Each history keeps one message beyond its bounds, so that
a subscriber that missed exactly as many messages as the history holds
still resumes without a gap.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

from micropie._redis import as_text

__all__ = [
    "FIRST_ID",
    "History",
    "MemoryHistory",
    "RedisHistory",
    "Replay",
    "is_message_id",
    "message_key",
]

logger = logging.getLogger("micropie")

#: The position of a channel nothing was published on yet: a resume from it
#: replays everything the history holds.
FIRST_ID = "0-0"

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
        if self.max_length is not None and (
            not isinstance(self.max_length, int) or self.max_length < 1
        ):
            raise ValueError(
                f"max_length must be a whole number of at least 1, got {self.max_length!r}"
            )
        if self.max_age is not None and not self.max_age > 0:
            raise ValueError(f"max_age must be a number of seconds above 0, got {self.max_age!r}")


class Replay(NamedTuple):
    """What a history holds after a subscriber's last message."""

    #: (id, message) pairs after *since*, oldest first.
    entries: list[tuple[str, str]]
    #: Where the subscription starts: *since*, or the newest id when there was none.
    last_id: str
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
        self._last = (0, 0)

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
        if since is None:
            return Replay([], entries[-1][1] if entries else FIRST_ID, False)
        key = message_key(since)
        keys = [entry[0] for entry in entries]
        start = bisect.bisect_right(keys, key)
        if since == FIRST_ID:
            held = kept is None or not kept.trimmed
        else:
            held = start > 0 and keys[start - 1] == key
        after = itertools.islice(entries, start, start + limit)
        return Replay([(entry[1], entry[2]) for entry in after], since, not held)


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
  local before = '(' .. string.format('%d', cutoff) .. '-0'
  local older = redis.call('XREVRANGE', key, before, '-', 'COUNT', 1)
  if #older > 0 then
    redis.call('XTRIM', key, 'MINID', older[1][1])
  end
end
redis.call('PUBLISH', key, id .. ' ' .. message)
return id
"""

# {held, entries after since, newest id}; held is 1 when since is still in
# the stream (or is FIRST_ID and nothing was ever trimmed).
_REPLAY = """
local key, since, limit = KEYS[1], ARGV[1], tonumber(ARGV[2])
local newest = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
local last = '0-0'
if #newest > 0 then
  last = newest[1][1]
end
if since == '' then
  return {1, {}, last}
end
local held = 0
if #newest == 0 then
  if since == '0-0' then held = 1 end
elseif #redis.call('XRANGE', key, since, since) > 0 then
  held = 1
elseif since == '0-0' then
  local info = redis.call('XINFO', 'STREAM', key)
  local fields = {}
  for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
  if fields['entries-added'] ~= nil and fields['entries-added'] == fields['length'] then
    held = 1
  end
end
return {held, redis.call('XRANGE', key, '(' .. since, '+', 'COUNT', limit), last}
"""


class RedisHistory:
    """The history of each channel in a Redis stream (with :class:`RedisBroadcastBackend`)."""

    def __init__(self, history: History, client: Any) -> None:
        self.history = history
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
        return as_text(await self._add(keys=[self.stream(channel)], args=[message, *self._bounds]))

    async def replay(self, channel: str, since: str | None, limit: int) -> Replay:
        if since is not None:
            message_key(since)  # never send Redis an id it would refuse
        held, raw_entries, last = await self._replay(
            keys=[self.stream(channel)], args=["" if since is None else since, limit]
        )
        entries = []
        for raw_id, fields in raw_entries:
            message = _message_field(fields)
            if message is None:
                logger.warning("a message in the history of %r is not ours; skipped", channel)
                continue
            entries.append((as_text(raw_id), message))
        return Replay(entries, as_text(last) if since is None else since, not held)


def _message_field(fields: list[Any]) -> str | None:
    """The message of a stream entry written by :data:`_ADD`, or None if it is not one."""
    if len(fields) != 2 or as_text(fields[0]) != "m":
        return None
    try:
        return as_text(fields[1])
    except UnicodeDecodeError:
        return None
