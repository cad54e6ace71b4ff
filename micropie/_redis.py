"""What the Redis session backend and the Redis broadcast share.

Importing this module never imports the ``redis`` package: that happens
when a Redis backend is made.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from micropie.unavailable import Unavailable

__all__ = ["DEFAULT_URL", "RedisTarget", "RedisUnavailable", "import_redis", "redacted_url"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"


class RedisUnavailable(Unavailable):
    """Redis could not be reached; the message names the URL (without its password)."""

    __module__ = "micropie"


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


class RedisTarget:
    """A Redis server given as a URL or as a ``redis.asyncio.Redis`` client of the user's.

    ``where`` names it in messages, never with a password. A client made
    from a URL belongs to whoever made it, and is theirs to close; a given
    client stays the user's.
    """

    __slots__ = ("_client", "_url", "where")

    def __init__(self, redis: Any) -> None:
        import_redis()  # fail now, with the install hint, if the package is missing
        if isinstance(redis, str):
            self._url: str | None = redis
            self._client: Any = None
            self.where = redacted_url(redis)
        else:
            self._url = None
            self._client = redis
            self.where = _client_description(redis)

    @property
    def owned(self) -> bool:
        """Whether clients made here are ours to close (the target was a URL)."""
        return self._url is not None

    def client(self, timeout: float | None = None) -> Any:
        """The user's client, or a new one for the URL whose connects and
        commands give up after *timeout* seconds."""
        if self._url is None:
            return self._client
        return import_redis().from_url(
            self._url, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    @staticmethod
    def errors() -> tuple[type[BaseException], ...]:
        """What a command raises when the server cannot be reached or does not answer."""
        redis_asyncio = import_redis()
        return (
            redis_asyncio.ConnectionError,
            redis_asyncio.TimeoutError,
            OSError,
            asyncio.TimeoutError,
        )

    async def ping(self, client: Any, timeout: float) -> None:
        """PING *client*; :class:`RedisUnavailable` naming the server if it does not answer."""
        try:
            await asyncio.wait_for(client.ping(), timeout)
        except Exception as exc:
            raise RedisUnavailable(
                f"cannot reach Redis at {self.where}: {exc or type(exc).__name__} "
                "(is redis-server running there, and is the URL right?)"
            ) from exc


def _client_description(client: Any) -> str:
    """Where a redis.asyncio client connects, for error messages."""
    try:
        kwargs = client.connection_pool.connection_kwargs
    except AttributeError:
        return repr(client)
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
