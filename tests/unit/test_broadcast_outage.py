"""The Redis broadcast through an outage of a real redis-server: subscribers
told (BroadcastLost), publishers refused at once (BroadcastUnavailable), and
everything working again when Redis is back, with no restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from micropie import Unavailable
from micropie.broadcast import (
    Broadcast,
    BroadcastLost,
    BroadcastUnavailable,
    RedisBroadcastBackend,
    Subscription,
)
from tests.helpers.redis import RedisServer, run_redis

pytest.importorskip("redis")

WAIT = 5.0


@contextlib.asynccontextmanager
async def subscribed(url: str, **options: float) -> AsyncIterator[tuple[Broadcast, Subscription]]:
    """A broadcast over the Redis at *url* (*options* go to its backend),
    connected, and a subscription of it to "room", for the block."""
    broadcast = Broadcast(RedisBroadcastBackend(url, **options))
    await broadcast.connect()
    try:
        async with broadcast.subscribe("room") as room:
            yield broadcast, room
    finally:
        await broadcast.disconnect()


async def until_ready(broadcast: Broadcast) -> float:
    """Seconds until *broadcast* says it is ready again (at most WAIT)."""
    started = time.monotonic()
    while not await broadcast.ready():
        assert time.monotonic() - started < WAIT, "the broadcast did not reconnect"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def test_an_outage_ends_subscriptions_refuses_publishers_and_heals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(port: int, url: str, stop: object) -> None:
        publisher, receiver = Broadcast.from_url(url), Broadcast.from_url(url)
        await publisher.connect()
        await receiver.connect()
        try:
            async with receiver.subscribe("room") as room:
                await publisher.publish("room", "before")
                assert await asyncio.wait_for(anext(room), WAIT) == "before"
                stop()  # type: ignore[operator]
                with pytest.raises(BroadcastLost):
                    await asyncio.wait_for(anext(room), WAIT)
            started = time.monotonic()
            with pytest.raises(BroadcastUnavailable) as refused:
                await publisher.publish("room", "during")
            assert isinstance(refused.value, Unavailable)  # so a handler answers 503/1013
            with pytest.raises(BroadcastUnavailable):
                async with receiver.subscribe("room"):
                    pass
            assert time.monotonic() - started < 1.0  # refused at once, never a hang
            assert not await receiver.ready()
            with run_redis(port=port):
                await until_ready(receiver)
                await until_ready(publisher)
                async with receiver.subscribe("room") as room:
                    await publisher.publish("room", "after")
                    assert await asyncio.wait_for(anext(room), WAIT) == "after"
        finally:
            await publisher.disconnect()
            await receiver.disconnect()

    with caplog.at_level(logging.WARNING, logger="micropie"), run_redis() as server:
        port = server.port
        asyncio.run(scenario(port, server.url, server.process.terminate))
    lost = [
        r
        for r in caplog.records
        if "the broadcast" in r.getMessage() and "cannot be reached" in r.getMessage()
    ]
    back = [
        r
        for r in caplog.records
        if "the broadcast" in r.getMessage() and "answers again" in r.getMessage()
    ]
    # Once for the outage, not per call: by the broadcast whose subscriptions
    # it ended. A failed publish fails alone (its error says why), and says
    # nothing of the subscriptions' connection.
    assert len(lost) == 1 and len(back) == 1


def test_a_message_that_is_not_utf8_is_dropped_and_the_channel_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import redis.asyncio

    async def scenario(url: str) -> list[str]:
        broadcast = Broadcast.from_url(url)
        other = redis.asyncio.from_url(url)  # another application on a shared Redis
        await broadcast.connect()
        try:
            async with broadcast.subscribe("room") as room:
                await other.publish("micropie:broadcast:room", b"\xff\xfe not text")
                await broadcast.publish("room", "still here")
                return [await asyncio.wait_for(anext(room), WAIT)]
        finally:
            await other.aclose()
            await broadcast.disconnect()

    with caplog.at_level(logging.WARNING, logger="micropie"), run_redis() as server:
        assert asyncio.run(scenario(server.url)) == ["still here"]
    assert "a message on 'room' is not UTF-8 text; dropped" in caplog.text
    assert "cannot be reached" not in caplog.text  # no outage was made of it


def test_a_quiet_subscription_outlives_the_command_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A channel nobody speaks on for longer than *timeout* is not an outage
    (redis-py before 8 gives a waiting read the command timeout)."""

    async def scenario(url: str) -> list[str]:
        async with subscribed(url, timeout=0.3, keepalive=0.4) as (broadcast, room):
            await asyncio.sleep(1.5)  # quiet: pinged, and the pong heard
            await broadcast.publish("room", "after the quiet")
            return [await asyncio.wait_for(anext(room), WAIT)]

    with caplog.at_level(logging.WARNING, logger="micropie"), run_redis() as server:
        assert asyncio.run(scenario(server.url)) == ["after the quiet"]
    assert "cannot be reached" not in caplog.text


def test_a_redis_that_stops_answering_ends_the_subscriptions() -> None:
    """Redis frozen (a hung host, a network that drops packets): no error
    comes, only silence. The keepalive's unanswered PING ends every
    subscription, so that no client is left deaf."""

    async def scenario(server: RedisServer) -> float:
        async with subscribed(server.url, timeout=0.5, keepalive=0.5) as (_, room):
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                with pytest.raises(BroadcastLost, match="did not answer a PING"):
                    await asyncio.wait_for(anext(room), WAIT)
                return time.monotonic() - started
            finally:
                os.kill(server.process.pid, signal.SIGCONT)

    with run_redis() as server:
        found_out = asyncio.run(scenario(server))
    assert found_out < 0.5 + 0.5 + 2 * 0.5 + 0.5  # keepalive + timeout, two reads, and slack


def test_a_publish_that_times_out_fails_alone() -> None:
    """A Redis too busy to answer in time fails that publish, at once and
    with BroadcastUnavailable, and ends no subscription."""

    async def scenario(server: RedisServer) -> list[str]:
        async with subscribed(server.url, timeout=0.3, keepalive=30.0) as (broadcast, room):
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                with pytest.raises(BroadcastUnavailable):
                    await broadcast.publish("room", "lost in the crowd")
                assert time.monotonic() - started < 1.0
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            assert await broadcast.ready()
            await broadcast.publish("room", "heard")
            return [await asyncio.wait_for(anext(room), WAIT)]

    with run_redis() as server:
        assert asyncio.run(scenario(server)) == ["heard"]


def test_a_stalled_event_loop_is_not_an_outage(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop stalls (a handler that blocks) just after the keepalive's
    PING went out, while the reader waits for its answer: when the loop
    wakes, the read's timeout and the answer are both due, and the timeout
    wins. The next read finds the answer, and nothing ends."""
    import redis.asyncio.client

    stalls = []
    original_ping = redis.asyncio.client.PubSub.ping

    async def ping_then_stall(self: Any, *args: Any) -> Any:
        answer = await original_ping(self, *args)
        if not stalls:  # once: in the loop's next turn, as a blocking handler would
            stalls.append(asyncio.get_running_loop().call_soon(time.sleep, 1.2))
        return answer

    monkeypatch.setattr(redis.asyncio.client.PubSub, "ping", ping_then_stall)

    async def scenario(url: str) -> list[str]:
        async with subscribed(url, timeout=0.5, keepalive=0.5) as (broadcast, room):
            while not stalls:
                await asyncio.sleep(0.1)
            await asyncio.sleep(2.0)  # the stall, and the reads after it
            await broadcast.publish("room", "after the stall")
            return [await asyncio.wait_for(anext(room), WAIT)]

    with caplog.at_level(logging.WARNING, logger="micropie"), run_redis() as server:
        assert asyncio.run(scenario(server.url)) == ["after the stall"]
    assert "did not answer a PING" not in caplog.text
