"""Fan-out: messages per second delivered to 100 subscribers, Redis against in-memory.

``python -m benchmarks.fanout [--redis-url redis://127.0.0.1:6379/0]``

For each backend of :class:`micropie.broadcast.Broadcast`, 100 subscriber
tasks each read one subscription to a channel, and a publisher publishes
*messages* messages of *size* bytes, each ``publish`` awaited. The clock runs
from the first publish until every subscriber has read every message (and
checked their order). Over Redis, the publisher and the subscribers use two
Broadcast objects with connections of their own, as two worker processes
would; all run in this one process and event loop, with Redis on the same
machine. Without ``--redis-url`` (or ``MICROPIE_REDIS_URL``), a
``redis-server`` is started on a free port for the run, and stopped after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

from micropie.broadcast import Broadcast

SUBSCRIBERS = 100


async def fan_out(
    publisher: Broadcast, receiver: Broadcast, messages: int, size: int
) -> tuple[float, float]:
    """Publish *messages* to SUBSCRIBERS subscribers; return (seconds, deliveries per second)."""
    channel = "fanout"
    payloads = [f"{i}:".ljust(size, "x") for i in range(messages)]

    async def read(subscription: object) -> None:
        expected = 0
        async for message in subscription:  # type: ignore[attr-defined]
            assert int(message.split(":", 1)[0]) == expected, "out of order"
            expected += 1
            if expected == messages:
                return

    async with contextlib.AsyncExitStack() as stack:
        subscriptions = [
            await stack.enter_async_context(receiver.subscribe(channel)) for _ in range(SUBSCRIBERS)
        ]
        readers = [asyncio.create_task(read(s)) for s in subscriptions]
        started = time.perf_counter()
        for payload in payloads:
            await publisher.publish(channel, payload)
        await asyncio.gather(*readers)
        elapsed = time.perf_counter() - started
    return elapsed, messages * SUBSCRIBERS / elapsed


async def measure(redis_url: str, messages: int, size: int, rounds: int) -> dict[str, float]:
    results: dict[str, float] = {}
    # Queues as long as the run: this measures throughput, not the overflow rule.
    memory = Broadcast(max_queue=messages)
    best = max([(await fan_out(memory, memory, messages, size))[1] for _ in range(rounds)])
    results["in-memory"] = best
    publisher = Broadcast.from_url(redis_url, max_queue=messages)
    receiver = Broadcast.from_url(redis_url, max_queue=messages)
    await publisher.connect()
    await receiver.connect()
    try:
        runs = [(await fan_out(publisher, receiver, messages, size))[1] for _ in range(rounds)]
        results["redis"] = max(runs)
    finally:
        await publisher.disconnect()
        await receiver.disconnect()
    return results


@contextlib.contextmanager
def temporary_redis() -> Iterator[str]:
    program = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        command = [program, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", directory, "--logfile", ""]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default=os.environ.get("MICROPIE_REDIS_URL"))
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64, help="bytes per message")
    parser.add_argument("--rounds", type=int, default=3, help="the best of these counts")
    options = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        url = options.redis_url or stack.enter_context(temporary_redis())
        results = asyncio.run(measure(url, options.messages, options.size, options.rounds))
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
