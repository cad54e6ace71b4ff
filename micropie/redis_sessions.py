"""Sessions in Redis, shared by every worker process and every host.

Needs the ``redis`` package (``pip install micropie[redis]`` or ``pip install redis``).
"""

from __future__ import annotations

import json
from typing import Any

from micropie._redis import DEFAULT_URL, RedisTarget
from micropie.sessions import SessionBackend

__all__ = ["RedisSessionBackend"]


class RedisSessionBackend(SessionBackend):
    """Sessions in Redis: every worker and host that reaches the same Redis
    shares them.

    *redis* is a URL (``redis://host:6379/0``, ``rediss://`` for TLS,
    ``unix:///path``) or a ``redis.asyncio.Redis`` client of your own. Each
    session is stored as JSON under *prefix* followed by its ID, and expires
    *max_age* seconds after it was last saved; so its values must be what JSON
    can hold (tuples come back as lists).

    Append :meth:`check` to ``app.startup_handlers`` so that the application
    fails at startup, not at its first request, when Redis is unreachable;
    and :meth:`aclose` to ``app.shutdown_handlers``.
    """

    def __init__(
        self,
        redis: Any = DEFAULT_URL,
        *,
        max_age: float = 14 * 24 * 3600,
        prefix: str = "micropie:session:",
        check_timeout: float = 5.0,
    ) -> None:
        if max_age <= 0:
            raise ValueError(f"max_age must be positive, got {max_age!r}")
        self._target = RedisTarget(redis)
        #: Where the sessions are kept, for messages: the URL without its password.
        self.where = self._target.where
        self.client: Any = self._target.client()
        self.max_age = max_age
        self.prefix = prefix
        self.check_timeout = check_timeout

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}{session_id}"

    async def check(self) -> None:
        """Ping Redis; :class:`~micropie.RedisUnavailable` naming the URL if it does not answer."""
        await self._target.ping(self.client, self.check_timeout)

    async def aclose(self) -> None:
        """Close the connections of a client this backend made from a URL."""
        if self._target.owned:
            await self.client.aclose()

    async def load(self, session_id: str) -> dict[str, Any] | None:
        raw = await self.client.get(self._key(session_id))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None  # not ours: never adopt it
        return data if isinstance(data, dict) and data else None

    async def save(self, session_id: str, data: dict[str, Any]) -> None:
        if data:
            payload = json.dumps(data, separators=(",", ":"))
            await self.client.set(
                self._key(session_id), payload, px=max(1, int(self.max_age * 1000))
            )
        else:
            await self.client.delete(self._key(session_id))
