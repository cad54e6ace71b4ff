"""Fan-out: messages per second delivered to 100 subscribers, Redis against in-memory.

``python -m benchmarks.fanout [--redis-url URL]``: 100 subscriber tasks each read one
channel while a publisher awaits each ``publish``, until all have read every message, in
order. Over Redis, publisher and subscribers have a Broadcast each, as two workers would.
Without a URL (or ``MICROPIE_REDIS_URL``), the tests' ``run_redis`` starts a redis-server.
"""

import argparse
import asyncio
import contextlib
import os
import platform
import sys
import time

import pytest

from micropie.broadcast import Broadcast, Subscription
from tests.helpers.redis import run_redis

SUBSCRIBERS = 100


async def fan_out(publisher: Broadcast, receiver: Broadcast, messages: int, size: int) -> float:
    """Publish *messages* to SUBSCRIBERS subscribers; return the deliveries per second."""

    async def read(subscription: Subscription) -> None:
        for expected in range(messages):
            message = await anext(subscription)
            if int(message.split(":", 1)[0]) != expected:
                raise RuntimeError(f"message {expected} was not next: {message[:20]!r}")

    payloads = [f"{i}:".ljust(size, "x") for i in range(messages)]
    async with contextlib.AsyncExitStack() as stack:
        subscriptions = [
            await stack.enter_async_context(receiver.subscribe("fanout"))
            for _ in range(SUBSCRIBERS)
        ]
        readers = [asyncio.create_task(read(s)) for s in subscriptions]
        started = time.perf_counter()
        for payload in payloads:
            await publisher.publish("fanout", payload)
        await asyncio.gather(*readers)
        return messages * SUBSCRIBERS / (time.perf_counter() - started)


async def measure(redis_url: str, messages: int, size: int, rounds: int) -> dict[str, float]:
    """The best rate of *rounds* runs, in memory and over Redis."""
    # Queues as long as the run: this measures throughput, not the overflow rule.
    memory = Broadcast(max_queue=messages)
    publisher, receiver = (Broadcast.from_url(redis_url, max_queue=messages) for _ in range(2))
    async with contextlib.AsyncExitStack() as stack:
        for broadcast in (publisher, receiver):
            await broadcast.connect()
            stack.push_async_callback(broadcast.disconnect)
        results: dict[str, float] = {}
        for name, pair in (("in-memory", (memory, memory)), ("redis", (publisher, receiver))):
            results[name] = max([await fan_out(*pair, messages, size) for _ in range(rounds)])
        return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--redis-url", default=os.environ.get("MICROPIE_REDIS_URL"))
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64, help="bytes per message")
    parser.add_argument("--rounds", type=int, default=3, help="the best of these counts")
    options = parser.parse_args(argv)
    if min(options.messages, options.size, options.rounds) < 1:
        parser.error("--messages, --size and --rounds take whole numbers above 0")
    try:
        with contextlib.ExitStack() as stack:
            url = options.redis_url or stack.enter_context(run_redis()).url
            results = asyncio.run(measure(url, options.messages, options.size, options.rounds))
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:  # no redis-server
        print(f"fanout: {exc.msg}", file=sys.stderr)
        return 1
    print(
        f"{SUBSCRIBERS} subscribers, {options.messages} messages of {options.size} bytes, "
        f"best of {options.rounds}; Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(f"{'backend':<10} {'deliveries/s':>14} {'publishes/s':>12}")
    for name, rate in results.items():
        print(f"{name:<10} {rate:>14,.0f} {rate / SUBSCRIBERS:>12,.0f}")
    print(f"in-memory is {results['in-memory'] / results['redis']:.1f}x Redis")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
