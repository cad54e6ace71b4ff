"""The Origin check on WebSocket handshakes: which pages may open a site's WebSockets."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from urllib.parse import urlsplit

from micropie.request import WebSocketRequest

__all__ = ["normalize_origins", "origin_allowed"]


def normalize_origins(origins: Iterable[str]) -> frozenset[str]:
    """*origins* as the check compares them: lower case, no trailing slash."""
    if isinstance(origins, str):
        raise TypeError(
            "allowed_origins takes a list of origins, such as "
            f'["https://app.example.com"], not the string {origins!r}'
        )
    return frozenset(origin.lower().rstrip("/") for origin in origins)


def origin_allowed(request: WebSocketRequest, allowed: frozenset[str], secure: bool) -> bool:
    """Whether a browser on the page that opened this WebSocket may use it.

    A page of another site could otherwise open a WebSocket that rides the
    visitor's session cookie. Browsers always name the page's origin; clients
    that send no ``Origin`` are not browsers, and carry no visitor's cookies.
    *secure* says whether the handshake came over TLS.
    """
    headers = request.headers
    origins = headers._get(b"origin")
    if not origins:
        return True
    hosts = headers._get(b"host")
    return _judge(origins[0], hosts[0] if hosts else "", secure, allowed)


# A site's pages send the same Origin and Host at every handshake, and the
# answer depends on nothing else: it is worked out once (parsing the origin
# is most of the cost), and remembered.
@functools.lru_cache(maxsize=64)
def _judge(origin: str, host: str, secure: bool, allowed: frozenset[str]) -> bool:
    """Whether the page at *origin* may open a WebSocket of the site at *host*."""
    if "*" in allowed:
        return True
    origin = origin.lower().rstrip("/")
    if origin in allowed:
        return True
    host = host.lower()
    try:
        page = urlsplit(origin)
        page.port  # noqa: B018  (a bad port raises here, not later)
    except ValueError:  # "http://[": no origin a browser sends; refused
        return False
    # Over TLS, a plain-http page of the same host may have been injected by
    # anyone on the network: it does not count as the site's own.
    if secure and page.scheme == "http":
        return False
    return bool(host) and page.netloc == host
