"""Fan-out: messages per second delivered to 100 subscribers, side by side.

``python -m benchmarks.fanout [--redis-url URL] [--peer-venv]``: 100 subscriber tasks
each read one channel while a publisher awaits each ``publish``, until all have read
every message, in order. Over Redis, publisher and subscribers have a broadcast each, as
two workers would. The rows: MicroPie in memory, over Redis, over Redis with a
``History``, and encode/broadcaster over Redis (PyPI ``broadcaster``); then the publish
rate alone, without and with the history. Each round runs every row in turn; each row's
figure is its best round.

broadcaster 0.3.1's Redis backend delivers nothing with redis-py 8 (its listener can
start before the subscription is recorded, and then waits for good), so its row needs
redis-py 7: ``--peer-venv`` runs the whole benchmark in ``benchmarks/.venvs/fanout``,
made once with redis-py 7.4.1 and broadcaster 0.3.1, so that every row uses the same
redis-py. Without a URL (or ``MICROPIE_REDIS_URL``), the tests' ``run_redis`` starts a
redis-server.
"""

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from micropie.broadcast import Broadcast, History
from tests.helpers.redis import run_redis

SUBSCRIBERS = 100
REPO = Path(__file__).resolve().parent.parent
PEER_VENV = REPO / "benchmarks" / ".venvs" / "fanout"
PEER_PINS = ["redis==7.4.1", "broadcaster==0.3.1", "pytest"]
HISTORY = History(max_length=1000)


class Peer:
    """encode/broadcaster, behind the calls the benchmark makes of a MicroPie Broadcast."""

    def __init__(self, url: str) -> None:
        from broadcaster import Broadcast as PeerBroadcast

        self._broadcast = PeerBroadcast(url)

    async def connect(self) -> None:
        await self._broadcast.connect()

    async def disconnect(self) -> None:
        await self._broadcast.disconnect()

    async def publish(self, channel: str, message: str) -> None:
        await self._broadcast.publish(channel, message)

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator["PeerMessages"]:
        async with self._broadcast.subscribe(channel) as subscriber:
            yield PeerMessages(subscriber)


class PeerMessages:
    """A broadcaster subscriber's messages, as text."""

    def __init__(self, subscriber: Any) -> None:
        self._subscriber = subscriber

    def __aiter__(self) -> "PeerMessages":
        return self

    async def __anext__(self) -> str:
        event = await self._subscriber.get()
        return str(event.message)


async def fan_out(publisher: Any, receiver: Any, messages: int, size: int) -> float:
    """Publish *messages* to SUBSCRIBERS subscribers; return the deliveries per second."""

    async def read(subscription: Any) -> None:
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
        await asyncio.wait_for(asyncio.gather(*readers), 120)
        return messages * SUBSCRIBERS / (time.perf_counter() - started)


async def publish_rate(publisher: Any, messages: int, size: int) -> float:
    """Awaited publishes per second on a channel nobody reads."""
    payload = "x" * size
    started = time.perf_counter()
    for _ in range(messages):
        await publisher.publish("nobody", payload)
    return messages / (time.perf_counter() - started)


def peer_problem() -> str | None:
    """Why broadcaster's row cannot run here, or None if it can."""
    try:
        redis_version = importlib.metadata.version("redis")
        importlib.metadata.version("broadcaster")
    except importlib.metadata.PackageNotFoundError as missing:
        return f"{missing.name} is not installed; --peer-venv installs it"
    if int(redis_version.split(".")[0]) >= 8:
        return f"broadcaster delivers nothing with redis-py {redis_version}; use --peer-venv"
    return None


async def measure(redis_url: str, messages: int, size: int, rounds: int) -> dict[str, float]:
    """Each row's best rate over *rounds* rounds, the rows taking turns in each."""
    # Queues as long as the run: this measures throughput, not the overflow rule.
    memory = Broadcast(max_queue=messages)
    plain = [Broadcast.from_url(redis_url, max_queue=messages) for _ in range(2)]
    kept = [Broadcast.from_url(redis_url, max_queue=messages, history=HISTORY) for _ in range(2)]
    peer = [Peer(redis_url), Peer(redis_url)] if peer_problem() is None else []
    rows: dict[str, Callable[[], Awaitable[float]]] = {
        "micropie-memory": lambda: fan_out(memory, memory, messages, size),
        "micropie-redis": lambda: fan_out(*plain, messages, size),
        "micropie-redis-history": lambda: fan_out(*kept, messages, size),
    }
    if peer:
        rows["broadcaster-redis"] = lambda: fan_out(*peer, messages, size)
    rows["publish-redis"] = lambda: publish_rate(plain[0], messages, size)
    rows["publish-redis-history"] = lambda: publish_rate(kept[0], messages, size)
    async with contextlib.AsyncExitStack() as stack:
        for backend in [memory, *plain, *kept, *peer]:
            await backend.connect()
            stack.push_async_callback(backend.disconnect)
        best = dict.fromkeys(rows, 0.0)
        for _ in range(rounds):
            for name, run in rows.items():
                best[name] = max(best[name], await run())
        return best


def report(results: dict[str, float], options: argparse.Namespace, redis_version: str) -> None:
    print(
        f"{SUBSCRIBERS} subscribers, {options.messages} messages of {options.size} bytes, "
        f"best of {options.rounds}; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, redis-py {redis_version}"
    )
    redis = results["micropie-redis"]
    print(f"{'fan-out':<24} {'deliveries/s':>14} {'publishes/s':>12} {'vs redis':>9}")
    for name, rate in results.items():
        if not name.startswith("publish-"):
            print(f"{name:<24} {rate:>14,.0f} {rate / SUBSCRIBERS:>12,.0f} {rate / redis:>8.2f}x")
    problem = peer_problem()
    if problem is not None:
        print(f"{'broadcaster-redis':<24} not run: {problem}")
    plain = results["publish-redis"]
    print(f"{'publish alone':<24} {'publishes/s':>14} {'vs redis':>22}")
    for name in ("publish-redis", "publish-redis-history"):
        rate = results[name]
        print(f"{name:<24} {rate:>14,.0f} {rate / plain:>21.2f}x")


def in_peer_venv(argv: list[str]) -> int:
    """Run this benchmark again in PEER_VENV, made first if need be."""
    python = PEER_VENV / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if not python.exists():
        print(f"creating {PEER_VENV}, with {', '.join(PEER_PINS)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([*pip, *PEER_PINS, "-e", str(REPO)], check=True)
    command = [str(python), "-m", "benchmarks.fanout", *argv]
    return subprocess.run(command, cwd=REPO, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--redis-url", default=os.environ.get("MICROPIE_REDIS_URL"))
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64, help="bytes per message")
    parser.add_argument("--rounds", type=int, default=3, help="the best of these counts")
    parser.add_argument("--peer-venv", action="store_true", help="run in " + str(PEER_VENV))
    arguments = sys.argv[1:] if argv is None else argv
    options = parser.parse_args(arguments)
    if min(options.messages, options.size, options.rounds) < 1:
        parser.error("--messages, --size and --rounds take whole numbers above 0")
    if options.peer_venv:
        return in_peer_venv([a for a in arguments if a != "--peer-venv"])
    try:
        with contextlib.ExitStack() as stack:
            url = options.redis_url or stack.enter_context(run_redis()).url
            results = asyncio.run(measure(url, options.messages, options.size, options.rounds))
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:  # no redis-server
        print(f"fanout: {exc.msg}", file=sys.stderr)
        return 1
    report(results, options, importlib.metadata.version("redis"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
