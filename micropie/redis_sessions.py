"""Sessions in Redis, shared by every worker process and every host.

Needs the ``redis`` package (``pip install micropie[redis]`` or ``pip install redis``).
"""

from __future__ import annotations

import json
from typing import Any

from micropie._redis import DEFAULT_URL, Outage, RedisTarget, RedisUnavailable, import_redis
from micropie.sessions import SessionBackend

__all__ = ["RedisSessionBackend"]


class RedisSessionBackend(SessionBackend):
    """Sessions in Redis: every worker and host that reaches the same Redis
    shares them.

    *redis* is a URL (``redis://host:6379/0``, ``rediss://`` for TLS,
    ``unix:///path``, ``redis+sentinel://host:26379/service`` for the
    primary that Redis Sentinel names) or a ``redis.asyncio.Redis`` client
    of your own. Each
    session is stored as JSON under *prefix* followed by its ID, and expires
    *max_age* seconds after it was last saved; so its values must be what JSON
    can hold (tuples come back as lists).

    When Redis cannot be reached, or does not answer within *timeout* seconds
    (for a client made from a URL; a client of yours keeps its own
    timeouts), loading or saving raises :class:`~micropie.RedisUnavailable`,
    which MicroPie answers with 503 and ``Retry-After: retry_after`` (a
    WebSocket handshake: closed with 1013). The outage is logged once when it
    starts and once when Redis answers again; nothing needs restarting.

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
        timeout: float = 2.0,
        retry_after: float = 5.0,
    ) -> None:
        if max_age <= 0:
            raise ValueError(f"max_age must be positive, got {max_age!r}")
        if not timeout > 0 or not retry_after > 0:
            raise ValueError(
                f"timeout and retry_after must be positive, got {timeout!r} and {retry_after!r}"
            )
        self._target = RedisTarget(redis)
        #: Where the sessions are kept, for messages: the URL without its password.
        self.where = self._target.where
        self.client: Any = self._target.client(timeout)
        self.max_age = max_age
        self.prefix = prefix
        self.check_timeout = check_timeout
        self.retry_after = retry_after
        self._errors = self._target.errors()
        self._wrong_type = import_redis().ResponseError
        self._outage = Outage(f"the session store, Redis at {self.where},")

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}{session_id}"

    async def check(self) -> None:
        """Ping Redis; :class:`~micropie.RedisUnavailable` naming the URL if it does not answer."""
        await self._target.ping(self.client, self.check_timeout)

    async def ready(self) -> bool:
        """Whether Redis answers a ping now (within *check_timeout*): for a
        readiness check."""
        try:
            await self.check()
        except RedisUnavailable:
            return False
        return True

    async def aclose(self) -> None:
        """Close the connections of a client this backend made from a URL."""
        await self._target.close(self.client)

    async def load(self, session_id: str) -> dict[str, Any] | None:
        try:
            raw = await self.client.get(self._key(session_id))
        except self._errors as exc:
            raise self._unavailable(exc) from exc
        except self._wrong_type:  # WRONGTYPE: a key of another kind under that name
            return None
        self._available()
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):  # not ours, or nested too deep: never adopt it
            return None
        return data if isinstance(data, dict) and data else None

    async def save(self, session_id: str, data: dict[str, Any]) -> None:
        try:
            if data:
                payload = json.dumps(data, separators=(",", ":"))
                await self.client.set(
                    self._key(session_id), payload, px=max(1, int(self.max_age * 1000))
                )
            else:
                await self.client.delete(self._key(session_id))
        except self._errors as exc:
            raise self._unavailable(exc) from exc
        self._available()

    def _unavailable(self, error: BaseException) -> RedisUnavailable:
        self._outage.begin(error, "requests with a session are answered with 503 until it is back")
        return RedisUnavailable(
            f"{self._outage.what} cannot be reached", retry_after=self.retry_after
        )

    def _available(self) -> None:
        if self._outage.ongoing:
            self._outage.end()
