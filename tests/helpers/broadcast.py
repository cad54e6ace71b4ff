"""Broadcasts for the tests: the same scenario over memory and over a real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from micropie.broadcast import (
    Broadcast,
    BroadcastBackend,
    History,
    InMemoryBroadcastBackend,
    RedisBroadcastBackend,
    Subscription,
)

TIMEOUT = 5.0


class Kind:
    """A kind of broadcast backend: ``"memory"``, or ``"redis"`` at *url*."""

    def __init__(self, name: str, url: str = "") -> None:
        self.name = name
        self.url = url

    def make(
        self, max_queue: int = 1000, history: History | None = None, **options: int
    ) -> Broadcast:
        """A broadcast of this kind; *options* go to :class:`Broadcast`."""
        if self.name == "memory":
            backend: BroadcastBackend = InMemoryBroadcastBackend(history=history)
        else:
            backend = RedisBroadcastBackend(self.url, history=history)
        return Broadcast(backend, max_queue=max_queue, **options)

    def run(
        self,
        scenario: Callable[[Broadcast], Awaitable[Any]],
        max_queue: int = 1000,
        history: History | None = None,
        **options: int,
    ) -> Any:
        """Run *scenario* with a connected broadcast, disconnected after it."""

        async def main() -> Any:
            broadcast = self.make(max_queue, history, **options)
            await broadcast.connect()
            try:
                return await asyncio.wait_for(scenario(broadcast), 20)
            finally:
                await broadcast.disconnect()

        return asyncio.run(main())


def channel_name() -> str:
    return f"test-{uuid.uuid4().hex}"


async def take(subscription: Subscription, count: int) -> list[str]:
    """The next *count* messages, failing if they do not come within TIMEOUT."""

    async def collect() -> list[str]:
        messages = []
        async for message in subscription:
            messages.append(message)
            if len(messages) == count:
                break
        return messages

    return await asyncio.wait_for(collect(), TIMEOUT)
