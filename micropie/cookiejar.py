"""The cookies a test client keeps, sent back as a browser sends them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, MutableMapping
from datetime import UTC
from email.utils import parsedate_to_datetime

from micropie.request import parse_cookies

__all__ = ["CookieJar"]


class CookieJar(MutableMapping[str, str]):
    """The cookies a :class:`~micropie.testing.TestClient` keeps: names to values, each sent back
    with the requests it applies to, as a browser does.

    A cookie is sent with requests for its ``Path`` and below (without a
    ``Path``, the directory of the request that set it, as RFC 6265 says), and
    is dropped when its ``Max-Age`` runs out or its ``Expires`` date passes
    (at once for ``Max-Age=0`` or a date in the past). A cookie set by
    assignment applies to every path and never expires. One site's cookies
    are kept by name: a cookie replaces one of the same name, whatever its path.
    """

    __test__ = False

    def __init__(self) -> None:
        # name -> (value, path, expiry as a time.time() value, or None)
        self._cookies: dict[str, tuple[str, str, float | None]] = {}

    def set_from_header(self, header: str, request_path: str = "/") -> None:
        """Take in one ``Set-Cookie`` header value, from a response to *request_path*."""
        pair, _, attributes = header.partition(";")
        cookie = parse_cookies(pair)
        if not cookie:
            return
        ((name, value),) = cookie.items()
        path, expiry = _default_path(request_path), None
        max_age_given = False
        for attribute in attributes.split(";"):
            key, _, argument = attribute.partition("=")
            key, argument = key.strip().lower(), argument.strip()
            if key == "path" and argument.startswith("/"):
                path = argument
            elif key == "max-age":
                with contextlib.suppress(ValueError, OverflowError):
                    expiry, max_age_given = time.time() + int(argument), True
            elif key == "expires" and not max_age_given:  # Max-Age wins over Expires
                expiry = _expiry_date(argument, expiry)
        if expiry is not None and expiry <= time.time():
            self._cookies.pop(name, None)
        else:
            self._cookies[name] = (value, path, expiry)

    def header_for(self, path: str) -> str:
        """The ``Cookie`` header for a request of *path*: ``""`` when no cookie applies."""
        now = time.time()
        sent = []
        for name, (value, cookie_path, expiry) in list(self._cookies.items()):
            if expiry is not None and expiry <= now:
                del self._cookies[name]
            elif _path_matches(path, cookie_path):
                sent.append(f"{name}={value}")
        return "; ".join(sent)

    def __getitem__(self, name: str) -> str:
        return self._cookies[name][0]

    def __setitem__(self, name: str, value: str) -> None:
        self._cookies[name] = (value, "/", None)

    def __delitem__(self, name: str) -> None:
        del self._cookies[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cookies)

    def __len__(self) -> int:
        return len(self._cookies)

    def copy(self) -> dict[str, str]:
        """The cookies' names and values, as a plain dict."""
        return dict(self.items())

    def __repr__(self) -> str:
        # As the plain dict it used to be shows itself: {'session_id': '...'}.
        return repr(dict(self.items()))


def _default_path(request_path: str) -> str:
    """RFC 6265, 5.1.4: the directory of the path that set the cookie."""
    if not request_path.startswith("/") or request_path.count("/") == 1:
        return "/"
    return request_path[: request_path.rindex("/")]


def _expiry_date(text: str, otherwise: float | None) -> float | None:
    try:
        date = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return otherwise  # a date nobody can read is ignored, as browsers do
    if date.tzinfo is None:  # "-0000" in the date: UTC, whatever the local zone
        date = date.replace(tzinfo=UTC)
    return date.timestamp()


def _path_matches(request_path: str, cookie_path: str) -> bool:
    """RFC 6265, 5.1.4: the cookie's path is the request's, or a directory above it."""
    if request_path == cookie_path or cookie_path == "/":
        return True
    return request_path.startswith(cookie_path) and (
        cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"
    )
