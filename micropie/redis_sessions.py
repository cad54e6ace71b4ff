"""Sessions in Redis, shared by every worker process and every host.

Needs the ``redis`` package (``pip install micropie[redis]`` or ``pip install redis``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from micropie.sessions import SessionBackend

__all__ = ["RedisSessionBackend", "RedisUnavailable", "import_redis", "redacted_url"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"


class RedisUnavailable(RuntimeError):
    """Redis could not be reached; the message names the URL (without its password)."""


def import_redis() -> Any:
    """The ``redis.asyncio`` module, or an ImportError that says what to install."""
    try:
        import redis.asyncio as redis_asyncio
    except ImportError as exc:
        raise ImportError(
            "the Redis backends of MicroPie need the redis package: "
            "pip install redis (or pip install 'micropie[redis]')"
        ) from exc
    return redis_asyncio


def redacted_url(url: str) -> str:
    """*url* with any password replaced by ``***``, fit for an error message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def client_description(client: Any) -> str:
    """Where a redis.asyncio client connects, for error messages."""
    try:
        kwargs = client.connection_pool.connection_kwargs
    except AttributeError:
        return repr(client)
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


async def ping(client: Any, where: str, timeout: float) -> None:
    """PING *client*; :class:`RedisUnavailable` naming *where* if it does not answer."""
    try:
        await asyncio.wait_for(client.ping(), timeout)
    except Exception as exc:
        raise RedisUnavailable(
            f"cannot reach Redis at {where}: {exc or type(exc).__name__} "
            "(is redis-server running there, and is the URL right?)"
        ) from exc


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
        if isinstance(redis, str):
            self.url = redacted_url(redis)
            self.client: Any = import_redis().from_url(redis)
            self._owns_client = True
        else:
            self.url = client_description(redis)
            self.client = redis
            self._owns_client = False
        self.max_age = max_age
        self.prefix = prefix
        self.check_timeout = check_timeout

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}{session_id}"

    async def check(self) -> None:
        """Ping Redis; raise :class:`RedisUnavailable` naming the URL if it does not answer."""
        await ping(self.client, self.url, self.check_timeout)

    async def aclose(self) -> None:
        """Close the connections of a client this backend made from a URL."""
        if self._owns_client:
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
