"""Session storage: the backend interface and the in-memory default."""

from __future__ import annotations

import abc
import copy
import inspect
import logging
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


logger = logging.getLogger("micropie")

#: Seconds: the timeout MicroPie passes to a backend written for MicroPie 0.x,
#: whose ``save(session_id, data, timeout)`` requires one (eight hours, as 0.x).
SESSION_TIMEOUT = 8 * 3600


def new_session_id() -> str:
    """Return a new random session ID: 256 bits from ``secrets``, URL-safe."""
    return secrets.token_urlsafe(32)


class SessionBackend(abc.ABC):
    """Where sessions live between requests.

    Subclass it to keep sessions elsewhere (a database, Redis) and pass an
    instance as ``App(session_backend=...)``. :meth:`load` and :meth:`save`
    are required; :meth:`create` and :meth:`replace` have defaults built on
    them, which a backend overrides to do better.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A backend's own create() and replace() go straight to its store. A
        # subclass of it that changes load() or save() (to encrypt, say) and
        # not them gets the defaults, built on its own load() and save().
        own = vars(cls)
        if ("load" in own or "save" in own) and "create" not in own and "replace" not in own:
            cls.create = SessionBackend.create  # type: ignore[method-assign]
            cls.replace = SessionBackend.replace  # type: ignore[method-assign]

    @abc.abstractmethod
    async def load(self, session_id: str) -> dict[str, Any] | None:
        """Return a new dict with the data saved under *session_id*, or ``None``
        if there is none (MicroPie then makes a new ID, never adopting this one)."""

    @abc.abstractmethod
    async def save(self, session_id: str, data: dict[str, Any]) -> None:
        """Store *data* under *session_id*; an empty *data* deletes the session."""

    async def create(self, session_id: str, data: dict[str, Any]) -> None:
        """Store *data* (not empty) under *session_id*, a new ID that its client
        has not sent back yet.

        A backend may keep such a session for a short time only, until
        :meth:`load` finds it again, so that clients that never come back
        cost little. This default calls :meth:`save`: the full lifetime.
        """
        await _save(self, session_id, data)

    async def replace(self, session_id: str, data: dict[str, Any]) -> bool:
        """Store *data* under *session_id* only if a session is stored there
        now, and return whether one was; an empty *data* deletes it.

        MicroPie saves a session that it loaded under an ID this way, so that
        a session deleted meanwhile (a logout in another request) is not
        created again. This default calls :meth:`load`, then :meth:`save`: a
        deletion that falls between the two is undone. Override it with one
        step if the store has one (an SQL ``UPDATE``, Redis's ``SET XX``).
        """
        if not await self.load(session_id):  # None, or {} from a backend written for 0.x
            return False
        await _save(self, session_id, data)
        return True

    async def ready(self) -> bool:
        """Whether the store can be used now, for a readiness check; a backend
        that needs a server overrides it. Raise :class:`~micropie.Unavailable`
        from :meth:`load` and :meth:`save` when the store cannot be reached:
        MicroPie answers 503 rather than 500."""
        return True


# How long the backends of MicroPie keep a new session whose client has not
# come back with its cookie: ten minutes.
NEW_SESSION_MAX_AGE = 600.0


def lifetimes(max_age: float, new_session_max_age: float) -> tuple[float, float]:
    """A backend's *max_age* and *new_session_max_age*, checked: the second no
    longer than the first. ValueError if either is not positive."""
    if max_age <= 0 or new_session_max_age <= 0:
        raise ValueError(
            f"max_age and new_session_max_age must be positive, "
            f"got {max_age!r} and {new_session_max_age!r}"
        )
    return max_age, min(new_session_max_age, max_age)


# Seconds between two warnings that the in-memory store is full.
_FULL_WARNING_INTERVAL = 60.0


class InMemorySessionBackend(SessionBackend):
    """Sessions in a dictionary of this process, forgotten *max_age* seconds
    after they were last saved.

    A new session (:meth:`create`) is kept *new_session_max_age* seconds
    after it was saved until its client comes back with the cookie: the
    first :meth:`load` gives it its full *max_age*, counted from its save.
    At most *max_sessions* sessions are kept: storing one more forgets the
    session saved longest ago, among those whose client never came back
    first. Expired sessions are swept out at most every *cleanup_interval*
    seconds, when sessions are saved. Suited to one process: every worker
    of a multi-process server has its own.
    """

    def __init__(
        self,
        max_age: float = 14 * 24 * 3600,
        cleanup_interval: float = 60,
        *,
        new_session_max_age: float = NEW_SESSION_MAX_AGE,
        max_sessions: int = 100_000,
    ) -> None:
        self.max_age, self.new_session_max_age = lifetimes(max_age, new_session_max_age)
        if type(max_sessions) is not int or max_sessions < 1:
            raise ValueError(f"max_sessions must be a positive int, got {max_sessions!r}")
        self.max_sessions = max_sessions
        self.cleanup_interval = cleanup_interval
        # Every session, in the order of the last save (oldest first): its
        # expiry, its data, and whether it is new (its client has not come
        # back); and the new ones alone, in the same order, to make room.
        self._sessions: dict[str, tuple[float, dict[str, Any], bool]] = {}
        self._new: dict[str, None] = {}
        self._next_cleanup = time.monotonic() + cleanup_interval
        self._next_full_warning = -float("inf")

    def cleanup(self) -> int:
        """Forget every expired session now; return how many there were."""
        now = time.monotonic()
        expired = [key for key, (expires, _, _) in self._sessions.items() if expires <= now]
        for key in expired:
            self._drop(key)
        self._next_cleanup = now + self.cleanup_interval
        return len(expired)

    async def load(self, session_id: str) -> dict[str, Any] | None:
        entry = self._sessions.get(session_id)
        if entry is None:
            return None
        expires, data, new = entry
        if expires <= time.monotonic():
            self._drop(session_id)
            return None
        if new:  # its client came back with the cookie: the full lifetime, from its save
            del self._new[session_id]
            expires += self.max_age - self.new_session_max_age
            self._sessions[session_id] = (expires, data, False)
        # A copy, so that a handler's changes count only once they are saved.
        return copy.deepcopy(data)

    async def save(
        self, session_id: str, data: dict[str, Any], timeout: float | None = None
    ) -> None:
        """Store *data* for *timeout* seconds (*max_age* unless given, as
        MicroPie 0.x's backends took it); empty, or a timeout of 0, deletes it."""
        lifetime = self.max_age if timeout is None else timeout
        self._store(session_id, data if lifetime > 0 else {}, lifetime, new=False)

    async def create(self, session_id: str, data: dict[str, Any]) -> None:
        """Store *data* under the new *session_id* for *new_session_max_age* seconds."""
        self._store(session_id, data, self.new_session_max_age, new=True)

    async def replace(self, session_id: str, data: dict[str, Any]) -> bool:
        """Store *data* under *session_id* if a session is stored there now (in
        one step: nothing else runs meanwhile); return whether one was."""
        entry = self._sessions.get(session_id)
        if entry is None:
            return False
        if entry[0] <= time.monotonic():
            self._drop(session_id)
            return False
        self._store(
            session_id, data, self.new_session_max_age if entry[2] else self.max_age, new=entry[2]
        )
        return True

    def __len__(self) -> int:
        """The number of sessions stored, expired ones included until next touched."""
        return len(self._sessions)

    def _now(self) -> float:
        """The time; sweeps out the expired sessions first when a sweep is due."""
        now = time.monotonic()
        if now >= self._next_cleanup:
            self.cleanup()
        return now

    def _store(self, session_id: str, data: dict[str, Any], lifetime: float, *, new: bool) -> None:
        """Store *data* (empty: delete) as the most recently saved session."""
        now = self._now()
        known = self._drop(session_id)
        if not data:
            return
        if not known:
            self._make_room(now)
        self._sessions[session_id] = (now + lifetime, copy.deepcopy(data), new)
        if new:
            self._new[session_id] = None

    def _drop(self, session_id: str) -> bool:
        """Forget *session_id*; return whether it was stored."""
        self._new.pop(session_id, None)
        return self._sessions.pop(session_id, None) is not None

    def _make_room(self, now: float) -> None:
        """Forget sessions until one more fits: an expired one, else the new
        one saved longest ago, else the session saved longest ago."""
        while len(self._sessions) >= self.max_sessions:
            oldest = next(iter(self._sessions))
            if self._sessions[oldest][0] > now:  # not expired: evicted
                oldest = next(iter(self._new), oldest)
                if now >= self._next_full_warning:
                    self._next_full_warning = now + _FULL_WARNING_INTERVAL
                    logger.warning(
                        "the in-memory session store holds max_sessions=%d sessions: "
                        "the oldest are forgotten to make room, new ones first",
                        self.max_sessions,
                    )
            self._drop(oldest)


async def _save(backend: SessionBackend, session_id: str, data: dict[str, Any]) -> None:
    """``backend.save(session_id, data)``, with the timeout a 0.x backend requires."""
    if _save_wants_timeout(backend):
        await backend.save(session_id, data, SESSION_TIMEOUT)  # type: ignore[call-arg]
    else:
        await backend.save(session_id, data)


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


def _not_restored(path: str) -> None:
    logger.info("the session of %s was deleted meanwhile; not restored", path)


class SessionHandle:
    """The session of one request or WebSocket: which ID it came under, what
    it held then, and the new ID it was stored under, if any."""

    __slots__ = ("_backend", "_snapshot", "_started", "known_id")

    def __init__(self, backend: SessionBackend) -> None:
        self._backend = backend
        self._snapshot: dict[str, Any] = {}
        #: The ID from the cookie, if the backend knew it; an unknown one is never adopted.
        self.known_id: str | None = None
        # The new ID that start() stored the session under.
        self._started: str | None = None

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

    async def start(self, session_id: str, session: dict[str, Any]) -> None:
        """Store *session* under *session_id*, which ``accept()`` hands out."""
        if session and session_id != self.known_id:  # empty: stored at the end, if filled
            await self._backend.create(session_id, session)
            self._started = session_id
            self._snapshot = copy.deepcopy(session)

    async def commit_http(
        self, session: dict[str, Any], *, secure: bool, path: str, renew: bool = False
    ) -> bytes | None:
        """Save a changed session; return the ``Set-Cookie`` value to send, if any.

        A new non-empty session gets a new ID; an emptied one is deleted and
        its cookie cleared; an unchanged one costs nothing; one deleted
        meanwhile (a logout) stays deleted, and its cookie is cleared. With
        *renew*, the session moves to a new ID and the old one stops working.
        """
        if renew and self.known_id is not None:
            await _save(self._backend, self.known_id, {})
            self.known_id = None
            self._snapshot = {}
        if not self.changed(session):
            return None
        session_id = self.known_id
        if session_id is None:
            if not session:
                return None
            session_id = new_session_id()
            await self._backend.create(session_id, session)
            return session_cookie(session_id, secure=secure)
        if not session:
            await _save(self._backend, session_id, session)
        elif not await self._backend.replace(session_id, session):
            _not_restored(path)
        else:
            return session_cookie(session_id, secure=secure)
        return expired_session_cookie(secure=secure)

    async def commit_websocket(self, session_id: str, session: dict[str, Any], path: str) -> None:
        """Save a session that changed while a WebSocket was open.

        A WebSocket lives long: requests made meanwhile may have changed the
        session, and saving its old copy whole would undo them, so only what
        changed here is applied to what the backend holds now. A session
        deleted meanwhile (a logout) stays deleted. One that this connection
        started under a new ID is saved whole.
        """
        backend = self._backend
        if session_id == self._started:  # stored at accept(), under a new ID
            if not await backend.replace(session_id, session):
                _not_restored(path)
            return
        if session_id != self.known_id:  # a new ID, for a session empty at accept()
            if session:
                await backend.create(session_id, session)
            return
        missing = object()
        changed = {
            key: value
            for key, value in session.items()
            if self._snapshot.get(key, missing) != value
        }
        removed = [key for key in self._snapshot if key not in session]
        current = await backend.load(session_id)
        if current:  # not None, nor {} as a 0.x backend says it
            current.update(changed)
            for key in removed:
                current.pop(key, None)
            if await backend.replace(session_id, current):
                return
        _not_restored(path)
