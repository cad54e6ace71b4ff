"""The session cookie as it travels: its name, and the ``Set-Cookie`` values MicroPie sends."""

from __future__ import annotations

import re

__all__ = ["SESSION_COOKIE", "expired_session_cookie", "session_cookie"]

SESSION_COOKIE = "session_id"
# One or more of RFC 6265's cookie-octets, less the ones that need quoting:
# what new_session_id() makes.
_TOKEN = re.compile("[A-Za-z0-9_.~-]+")


def session_cookie(session_id: str, *, secure: bool) -> bytes:
    """The ``Set-Cookie`` value that hands *session_id* to the browser."""
    if type(session_id) is not str:
        raise TypeError(f"session_id must be a str, not {type(session_id).__name__}")
    if _TOKEN.fullmatch(session_id) is None:
        raise ValueError(
            "session_id must be a non-empty token of ASCII letters, digits and '-_.~' "
            "(micropie.sessions.new_session_id() makes one)"
        )
    secure_flag = "; Secure" if secure else ""
    return f"{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Lax{secure_flag}".encode()


def expired_session_cookie(*, secure: bool) -> bytes:
    """The ``Set-Cookie`` value that makes the browser forget its session cookie."""
    secure_flag = "; Secure" if secure else ""
    return f"{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax{secure_flag}".encode()
