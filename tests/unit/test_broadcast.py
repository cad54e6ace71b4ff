"""micropie.broadcast: the in-memory and the Redis backend, the same tests for both.

The Redis backend runs against a real ``redis-server``, started here on
127.0.0.1 on an ephemeral port.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from micropie import App, ConnectionClosed, RedisUnavailable, WebSocket
from micropie.broadcast import (
    Broadcast,
    BroadcastLost,
    RedisBroadcastBackend,
    SubscriberTooSlow,
)
from micropie.testing import TestClient
from tests.helpers.bench import fanout_rates
from tests.helpers.broadcast import TIMEOUT, Kind, channel_name, take
from tests.helpers.redis import RedisServer, run_redis
from tests.helpers.servers import free_port


def test_messages_keep_their_order_per_channel(kind: Kind) -> None:
    async def scenario(broadcast: Broadcast) -> tuple[list[str], list[str]]:
        c, d = channel_name(), channel_name()
        async with broadcast.subscribe(c) as on_c, broadcast.subscribe(d) as on_d:
            for i in range(300):
                await broadcast.publish(c, f"c{i}")
                await broadcast.publish(d, f"d{i}")
            return await take(on_c, 300), await take(on_d, 300)

    on_c, on_d = kind.run(scenario)
    assert on_c == [f"c{i}" for i in range(300)]
    assert on_d == [f"d{i}" for i in range(300)]


def test_a_subscription_only_sees_what_is_published_after_it_starts(kind: Kind) -> None:
    async def scenario(broadcast: Broadcast) -> list[str]:
        channel = channel_name()
        await broadcast.publish(channel, "before")
        async with broadcast.subscribe(channel) as messages:
            await broadcast.publish(channel, "after")
            return await take(messages, 1)

    assert kind.run(scenario) == ["after"]


def test_every_subscriber_gets_every_message(kind: Kind) -> None:
    async def scenario(broadcast: Broadcast) -> list[list[str]]:
        channel = channel_name()
        async with contextlib.AsyncExitStack() as stack:
            subs = [
                await stack.enter_async_context(broadcast.subscribe(channel)) for _ in range(50)
            ]
            assert broadcast.subscribers(channel) == 50
            readers = [asyncio.create_task(take(sub, 100)) for sub in subs]
            for i in range(100):
                await broadcast.publish(channel, str(i))
            return list(await asyncio.gather(*readers))

    results = kind.run(scenario)
    assert len(results) == 50
    assert all(result == [str(i) for i in range(100)] for result in results)


def test_a_subscriber_that_leaves_is_cleaned_up(kind: Kind) -> None:
    async def scenario(broadcast: Broadcast) -> tuple[int, list[str], list[str]]:
        channel = channel_name()
        async with broadcast.subscribe(channel) as stays:
            async with broadcast.subscribe(channel) as leaves:
                await broadcast.publish(channel, "one")
                assert await take(leaves, 1) == ["one"]
            await broadcast.publish(channel, "two")
            count = broadcast.subscribers(channel)
            left_with = [message async for message in leaves]  # ended: yields nothing more
            return count, left_with, await take(stays, 2)

    assert kind.run(scenario) == (1, [], ["one", "two"])


def test_a_cancelled_subscriber_is_cleaned_up(kind: Kind) -> None:
    async def scenario(broadcast: Broadcast) -> tuple[int, int]:
        channel = channel_name()
        joined = asyncio.Event()

        async def listener() -> None:
            async with broadcast.subscribe(channel) as messages:
                joined.set()
                async for _ in messages:
                    pass

        task = asyncio.create_task(listener())
        await asyncio.wait_for(joined.wait(), TIMEOUT)
        during = broadcast.subscribers(channel)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return during, broadcast.subscribers(channel)

    assert kind.run(scenario) == (1, 0)


def test_redis_unsubscribes_when_the_last_subscriber_leaves(redis_server: RedisServer) -> None:
    import redis.asyncio

    async def scenario() -> list[int]:
        channel = channel_name()
        broadcast = Broadcast.from_url(redis_server.url)
        observer = redis.asyncio.from_url(redis_server.url)
        wire = f"micropie:broadcast:{channel}"  # the Redis channel: always prefixed
        counts = []
        try:
            async with broadcast.subscribe(channel):
                async with broadcast.subscribe(channel):
                    counts.append(dict(await observer.pubsub_numsub(wire))[wire.encode()])
                counts.append(dict(await observer.pubsub_numsub(wire))[wire.encode()])
            counts.append(dict(await observer.pubsub_numsub(wire))[wire.encode()])
        finally:
            await broadcast.disconnect()
            await observer.aclose()
        return counts

    # One Redis subscription per process and channel, however many subscribers.
    assert asyncio.run(scenario()) == [1, 1, 0]


def test_a_slow_subscriber_is_dropped_without_blocking_the_others(kind: Kind) -> None:
    async def scenario(broadcast: Broadcast) -> tuple[list[str], list[str], str, int]:
        channel = channel_name()
        async with broadcast.subscribe(channel) as slow, broadcast.subscribe(channel) as fast:
            reader = asyncio.create_task(take(fast, 50))
            for i in range(50):  # never waits for the slow one, which reads nothing
                await broadcast.publish(channel, str(i))
            heard_by_fast = await reader
            remaining = broadcast.subscribers(channel)
            heard_by_slow = []
            with pytest.raises(SubscriberTooSlow) as caught:
                async for message in slow:
                    heard_by_slow.append(message)
            return heard_by_fast, heard_by_slow, str(caught.value), remaining

    fast, slow, error, remaining = kind.run(scenario, max_queue=10)
    assert fast == [str(i) for i in range(50)]
    assert slow == [str(i) for i in range(10)]  # what was queued, then the error: no gap
    assert "fell 10 messages behind" in error
    assert remaining == 1


def test_a_subscriber_is_bounded_in_bytes_too(kind: Kind) -> None:
    """One client stops reading while another sends big messages: its
    subscription holds at most max_queue_bytes, then is dropped; the others
    get everything."""

    async def scenario(broadcast: Broadcast) -> tuple[int, int, int, str]:
        channel, big = channel_name(), "x" * 2**20  # 1 MiB
        async with broadcast.subscribe(channel) as slow, broadcast.subscribe(channel) as fast:
            for number in range(12):
                await broadcast.publish(channel, f"{number}{big}")
                await take(fast, 1)
            held = slow.pending
            heard = 0
            with pytest.raises(SubscriberTooSlow) as caught:
                async for _ in slow:
                    heard += 1
            return held, heard, broadcast.subscribers(channel), str(caught.value)

    held, heard, remaining, error = kind.run(scenario, max_queue_bytes=4 * 2**20)
    assert held == heard == 3  # three 1 MiB messages fit in 4 MiB, the fourth does not
    assert remaining == 1
    assert "fell 4,194,304 bytes behind" in error


def test_a_message_larger_than_a_queue_is_refused(kind: Kind) -> None:
    async def scenario(broadcast: Broadcast) -> None:
        with pytest.raises(ValueError, match="larger than any subscription may hold"):
            await broadcast.publish(channel_name(), "x" * 2**20)

    kind.run(scenario, max_queue_bytes=2**20)


def test_disconnect_ends_every_subscription(kind: Kind) -> None:
    async def scenario(broadcast: Broadcast) -> list[str]:
        async with broadcast.subscribe(channel_name()) as messages:
            reader = asyncio.create_task(take(messages, 1000))
            await asyncio.sleep(0.05)
            await broadcast.disconnect()
            # It was waiting for more: it ends, with what it had, instead of hanging.
            return await asyncio.wait_for(reader, TIMEOUT)

    assert kind.run(scenario) == []


def test_publish_takes_text_only(kind: Kind) -> None:
    async def scenario(broadcast: Broadcast) -> None:
        await broadcast.publish("c", b"bytes")  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="must be a str"):
        kind.run(scenario)


def test_redis_carries_messages_between_two_broadcasts(redis_server: RedisServer) -> None:
    """Two Broadcast objects with their own connections, as two worker processes have."""

    async def scenario() -> list[str]:
        channel = channel_name()
        here, there = Broadcast.from_url(redis_server.url), Broadcast.from_url(redis_server.url)
        try:
            async with there.subscribe(channel) as messages:
                for i in range(20):
                    await here.publish(channel, f"m{i}")
                return await take(messages, 20)
        finally:
            await here.disconnect()
            await there.disconnect()

    assert asyncio.run(scenario()) == [f"m{i}" for i in range(20)]


def test_in_memory_broadcasts_do_not_share() -> None:
    async def scenario() -> tuple[list[str], int]:
        here, there = Broadcast(), Broadcast()
        async with there.subscribe("c") as messages:
            await here.publish("c", "hello")
            # A marker, published after it where "hello" would have gone: the first
            # message to arrive is the marker, so "hello" never came.
            await there.publish("c", "marker")
            return await take(messages, 1), messages.pending

    assert asyncio.run(scenario()) == (["marker"], 0)


def test_connect_names_the_url_when_redis_is_unreachable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    broadcast = Broadcast.from_url(url)
    with pytest.raises(RedisUnavailable, match=f"cannot reach Redis at {url}"):
        asyncio.run(broadcast.connect())


def test_losing_redis_ends_every_subscription() -> None:
    with run_redis() as server:  # a server of its own, to stop

        async def scenario() -> str:
            broadcast = Broadcast.from_url(server.url)
            try:
                async with broadcast.subscribe("c") as first, broadcast.subscribe("d") as second:
                    server.process.terminate()
                    await asyncio.to_thread(server.process.wait, TIMEOUT)
                    with pytest.raises(BroadcastLost):
                        await asyncio.wait_for(anext(second), TIMEOUT)
                    with pytest.raises(BroadcastLost) as lost:
                        await asyncio.wait_for(anext(first), TIMEOUT)
                    return str(lost.value)
            finally:
                await broadcast.disconnect()

        message = asyncio.run(scenario())
    assert f"lost the Redis broadcast connection to {server.url}" in message


def test_redis_backend_needs_connect_before_use(redis_server: RedisServer) -> None:
    backend = RedisBroadcastBackend(redis_server.url)
    with pytest.raises(RuntimeError, match="connect"):
        asyncio.run(backend.publish("c", "m"))


# In a ws_ handler: its own socket and a subscription, read at once by two tasks.


class RoomApp(App):
    def __init__(self, broadcast: Broadcast) -> None:
        super().__init__()
        self.broadcast = broadcast
        self.startup_handlers.append(broadcast.connect)
        self.shutdown_handlers.append(broadcast.disconnect)

    async def ws_room(self, ws: WebSocket, name: str) -> None:
        await ws.accept()
        async with self.broadcast.subscribe("room") as messages:
            relay = asyncio.create_task(self._relay(messages, ws))
            try:
                await ws.send_text("joined")
                while True:
                    text = await ws.receive_text()
                    await self.broadcast.publish("room", f"{name}: {text}")
            finally:
                relay.cancel()

    @staticmethod
    async def _relay(messages: AsyncIterator[str], ws: WebSocket) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in messages:
                await ws.send_text(message)


def test_a_ws_handler_reads_its_socket_and_a_subscription_at_once(kind: Kind) -> None:
    broadcast = kind.make()
    with TestClient(RoomApp(broadcast)) as ada_client:
        bob_client = ada_client.another_client()
        with (
            ada_client.websocket_connect("/room/ada") as ada,
            bob_client.websocket_connect("/room/bob") as bob,
        ):
            assert ada.receive_text() == bob.receive_text() == "joined"
            assert broadcast.subscribers("room") == 2
            ada.send_text("hello")
            bob.send_text("hi ada")
            ada.send_text("bye")
            expected = ["ada: hello", "bob: hi ada", "ada: bye"]
            heard_by_ada = [ada.receive_text() for _ in range(3)]
            heard_by_bob = [bob.receive_text() for _ in range(3)]
            assert heard_by_ada == heard_by_bob
            assert sorted(heard_by_ada) == sorted(expected)
            assert heard_by_ada.index("ada: hello") < heard_by_ada.index("ada: bye")
            bob.close()
            assert broadcast.subscribers("room") == 1
            ada.send_text("alone")
            assert ada.receive_text() == "ada: alone"
        assert broadcast.subscribers("room") == 0


def test_the_fanout_benchmark_runs(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import fanout

    args = ["--redis-url", redis_server.url, "--messages", "20", "--rounds", "1"]
    assert fanout.main(args) == 0
    output = capsys.readouterr().out
    assert output.startswith("100 subscribers, 20 messages of 64 bytes")
    fanout_rates(output)


def test_channels_live_under_a_prefix_of_their_own(redis_server: RedisServer) -> None:
    """A room named by a client cannot be one of Redis's own channels: with
    keyspace notifications on, ``__keyevent@0__:set`` would carry every key
    set (session IDs among them)."""
    import redis.asyncio

    async def scenario() -> tuple[int, list[str]]:
        other = redis.asyncio.from_url(redis_server.url)
        await other.config_set("notify-keyspace-events", "KEA")
        broadcast = Broadcast.from_url(redis_server.url)
        try:
            async with broadcast.subscribe("__keyevent@0__:set") as spy:
                await other.set("session:secret-id", "{}")
                await broadcast.publish("__keyevent@0__:set", "only what is published here")
                heard = await take(spy, 1)
            return spy.pending, heard
        finally:
            await other.config_set("notify-keyspace-events", "")
            await other.aclose()
            await broadcast.disconnect()

    assert asyncio.run(scenario()) == (0, ["only what is published here"])


@pytest.mark.parametrize(
    ("channel", "error"),
    [
        ("", ValueError),
        ("x" * 201, ValueError),
        ("room\nother", ValueError),
        ("room\x00", ValueError),
        (None, TypeError),
        (b"room", TypeError),
    ],
)
def test_a_channel_name_is_checked(kind: Kind, channel: object, error: type[Exception]) -> None:
    async def scenario(broadcast: Broadcast) -> None:
        with pytest.raises(error, match="channel name"):
            await broadcast.publish(channel, "hello")  # type: ignore[arg-type]
        with pytest.raises(error, match="channel name"):
            async with broadcast.subscribe(channel):  # type: ignore[arg-type]
                pass

    kind.run(scenario)


def test_rooms_joined_and_left_leave_nothing_behind(redis_server: RedisServer) -> None:
    """Client-named rooms come and go by the thousand: the backend keeps
    nothing of a room once its last subscriber has left."""

    async def scenario() -> tuple[int, int]:
        broadcast = Broadcast.from_url(redis_server.url)
        await broadcast.connect()
        try:
            for number in range(300):
                async with broadcast.subscribe(f"room-{number}") as room:
                    await broadcast.publish(f"room-{number}", "hello")
                    await take(room, 1)
            backend = broadcast.backend
            assert isinstance(backend, RedisBroadcastBackend)
            kept = [value for value in vars(backend).values() if isinstance(value, dict)]
            return broadcast.subscribers("room-0"), sum(len(value) for value in kept)
        finally:
            await broadcast.disconnect()

    assert asyncio.run(scenario()) == (0, 0)
