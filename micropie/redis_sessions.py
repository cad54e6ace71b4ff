"""Sessions in Redis, shared by every worker process and every host.

Needs the ``redis`` package (``pip install micropie[redis]`` or ``pip install redis``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from micropie._redis import DEFAULT_URL, Outage, RedisTarget, RedisUnavailable, import_redis
from micropie.sessions import NEW_SESSION_MAX_AGE, SessionBackend, lifetimes

__all__ = ["RedisSessionBackend"]

# A new session is stored as [session], a JSON list that no session is, until
# its client comes back with the cookie: then as the session alone.

# KEYS[1]: the session; ARGV[1]: the milliseconds to add (max_age less
# new_session_max_age). If it is still stored as new: unmarked, with its full
# lifetime, counted from its save. What is stored now is kept, not what
# load() read, so that a save made meanwhile is not undone.
_WELCOME_BACK = """
local stored = redis.call('GET', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if not stored or string.sub(stored, 1, 1) ~= '[' or ttl < 0 then
  return 0
end
redis.call('SET', KEYS[1], string.sub(stored, 2, -2), 'PX', ttl + tonumber(ARGV[1]))
return 1
"""

# KEYS[1]: the session; ARGV: its data as JSON, and the milliseconds to keep
# it for if its client came back, and if not. Only if it is stored now: a
# session deleted meanwhile stays deleted.
_REPLACE = """
local stored = redis.call('GET', KEYS[1])
if not stored then
  return 0
end
if string.sub(stored, 1, 1) == '[' then
  redis.call('SET', KEYS[1], '[' .. ARGV[1] .. ']', 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"""


class RedisSessionBackend(SessionBackend):
    """Sessions in Redis: every worker and host that reaches the same Redis
    shares them.

    *redis* is a URL (``redis://host:6379/0``, ``rediss://`` for TLS,
    ``unix:///path``, ``redis+sentinel://host:26379/service`` for the
    primary that Redis Sentinel names) or a ``redis.asyncio.Redis`` client
    of your own. Each
    session is stored as JSON under *prefix* followed by its ID, and expires
    *max_age* seconds after it was last saved; so its values must be what JSON
    can hold (tuples come back as lists). A new session expires
    *new_session_max_age* seconds after it was saved, unless its client comes
    back with the cookie first: it then gets its full *max_age*. A session
    loaded under an ID is saved only if it is still stored, in one step
    (a Lua script), so that a session deleted meanwhile stays deleted.

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
        new_session_max_age: float = NEW_SESSION_MAX_AGE,
        prefix: str = "micropie:session:",
        check_timeout: float = 5.0,
        timeout: float = 2.0,
        retry_after: float = 5.0,
    ) -> None:
        self.max_age, self.new_session_max_age = lifetimes(max_age, new_session_max_age)
        if not timeout > 0 or not retry_after > 0:
            raise ValueError(
                f"timeout and retry_after must be positive, got {timeout!r} and {retry_after!r}"
            )
        self._target = RedisTarget(redis)
        #: Where the sessions are kept, for messages: the URL without its password.
        self.where = self._target.where
        self.client: Any = self._target.client(timeout)
        self._lifetime = _milliseconds(self.max_age)
        self._new_lifetime = _milliseconds(self.new_session_max_age)
        # Whether new sessions are marked: not when they live as long as the others.
        self._marks_new = self._new_lifetime < self._lifetime
        self._welcome_back = self.client.register_script(_WELCOME_BACK)
        self._replace = self.client.register_script(_REPLACE)
        self.prefix = prefix
        self.check_timeout = check_timeout
        self.retry_after = retry_after
        self._errors = self._target.errors()
        self._wrong_type = import_redis().ResponseError
        self._outage = Outage(f"the session store, Redis at {self.where},")

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}{session_id}"

    async def check(self) -> None:
        """Ping Redis, and run a script there as saving a session does.

        Raises :class:`~micropie.RedisUnavailable` naming the URL if Redis
        does not answer, and ``PermissionError`` if its user may not run
        scripts (an ACL without ``+@scripting``): sessions need them.
        """
        await self._target.ping(self.client, self.check_timeout)
        try:
            await asyncio.wait_for(self.client.eval("return 1", 0), self.check_timeout)
        except self._wrong_type as exc:  # NOPERM is a ResponseError
            raise PermissionError(
                f"the session store, Redis at {self.where}, refuses to run a script "
                f"({exc}): give its user EVAL and EVALSHA (the ACL category +@scripting)"
            ) from None
        except Exception as exc:
            raise RedisUnavailable(
                f"Redis at {self.where} answered a ping but not a script: "
                f"{exc or type(exc).__name__}"
            ) from exc

    async def ready(self) -> bool:
        """Whether Redis answers a ping now (within *check_timeout*): for a
        readiness check."""
        try:
            await self._target.ping(self.client, self.check_timeout)
        except RedisUnavailable:
            return False
        return True

    async def aclose(self) -> None:
        """Close the connections of a client this backend made from a URL."""
        await self._target.close(self.client)

    async def load(self, session_id: str) -> dict[str, Any] | None:
        key = self._key(session_id)
        try:
            raw = await self.client.get(key)
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
        if type(data) is list:  # a new session, [session]: its client is back
            if len(data) != 1:
                return None
            data = data[0]
            if isinstance(data, dict) and data:
                await self._run(self._welcome_back, key, self._lifetime - self._new_lifetime)
        return data if isinstance(data, dict) and data else None

    async def save(self, session_id: str, data: dict[str, Any]) -> None:
        try:
            if data:
                payload = json.dumps(data, separators=(",", ":"))
                await self.client.set(self._key(session_id), payload, px=self._lifetime)
            else:
                await self.client.delete(self._key(session_id))
        except self._errors as exc:
            raise self._unavailable(exc) from exc
        self._available()

    async def create(self, session_id: str, data: dict[str, Any]) -> None:
        """Store *data* under the new *session_id* for *new_session_max_age* seconds."""
        if not self._marks_new:
            await self.save(session_id, data)
            return
        payload = json.dumps([data], separators=(",", ":"))
        try:
            await self.client.set(self._key(session_id), payload, px=self._new_lifetime)
        except self._errors as exc:
            raise self._unavailable(exc) from exc
        self._available()

    async def replace(self, session_id: str, data: dict[str, Any]) -> bool:
        """Store *data* under *session_id* if a session is stored there now, in
        one step (a Lua script); return whether one was."""
        if not data:
            try:
                deleted = await self.client.delete(self._key(session_id))
            except self._errors as exc:
                raise self._unavailable(exc) from exc
            self._available()
            return bool(deleted)
        payload = json.dumps(data, separators=(",", ":"))
        return await self._run(
            self._replace, self._key(session_id), payload, self._lifetime, self._new_lifetime
        )

    async def _run(self, script: Any, key: str, *args: Any) -> bool:
        """Run one of the scripts on *key*; whether it did its work."""
        try:
            done = await script(keys=[key], args=args)
        except self._errors as exc:
            raise self._unavailable(exc) from exc
        except self._wrong_type as exc:
            if str(exc).startswith("WRONGTYPE"):  # a key of another kind: not a session
                return False
            raise  # scripts refused, say: not to be taken for a deleted session
        self._available()
        return bool(done)

    def _unavailable(self, error: BaseException) -> RedisUnavailable:
        self._outage.begin(error, "requests with a session are answered with 503 until it is back")
        return RedisUnavailable(
            f"{self._outage.what} cannot be reached", retry_after=self.retry_after
        )

    def _available(self) -> None:
        if self._outage.ongoing:
            self._outage.end()


def _milliseconds(seconds: float) -> int:
    return max(1, int(seconds * 1000))
