"""A broadcast's history, and resuming from the last message seen: the same
tests in memory and over a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys

import pytest

from micropie.broadcast import (
    Broadcast,
    History,
    InMemoryBroadcastBackend,
    SubscriberTooSlow,
    is_message_id,
)
from micropie.broadcast_history import message_key
from tests.helpers.broadcast import Kind, channel_name, take
from tests.helpers.redis import RedisServer, run_redis

SHORT = History(max_length=5)


def test_publish_gives_growing_ids_and_the_subscription_follows_them(kind: Kind) -> None:
    async def scenario(broadcast: Broadcast) -> None:
        channel = channel_name()
        async with broadcast.subscribe(channel) as subscription:
            origin = subscription.last_id  # nothing published yet: the channel's origin
            assert is_message_id(origin) and origin != "0-0"
            ids = [await broadcast.publish(channel, f"m{n}") for n in range(3)]
            assert all(is_message_id(i) for i in ids)
            assert sorted([origin, *ids], key=message_key) == [origin, *ids]  # type: ignore[arg-type]
            assert len(set(ids)) == 3
            for message_id in ids:
                await take(subscription, 1)
                assert subscription.last_id == message_id
        async with broadcast.subscribe(channel) as later:
            assert later.last_id == ids[-1] and not later.gap  # starts at the newest

    kind.run(scenario, history=SHORT)


def test_a_subscriber_resumes_with_what_it_missed_once_in_order_then_live(kind: Kind) -> None:
    async def scenario(broadcast: Broadcast) -> tuple[list[str], bool, list[str]]:
        channel = channel_name()
        async with broadcast.subscribe(channel) as subscription:
            await broadcast.publish(channel, "seen")
            await take(subscription, 1)
            last_seen = subscription.last_id
        for n in range(4):  # published while the subscriber was away
            await broadcast.publish(channel, f"missed {n}")
        async with broadcast.subscribe(channel, since=last_seen) as resumed:
            missed = await take(resumed, 4)
            await broadcast.publish(channel, "live")
            live = await take(resumed, 1)
            assert resumed.pending == 0
            return missed, resumed.gap, live

    missed, gap, live = kind.run(scenario, history=SHORT)
    assert missed == [f"missed {n}" for n in range(4)]
    assert gap is False
    assert live == ["live"]


def test_messages_published_during_the_catch_up_come_once_in_order(kind: Kind) -> None:
    """A publisher goes on while subscribers resume: each one's messages are
    the published ones after its *since*, no gap and no duplicate."""

    async def scenario(broadcast: Broadcast) -> None:
        channel = channel_name()
        published: list[str] = []

        async def publisher() -> None:
            for n in range(300):
                published.append(f"m{n}")
                await broadcast.publish(channel, f"m{n}")

        async with broadcast.subscribe(channel) as first:
            since = first.last_id
        running = asyncio.create_task(publisher())
        resumed = []
        try:
            while not running.done():
                async with broadcast.subscribe(channel, since=since) as subscription:
                    got = await take(subscription, max(len(published), 1))
                    assert got == [f"m{n}" for n in range(len(got))]
                    resumed.append(len(got))
            await running
        finally:
            running.cancel()
        async with broadcast.subscribe(channel, since=since) as subscription:
            assert await take(subscription, 300) == published
            assert subscription.pending == 0 and not subscription.gap
        assert len(resumed) > 1  # several resumes ran while publishing

    kind.run(scenario, history=History(max_length=1000))


def test_a_resume_from_beyond_the_history_says_there_is_a_gap(kind: Kind) -> None:
    async def scenario(broadcast: Broadcast) -> None:
        channel = channel_name()
        ids = [await broadcast.publish(channel, f"m{n}") for n in range(12)]
        # The history holds 5 messages, and the one before them: a subscriber
        # that missed exactly 5 misses nothing.
        async with broadcast.subscribe(channel, since=ids[6]) as exact:
            assert await take(exact, 5) == [f"m{n}" for n in range(7, 12)]
            assert not exact.gap
        async with broadcast.subscribe(channel, since=ids[5]) as too_late:
            assert too_late.gap  # m6 is still there, but what came between is gone
            assert await take(too_late, 6) == [f"m{n}" for n in range(6, 12)]
            assert too_late.last_id == ids[-1]

    kind.run(scenario, history=SHORT)


def test_a_resume_from_the_start_is_complete_until_the_history_is_trimmed(kind: Kind) -> None:
    """A subscriber that joined an empty channel resumes from its origin:
    with as many messages as the history keeps said since, it misses none;
    once more were said and the first are gone, it is told so."""

    async def scenario(broadcast: Broadcast) -> None:
        channel = channel_name()
        async with broadcast.subscribe(channel) as first:
            start = first.last_id  # the channel's origin: nothing was published yet
        assert start is not None
        for n in range(5):
            await broadcast.publish(channel, f"m{n}")
        async with broadcast.subscribe(channel, since=start) as whole:
            assert await take(whole, 5) == [f"m{n}" for n in range(5)] and not whole.gap
        for n in range(5, 8):
            await broadcast.publish(channel, f"m{n}")  # m0 and more leave the history
        async with broadcast.subscribe(channel, since=start) as trimmed:
            assert trimmed.gap
            assert (await take(trimmed, 6))[-1] == "m7"

    kind.run(scenario, history=SHORT)


def test_an_origin_from_another_history_is_a_gap(kind: Kind) -> None:
    """A page joined an empty channel, then the history was lost (the
    process restarted, Redis lost its data) while messages were said: its
    origin names nothing the new history holds, and it is told of a gap."""

    async def scenario(broadcast: Broadcast) -> tuple[bool, list[str]]:
        channel = channel_name()
        async with broadcast.subscribe(channel) as first:
            origin = first.last_id
        async with contextlib.AsyncExitStack() as stack:
            if kind.name == "redis":  # the history lost: the stream deleted
                import redis.asyncio

                other = redis.asyncio.from_url(kind.url)
                stack.push_async_callback(other.aclose)
                await other.delete(SHORT.key_prefix + channel)
                again = broadcast
            else:  # a new process: a new in-memory history
                again = kind.make(history=SHORT)
                await again.connect()
                stack.push_async_callback(again.disconnect)
            await again.publish(channel, "after the loss")
            async with again.subscribe(channel, since=origin) as resumed:
                return resumed.gap, await take(resumed, 1)

    assert kind.run(scenario, history=SHORT) == (True, ["after the loss"])


def test_an_unknown_id_is_a_gap_not_an_error(kind: Kind) -> None:
    """An id from a history that is gone (Redis lost its data, the process
    restarted): the subscriber is told it missed messages, and goes on live."""

    async def scenario(broadcast: Broadcast) -> None:
        channel = channel_name()
        await broadcast.publish(channel, "kept")
        async with broadcast.subscribe(channel, since="1-0") as old:
            assert old.gap
            assert await take(old, 1) == ["kept"]
            await broadcast.publish(channel, "live")
            assert await take(old, 1) == ["live"]

    kind.run(scenario, history=SHORT)


def test_the_history_keeps_messages_for_max_age(kind: Kind) -> None:
    async def scenario(broadcast: Broadcast) -> None:
        channel = channel_name()
        old = await broadcast.publish(channel, "old")
        await asyncio.sleep(0.3)
        recent = await broadcast.publish(channel, "recent")
        # "old" is past max_age, but the newest such message stays: a resume
        # from it misses nothing.
        async with broadcast.subscribe(channel, since=old) as subscription:
            assert await take(subscription, 1) == ["recent"] and not subscription.gap
        await asyncio.sleep(0.3)
        await broadcast.publish(channel, "new")  # now "recent" is the boundary, "old" is gone
        async with broadcast.subscribe(channel, since=old) as subscription:
            assert subscription.gap
            assert await take(subscription, 2) == ["recent", "new"]
        async with broadcast.subscribe(channel, since=recent) as subscription:
            assert await take(subscription, 1) == ["new"] and not subscription.gap

    kind.run(scenario, history=History(max_length=None, max_age=0.2))


def test_a_replay_longer_than_the_queue_ends_with_too_slow_and_goes_on_from_there(
    kind: Kind,
) -> None:
    async def scenario(broadcast: Broadcast) -> None:
        channel = channel_name()
        async with broadcast.subscribe(channel) as first:
            since = first.last_id
        for n in range(10):
            await broadcast.publish(channel, f"m{n}")
        received: list[str] = []
        async with broadcast.subscribe(channel, since=since) as subscription:
            with pytest.raises(SubscriberTooSlow):
                async for message in subscription:
                    received.append(message)
            since = subscription.last_id
        assert received == [f"m{n}" for n in range(4)]
        async with broadcast.subscribe(channel, since=since) as again:
            assert await take(again, 4) == [f"m{n}" for n in range(4, 8)]

    kind.run(scenario, max_queue=4, history=History(max_length=100))


def test_without_a_history_there_are_no_ids_and_no_resuming(kind: Kind) -> None:
    async def scenario(broadcast: Broadcast) -> None:
        channel = channel_name()
        assert broadcast.history is None
        async with broadcast.subscribe(channel) as subscription:
            assert await broadcast.publish(channel, "plain") is None
            assert await take(subscription, 1) == ["plain"]
            assert subscription.last_id is None
        with pytest.raises(ValueError, match="resuming needs a history"):
            async with broadcast.subscribe(channel, since="1-0"):
                pass

    kind.run(scenario)


@pytest.mark.parametrize(
    "since",
    [
        "",
        "abc",
        "1",
        "1-",
        "-1",
        "1-0-0",
        " 1-0",
        "1-0\n",
        "\u0661-\u0660",  # digits, but not ASCII ones
        "18446744073709551615-0",
        "1-" + "9" * 21,
    ],
)
def test_a_since_that_is_no_message_id_is_refused_before_anything_starts(
    kind: Kind, since: str
) -> None:
    async def scenario(broadcast: Broadcast) -> None:
        with pytest.raises(ValueError, match="a message id looks like '1733140800000-0'"):
            async with broadcast.subscribe(channel_name(), since=since):
                pass
        assert not is_message_id(since)

    kind.run(scenario, history=SHORT)


def test_is_message_id() -> None:
    assert is_message_id("0-0") and is_message_id("1733140800000-12")
    assert not is_message_id(None) and not is_message_id(17)


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"max_length": None}, "bound the history"),
        ({"max_length": 0}, "max_length must be a whole number from 1 to 1,000,000,000, got 0"),
        ({"max_length": 2.5}, "max_length must be a whole number"),
        ({"max_length": True}, "max_length must be a whole number"),
        ({"max_length": 2**62}, "max_length must be a whole number from 1 to 1,000,000,000"),
        ({"max_age": 0}, "max_age must be a number of seconds above 0 and at most"),
        ({"max_age": -1.0}, "max_age must be"),
        ({"max_age": 10**10}, r"at most 315,360,000 \(ten years\), got 10000000000"),
        ({"max_age": "60"}, "max_age must be"),
    ],
)
def test_a_history_must_be_bounded(arguments: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        History(**arguments)  # type: ignore[arg-type]


def test_a_history_goes_to_the_backend_that_keeps_it() -> None:
    with pytest.raises(ValueError, match=r"InMemoryBroadcastBackend\(..., history=History"):
        Broadcast(InMemoryBroadcastBackend(), history=SHORT)
    assert Broadcast(history=SHORT).history is SHORT


def test_another_process_resumes_from_an_id_this_one_gave(redis_server: RedisServer) -> None:
    """Two broadcasts on one Redis stand for two workers: a client that
    leaves one resumes on the other."""

    async def scenario() -> tuple[list[str], bool]:
        first = Broadcast.from_url(redis_server.url, history=SHORT)
        second = Broadcast.from_url(redis_server.url, history=SHORT)
        await first.connect()
        await second.connect()
        try:
            channel = channel_name()
            async with first.subscribe(channel) as subscription:
                await second.publish(channel, "one")
                await take(subscription, 1)
                since = subscription.last_id
            await first.publish(channel, "two")
            await second.publish(channel, "three")
            async with second.subscribe(channel, since=since) as resumed:
                return await take(resumed, 2), resumed.gap
        finally:
            await first.disconnect()
            await second.disconnect()

    assert asyncio.run(scenario()) == (["two", "three"], False)


def test_redis_history_and_plain_broadcasts_do_not_cross(redis_server: RedisServer) -> None:
    """Every process sharing channels must use the same history; one that
    does not never receives the others' messages in the wrong form."""

    async def scenario() -> tuple[int, int]:
        kept = Broadcast.from_url(redis_server.url, history=SHORT)
        plain = Broadcast.from_url(redis_server.url)
        await kept.connect()
        await plain.connect()
        try:
            channel = channel_name()
            async with kept.subscribe(channel) as a, plain.subscribe(channel) as b:
                await plain.publish(channel, "plain")
                await kept.publish(channel, "kept")
                assert await take(a, 1) == ["kept"]
                assert await take(b, 1) == ["plain"]
                await asyncio.sleep(0.1)
                return a.pending, b.pending
        finally:
            await kept.disconnect()
            await plain.disconnect()

    assert asyncio.run(scenario()) == (0, 0)


def test_an_entry_redis_holds_that_is_not_ours_is_skipped(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> list[str]:
        import redis.asyncio

        broadcast = Broadcast.from_url(redis_server.url, history=SHORT)
        await broadcast.connect()
        other = redis.asyncio.from_url(redis_server.url)
        try:
            channel = channel_name()
            async with broadcast.subscribe(channel) as subscription:
                since = subscription.last_id
            await other.xadd(SHORT.key_prefix + channel, {"someone": "else"})
            await other.xadd(SHORT.key_prefix + channel, {"m": b"\xff\xfe"})
            await broadcast.publish(channel, "ours")
            async with broadcast.subscribe(channel, since=since) as resumed:
                return await take(resumed, 1)
        finally:
            await other.aclose()
            await broadcast.disconnect()

    with caplog.at_level(logging.WARNING, logger="micropie"):
        assert asyncio.run(scenario()) == ["ours"]
    assert sum("is not ours; skipped" in r.getMessage() for r in caplog.records) == 2


def test_a_redis_that_lost_its_data_gives_a_gap() -> None:
    """Redis restarted without persistence: the stream is gone, the id a
    client kept names nothing, and its subscription says so."""

    async def scenario(url: str, restart: object) -> tuple[bool, list[str]]:
        broadcast = Broadcast.from_url(url, history=SHORT)
        await broadcast.connect()
        try:
            channel = channel_name()
            since = await broadcast.publish(channel, "before")
            restart()  # type: ignore[operator]
            for _ in range(100):
                if await broadcast.ready():
                    break
                await asyncio.sleep(0.05)
            await broadcast.publish(channel, "after")
            async with broadcast.subscribe(channel, since=since) as resumed:
                return resumed.gap, await take(resumed, 1)
        finally:
            await broadcast.disconnect()

    with run_redis() as first, contextlib.ExitStack() as stack:

        def restart() -> None:
            first.process.terminate()
            first.process.wait(10)
            stack.enter_context(run_redis(port=first.port))

        assert asyncio.run(scenario(first.url, restart)) == (True, ["after"])


PUBLISHER = """
import asyncio, sys
from micropie.broadcast import Broadcast, History

async def main():
    broadcast = Broadcast.from_url(sys.argv[1], history=History(max_length=100_000))
    await broadcast.connect()
    number = 0
    while True:  # bursts of concurrent publishes, as many handlers make
        await asyncio.gather(*(broadcast.publish("race", f"{number + k}") for k in range(20)))
        number += 20

asyncio.run(main())
"""


def test_resuming_while_another_process_publishes_gives_each_message_once_in_order(
    redis_server: RedisServer,
) -> None:
    """The replay and the live messages come over two connections: a live
    copy of a message the replay gave may come after it, and must not be
    queued twice (nor out of order)."""

    async def scenario() -> int:
        # Queues long enough that the keeper, read only between resumes, keeps up.
        broadcast = Broadcast.from_url(
            redis_server.url, history=History(max_length=100_000), max_queue=100_000
        )
        await broadcast.connect()
        resumes = 0
        try:
            async with broadcast.subscribe("race") as keeper:
                await asyncio.wait_for(anext(keeper), 10)  # the publisher is running
                for _ in range(20):
                    while keeper.pending:
                        await anext(keeper)
                    seen = int(await anext(keeper))
                    since = keeper.last_id
                    async with broadcast.subscribe("race", since=since) as resumed:
                        numbers, ids = [], []
                        while len(numbers) < 200:
                            numbers.append(await asyncio.wait_for(anext(resumed), 5))
                            ids.append(message_key(resumed.last_id))  # type: ignore[arg-type]
                        assert ids == sorted(set(ids))  # each once, in the stream's order
                        assert not resumed.gap
                    # What the keeper heard live after *since*, in the same order.
                    assert numbers == [await anext(keeper) for _ in range(200)]
                    assert seen not in map(int, numbers)
                    resumes += 1
        finally:
            await broadcast.disconnect()
        return resumes

    publisher = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, redis_server.url], stdin=subprocess.DEVNULL
    )
    try:
        assert asyncio.run(scenario()) == 20
    finally:
        publisher.kill()
        publisher.wait()


def test_a_crowd_resuming_at_once_is_not_an_outage(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """All the pages of a restarted server come back at once: more resumes
    than the client has connections wait for one; none fails, and the
    subscriptions already running go on."""

    async def scenario() -> tuple[list[list[str]], str]:
        broadcast = Broadcast.from_url(redis_server.url, history=SHORT)
        await broadcast.connect()
        try:
            channel = channel_name()
            async with broadcast.subscribe(channel) as keeper:
                since = await broadcast.publish(channel, "before")
                await broadcast.publish(channel, "missed")

                async def resume() -> list[str]:
                    async with broadcast.subscribe(channel, since=since) as page:
                        return await take(page, 1)

                pages = await asyncio.gather(*(resume() for _ in range(250)))
                await broadcast.publish(channel, "still here")
                await take(keeper, 2)
                return pages, (await take(keeper, 1))[0]
        finally:
            await broadcast.disconnect()

    with caplog.at_level(logging.WARNING, logger="micropie"):
        pages, heard = asyncio.run(scenario())
    assert pages == [["missed"]] * 250
    assert heard == "still here"
    assert "cannot be reached" not in caplog.text


def test_a_message_without_an_id_on_a_history_channel_is_dropped(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> tuple[list[str], str | None]:
        import redis.asyncio

        broadcast = Broadcast.from_url(redis_server.url, history=SHORT)
        other = redis.asyncio.from_url(redis_server.url)  # someone else on a shared Redis
        await broadcast.connect()
        try:
            channel = channel_name()
            async with broadcast.subscribe(channel) as subscription:
                await other.publish(SHORT.key_prefix + channel, "hello there")
                message_id = await broadcast.publish(channel, "ours")
                got = await take(subscription, 1)
                assert subscription.last_id == message_id
                return got, subscription.last_id
        finally:
            await other.aclose()
            await broadcast.disconnect()

    with caplog.at_level(logging.WARNING, logger="micropie"):
        got, last_id = asyncio.run(scenario())
    assert got == ["ours"] and is_message_id(last_id)
    assert "has no message id; dropped" in caplog.text


def test_a_history_key_taken_by_something_else_is_a_clear_error(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> tuple[str, str]:
        import redis.asyncio

        broadcast = Broadcast.from_url(redis_server.url, history=SHORT)
        other = redis.asyncio.from_url(redis_server.url)
        await broadcast.connect()
        try:
            channel = channel_name()
            await other.set(SHORT.key_prefix + channel, "a string, not a stream")
            with pytest.raises(RuntimeError) as publishing:
                await broadcast.publish(channel, "hello")
            with pytest.raises(RuntimeError) as subscribing:
                async with broadcast.subscribe(channel):
                    pass
            return str(publishing.value), str(subscribing.value)
        finally:
            await other.aclose()
            await broadcast.disconnect()

    for error in asyncio.run(scenario()):
        assert "is something else using that key?" in error
        assert "micropie:history:test-" in error and "WRONGTYPE" in error
