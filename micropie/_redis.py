"""What the Redis session backend and the Redis broadcast share.

Importing this module never imports the ``redis`` package: that happens
when a Redis backend is made.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from micropie.unavailable import Unavailable

__all__ = [
    "DEFAULT_URL",
    "Outage",
    "RedisTarget",
    "RedisUnavailable",
    "as_text",
    "import_redis",
    "redacted_url",
]

logger = logging.getLogger("micropie")

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


#: The most connections a client made from a URL opens (per process).
MAX_CONNECTIONS = 100

#: A primary found through Redis Sentinel:
#: ``redis+sentinel://[:password@]host:port[,host:port...]/service[/db]``.
SENTINEL_SCHEME = "redis+sentinel://"


def _sentinel_parts(url: str) -> tuple[list[tuple[str, int]], str, int, str | None]:
    """The sentinels, the service name, the database and the password of *url*."""
    rest = url[len(SENTINEL_SCHEME) :]
    netloc, _, path = rest.partition("/")
    password = None
    if "@" in netloc:
        credentials, netloc = netloc.rsplit("@", 1)
        password = credentials.partition(":")[2] or None
    sentinels = []
    for address in netloc.split(","):
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "26379")
        if not host or not port.isdigit():
            raise ValueError(f"{redacted_url(url)}: {address!r} is not host:port")
        sentinels.append((host, int(port)))
    service, _, db = path.partition("/")
    if not service or (db and not db.isdigit()):
        raise ValueError(
            f"{redacted_url(url)}: give the Sentinel service name, and a database number "
            "if any: redis+sentinel://host:26379/mymaster/0"
        )
    return sentinels, service, int(db or 0), password


def _sentinel_client(url: str, timeout: float | None) -> Any:
    """A client of the primary that the sentinels of *url* name, found again after a failover."""
    sentinels, service, db, password = _sentinel_parts(url)
    sentinel = import_redis().Sentinel(
        sentinels, socket_timeout=timeout, sentinel_kwargs={"socket_timeout": timeout}
    )
    return sentinel.master_for(
        service,
        db=db,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )


def as_text(value: Any) -> str:
    """A reply from Redis as text: bytes are UTF-8 (or UnicodeDecodeError)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def redacted_url(url: str) -> str:
    """*url* as messages name it: its scheme, hosts, ports and database (or
    socket path), never a user, a password or a query string, which may hold
    one. The last ``@`` ends the credentials, so that a password with ``/``,
    ``?`` or ``#`` in it, unencoded, is left out whole."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return "(a Redis URL that does not parse)"
    rest = rest.rpartition("@")[2]
    for mark in "?#":
        rest = rest.split(mark, 1)[0]
    return f"{scheme}://{rest}"


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
            if redis.startswith(SENTINEL_SCHEME):
                _sentinel_parts(redis)  # a mistake in the URL shows now, not at the first request
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
        commands give up after *timeout* seconds.

        Its pool holds at most MAX_CONNECTIONS connections, and a command
        that finds them all busy waits up to *timeout* for one, rather than
        fail: a crowd of clients at once (all the pages of a restarted
        server, say) is not an outage.
        """
        if self._url is None:
            return self._client
        if self._url.startswith(SENTINEL_SCHEME):
            return _sentinel_client(self._url, timeout)
        redis_asyncio = import_redis()
        try:
            pool = redis_asyncio.BlockingConnectionPool.from_url(
                self._url,
                max_connections=MAX_CONNECTIONS,
                timeout=timeout,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
            )
        except ValueError:
            # redis-py's message may quote part of a password: say it our way.
            raise ValueError(
                f"{self.where}: not a Redis URL that can be read; percent-encode any "
                "'/', '?', '#' or '@' in the user name or password"
            ) from None
        return redis_asyncio.Redis(connection_pool=pool)

    async def close(self, client: Any) -> None:
        """Close *client* if it is ours (made from the URL), and the
        connections to the sentinels that found its server, if any."""
        if not self.owned:
            return
        await client.aclose(close_connection_pool=True)
        manager = getattr(client.connection_pool, "sentinel_manager", None)
        for sentinel in getattr(manager, "sentinels", ()):
            await sentinel.aclose()

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


class Outage:
    """When a part that needs Redis lost it: logged once as it starts and once
    as it ends, however many calls meet it in between."""

    __slots__ = ("_since", "what")

    def __init__(self, what: str) -> None:
        #: The part, as the log names it ("the session store, Redis at ...").
        self.what = what
        self._since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def begin(self, error: BaseException, meanwhile: str) -> bool:
        """Record that *error* cut the part off; True if that started an outage."""
        if self._since is not None:
            return False
        self._since = time.monotonic()
        logger.warning(
            "%s cannot be reached (%s): %s", self.what, error or type(error).__name__, meanwhile
        )
        return True

    def end(self) -> None:
        """Record that the part works again, if it was cut off."""
        if self._since is not None:
            logger.warning(
                "%s answers again after %.1f s", self.what, time.monotonic() - self._since
            )
            self._since = None
