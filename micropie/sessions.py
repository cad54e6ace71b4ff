"""Session storage: the backend interface and the in-memory default."""

from __future__ import annotations

import abc
import copy
import secrets
import time
from typing import Any

__all__ = ["InMemorySessionBackend", "SessionBackend", "new_session_id", "session_cookie"]

#: Name of the cookie that carries the session ID.
SESSION_COOKIE = "session_id"
_TOKEN_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def new_session_id() -> str:
    """Return a new random session ID: 256 bits from ``secrets``, URL-safe."""
    return secrets.token_urlsafe(32)


def session_cookie(session_id: str, *, secure: bool) -> bytes:
    """The ``Set-Cookie`` value that hands *session_id* to the browser."""
    if type(session_id) is not str:
        raise TypeError(f"session_id must be a str, not {type(session_id).__name__}")
    if not session_id or not _TOKEN_CHARACTERS.issuperset(session_id):
        raise ValueError(
            "session_id must be a non-empty token of ASCII letters, digits and '-_.~' "
            "(micropie.sessions.new_session_id() makes one)"
        )
    secure_flag = "; Secure" if secure else ""
    return f"{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Lax{secure_flag}".encode()


class SessionBackend(abc.ABC):
    """Where sessions live between requests.

    Subclass it to keep sessions elsewhere (a database, Redis) and pass an
    instance as ``App(session_backend=...)``.
    """

    @abc.abstractmethod
    async def load(self, session_id: str) -> dict[str, Any] | None:
        """Return the data saved under *session_id*, or ``None`` if there is none."""

    @abc.abstractmethod
    async def save(self, session_id: str, data: dict[str, Any]) -> None:
        """Store *data* under *session_id*; an empty *data* deletes the session."""


class InMemorySessionBackend(SessionBackend):
    """Sessions in a dictionary of this process, forgotten after *max_age* seconds.

    Suited to one process: every worker of a multi-process server has its own.
    """

    def __init__(self, max_age: float = 14 * 24 * 3600) -> None:
        if max_age <= 0:
            raise ValueError(f"max_age must be positive, got {max_age!r}")
        self.max_age = max_age
        self._sessions: dict[str, tuple[float, dict[str, Any]]] = {}

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

    async def save(self, session_id: str, data: dict[str, Any]) -> None:
        if data:
            expires = time.monotonic() + self.max_age
            self._sessions[session_id] = (expires, copy.deepcopy(data))
        else:
            self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        """The number of sessions stored, expired ones included until next touched."""
        return len(self._sessions)
