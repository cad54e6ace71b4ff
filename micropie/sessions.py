"""Session storage: the backend interface and the in-memory default."""

from __future__ import annotations

import abc
import copy
import inspect
import secrets
import time
import weakref
from typing import Any

from micropie.cookies import SESSION_COOKIE, expired_session_cookie, session_cookie

__all__ = [
    "SESSION_TIMEOUT",
    "InMemorySessionBackend",
    "SessionBackend",
    "SessionHandle",
    "expired_session_cookie",
    "new_session_id",
    "session_cookie",
]


#: Seconds: the timeout MicroPie passes to a backend written for MicroPie 0.x,
#: whose ``save(session_id, data, timeout)`` requires one (eight hours, as 0.x).
SESSION_TIMEOUT = 8 * 3600


def new_session_id() -> str:
    """Return a new random session ID: 256 bits from ``secrets``, URL-safe."""
    return secrets.token_urlsafe(32)


class SessionBackend(abc.ABC):
    """Where sessions live between requests.

    Subclass it to keep sessions elsewhere (a database, Redis) and pass an
    instance as ``App(session_backend=...)``.
    """

    @abc.abstractmethod
    async def load(self, session_id: str) -> dict[str, Any] | None:
        """Return a new dict with the data saved under *session_id*, or ``None``
        if there is none (MicroPie then makes a new ID, never adopting this one)."""

    @abc.abstractmethod
    async def save(self, session_id: str, data: dict[str, Any]) -> None:
        """Store *data* under *session_id*; an empty *data* deletes the session."""

    async def ready(self) -> bool:
        """Whether the store can be used now, for a readiness check; a backend
        that needs a server overrides it. Raise :class:`~micropie.Unavailable`
        from :meth:`load` and :meth:`save` when the store cannot be reached:
        MicroPie answers 503 rather than 500."""
        return True


class InMemorySessionBackend(SessionBackend):
    """Sessions in a dictionary of this process, forgotten *max_age* seconds
    after they were last saved.

    Expired sessions are swept out at most every *cleanup_interval* seconds,
    when sessions are saved. Suited to one process: every worker of a
    multi-process server has its own.
    """

    def __init__(self, max_age: float = 14 * 24 * 3600, cleanup_interval: float = 60) -> None:
        if max_age <= 0:
            raise ValueError(f"max_age must be positive, got {max_age!r}")
        self.max_age = max_age
        self.cleanup_interval = cleanup_interval
        self._sessions: dict[str, tuple[float, dict[str, Any]]] = {}
        self._next_cleanup = time.monotonic() + cleanup_interval

    def cleanup(self) -> int:
        """Forget every expired session now; return how many there were."""
        now = time.monotonic()
        expired = [key for key, (expires, _) in self._sessions.items() if expires <= now]
        for key in expired:
            del self._sessions[key]
        self._next_cleanup = now + self.cleanup_interval
        return len(expired)

    async def load(self, session_id: str) -> dict[str, Any] | None:
        entry = self._sessions.get(session_id)
        if entry is None:
            return None
        expires, data = entry
        if expires <= time.monotonic():
            del self._sessions[session_id]
            return None
        # A copy, so that a handler's changes count only once they are saved.
        return copy.deepcopy(data)

    async def save(
        self, session_id: str, data: dict[str, Any], timeout: float | None = None
    ) -> None:
        """Store *data* for *timeout* seconds (*max_age* unless given, as
        MicroPie 0.x's backends took it); empty, or a timeout of 0, deletes it."""
        now = time.monotonic()
        if now >= self._next_cleanup:
            self.cleanup()
        lifetime = self.max_age if timeout is None else timeout
        if data and lifetime > 0:
            self._sessions[session_id] = (now + lifetime, copy.deepcopy(data))
        else:
            self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        """The number of sessions stored, expired ones included until next touched."""
        return len(self._sessions)


def _save_wants_timeout(backend: SessionBackend) -> bool:
    """Whether the backend's ``save`` requires a third argument, the timeout,
    as backends written for MicroPie 0.x do; found once per class."""
    wants = _WANTS_TIMEOUT.get(type(backend))
    if wants is None:
        try:
            signature = inspect.signature(backend.save)  # bound: static ones too
            signature.bind("id", {})
            wants = False
        except TypeError:  # two arguments are not enough
            wants = True
        except ValueError:  # no signature to read (a builtin): call it as documented
            wants = False
        _WANTS_TIMEOUT[type(backend)] = wants
    return wants


_WANTS_TIMEOUT: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()


class SessionHandle:
    """The session of one request: which ID it came under, and whether it changed."""

    __slots__ = ("_backend", "_snapshot", "known_id")

    def __init__(self, backend: SessionBackend) -> None:
        self._backend = backend
        self._snapshot: dict[str, Any] = {}
        #: The ID from the cookie, if the backend knew it; an unknown one is never adopted.
        self.known_id: str | None = None

    async def load(self, cookies: dict[str, str]) -> dict[str, Any]:
        """The session named by the cookie, or a new empty one."""
        session_id = cookies.get(SESSION_COOKIE)
        if not session_id:
            return {}
        data = await self._backend.load(session_id)
        # MicroPie 0.x's backends answer {} for an ID they do not know: an
        # empty session is no session, or a client could choose its own ID.
        if not data:
            return {}
        self.known_id = session_id
        self._snapshot = copy.deepcopy(data)
        return data

    def changed(self, session: dict[str, Any]) -> bool:
        return session != self._snapshot

    async def save(self, session_id: str, session: dict[str, Any]) -> None:
        await self._backend_save(session_id, session)
        self._snapshot = copy.deepcopy(session)

    async def _backend_save(self, session_id: str, session: dict[str, Any]) -> None:
        backend = self._backend
        if _save_wants_timeout(backend):  # a 0.x backend: it gets its timeout
            await backend.save(session_id, session, SESSION_TIMEOUT)  # type: ignore[call-arg]
        else:
            await backend.save(session_id, session)

    async def commit_http(
        self, session: dict[str, Any], *, secure: bool, renew: bool = False
    ) -> bytes | None:
        """Save a changed session; return the ``Set-Cookie`` value to send, if any.

        A new non-empty session gets a new ID; an emptied one is deleted and
        its cookie cleared; an unchanged one costs nothing. With *renew*, the
        session moves to a new ID and the old one stops working.
        """
        if renew and self.known_id is not None:
            await self._backend_save(self.known_id, {})
            self.known_id = None
            self._snapshot = {}
        if not self.changed(session):
            return None
        if not session:
            if self.known_id is None:
                return None
            await self.save(self.known_id, session)
            return expired_session_cookie(secure=secure)
        session_id = self.known_id or new_session_id()
        await self.save(session_id, session)
        self.known_id = session_id
        return session_cookie(session_id, secure=secure)

    async def commit_changes(
        self, session_id: str, session: dict[str, Any], *, started_here: bool
    ) -> bool:
        """Apply what changed since the session was loaded to what the backend
        holds now, and save that; return whether anything was saved.

        A WebSocket lives long: requests made meanwhile may have changed the
        session, and saving its old copy whole would undo them (a logout above
        all). A session deleted meanwhile stays deleted, unless this connection
        *started_here* and it was never stored (it was empty at ``accept()``).
        """
        missing = object()
        changed = {
            key: value
            for key, value in session.items()
            if self._snapshot.get(key, missing) != value
        }
        removed = [key for key in self._snapshot if key not in session]
        if not changed and not removed:
            return False
        current = await self._backend.load(session_id) or None  # {}: none, as in load()
        if current is None:
            if not started_here:
                return False
            current = {}
        current.update(changed)
        for key in removed:
            current.pop(key, None)
        await self.save(session_id, current)
        return True
