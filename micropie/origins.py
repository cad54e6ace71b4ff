"""Which browsers' requests a site answers: the Host check on every request,
and the Origin check on WebSocket handshakes."""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from micropie._asgi import Scope, Send
from micropie.request import WebSocketRequest
from micropie.responses import error_response

__all__ = ["AllowedHosts", "normalize_hosts", "normalize_origins", "origin_allowed", "refuse_host"]

logger = logging.getLogger("micropie")


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
    *secure* says whether the handshake came over TLS. The page's host is
    compared with the ``Host`` header, which the Host check has vetted
    when ``allowed_hosts`` is set (see :class:`AllowedHosts`).
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


# The Host check. After a DNS rebinding, a page of another site reaches this
# one under the other site's name: its requests carry that name in Host, and
# its Origin names the same host, so only the Host header can tell.

# A host name as the check takes it (lower case by then): dot-separated
# labels of letters, digits, "-" and "_", nothing else, as long as DNS
# allows. IPv6 literals are bracketed, and parsed apart.
_NAME = re.compile(r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*")
_LONGEST_NAME = 253
_PORT = re.compile(r"[0-9]{1,5}")
_SECURE_SCHEMES = frozenset({"https", "wss"})
# Verdicts kept per AllowedHosts: a site sees few Host values, and a flood
# of made-up ones empties the memory rather than growing it.
_REMEMBERED_HOSTS = 256
# No Host of ours is longer: a longer one is judged each time, not kept.
_LONGEST_KEPT = 300


class AllowedHosts(frozenset[str]):
    """The hosts an App answers for (``App.allowed_hosts``), and the check of a request's.

    A frozenset of the entries, normalized (lower case, no trailing dot,
    IPv6 addresses compressed), which also holds them sorted by kind, so
    that checking a ``Host`` is a set look-up, and the verdict for each
    ``Host`` value is remembered.
    """

    __slots__ = (
        "_names",
        "_ports_named",
        "_secure_verdicts",
        "_suffixes",
        "_verdicts",
        "_with_ports",
        "checked",
    )

    checked: bool
    _ports_named: bool
    _names: frozenset[str]
    _with_ports: frozenset[tuple[str, int]]
    _suffixes: tuple[tuple[str, int | None], ...]
    # Without a port in any entry, the scheme changes no verdict: one dict
    # serves all. With one, a Host without a port means 80 or 443 by scheme.
    _verdicts: dict[bytes, bool]
    _secure_verdicts: dict[bytes, bool]

    def __new__(cls, entries: Iterable[str] = ("*",)) -> AllowedHosts:
        if isinstance(entries, str):
            raise TypeError(
                "allowed_hosts takes a list of host names, such as "
                f'["example.com", "www.example.com"], not the string {entries!r}'
            )
        parsed = [_entry(entry) for entry in entries]
        if not parsed:
            raise ValueError(
                "allowed_hosts is empty, which would refuse every request: name the hosts "
                'the site is reached by, such as ["example.com"], or ["*"] for any'
            )
        hosts = super().__new__(cls, (text for text, _, _ in parsed))
        names: set[str] = set()
        with_ports: set[tuple[str, int]] = set()
        suffixes: list[tuple[str, int | None]] = []
        for text, name, port in parsed:
            if text == "*":
                continue
            if name.startswith("*."):
                suffixes.append((name[1:], port))  # ".example.com": what a subdomain ends with
            elif port is None:
                names.add(name)
            else:
                with_ports.add((name, port))
        hosts.checked = "*" not in hosts
        hosts._names = frozenset(names)
        hosts._with_ports = frozenset(with_ports)
        hosts._suffixes = tuple(suffixes)
        hosts._ports_named = bool(with_ports) or any(port is not None for _, port in suffixes)
        hosts._verdicts = {}
        hosts._secure_verdicts = {}
        return hosts

    def allow(self, scope: Scope) -> bool:
        """Whether the ``Host`` of this HTTP request or WebSocket handshake is allowed.

        A request without ``Host``, or with two, is not.
        """
        host: bytes | None = None
        for name, value in scope.get("headers", ()):
            if name == b"host":
                if host is not None:
                    return False  # two: which one the client meant is anyone's guess
                host = value
        if host is None:
            return False
        secure = self._ports_named and scope.get("scheme") in _SECURE_SCHEMES
        verdicts = self._secure_verdicts if secure else self._verdicts
        verdict = verdicts.get(host)
        if verdict is None:
            verdict = self._judge(host, secure)
            if len(host) <= _LONGEST_KEPT:
                if len(verdicts) >= _REMEMBERED_HOSTS:
                    verdicts.clear()
                verdicts[host] = verdict
        return verdict

    def _judge(self, host: bytes, secure: bool) -> bool:
        parsed = _split(host.decode("latin-1"))
        if parsed is None:
            return False  # malformed: no host of ours
        name, port = parsed
        if name in self._names:
            return True
        if port is None:  # the port the scheme implies, which browsers leave out
            port = 443 if secure else 80
        if (name, port) in self._with_ports:
            return True
        return any(
            name.endswith(suffix) and (wanted is None or wanted == port)
            for suffix, wanted in self._suffixes
        )


def normalize_hosts(hosts: Iterable[str]) -> AllowedHosts:
    """*hosts* as :attr:`App.allowed_hosts <micropie.App.allowed_hosts>` keeps them."""
    return hosts if isinstance(hosts, AllowedHosts) else AllowedHosts(hosts)


def _split(text: str) -> tuple[str, int | None] | None:
    """The host name (lower case, without a trailing dot; an IPv6 address
    bracketed and compressed) and the port of *text*; None if malformed."""
    text = text.lower()
    if text.startswith("["):
        literal, bracket, rest = text[1:].partition("]")
        try:
            address = ipaddress.IPv6Address(literal)
        except ValueError:
            return None
        if not bracket:
            return None
        name = f"[{address.compressed}]"
    else:
        name, colon, port_text = text.partition(":")
        rest = colon + port_text
        name = name.removesuffix(".")
        if len(name) > _LONGEST_NAME or not _NAME.fullmatch(name):
            return None
    if not rest:
        return name, None
    if rest[0] != ":" or not _PORT.fullmatch(rest[1:]) or int(rest[1:]) > 65535:
        return None
    return name, int(rest[1:])


def _entry(entry: str) -> tuple[str, str, int | None]:
    """An ``allowed_hosts`` entry as the check keeps it: its text, name and port.

    Raises ``TypeError`` or ``ValueError``, saying what to write instead, for
    one that no ``Host`` header could match as its writer meant.
    """
    if not isinstance(entry, str):
        raise TypeError(f"allowed_hosts holds host names (str), not {type(entry).__name__}")
    text = entry.strip().lower()
    if text == "*":
        return "*", "*", None
    wildcard = text.startswith("*.")
    bare = text[2:] if wildcard else text
    if "://" in text or "/" in text:
        problem = "is a URL; write its host alone, such as 'example.com'"
    elif not text.isascii():
        problem = "is not ASCII; write the name as browsers send it, in its xn-- form"
    elif text.startswith("."):
        problem = f"names no host; write '*{text}' for its subdomains, and '{text[1:]}' for itself"
    elif bare.count(":") > 1 and not bare.startswith("["):
        problem = "looks like an IPv6 address; write it in brackets, as in a URL: '[::1]'"
    elif "*" in bare:
        problem = (
            "has a '*' where none can be: write '*' alone for every host, or "
            "'*.example.com' for the subdomains of example.com"
        )
    else:
        parsed = _split(bare)
        if parsed is not None and not (wildcard and parsed[0].startswith("[")):
            name, port = parsed
            name = f"*.{name}" if wildcard else name
            return (name if port is None else f"{name}:{port}"), name, port
        problem = "is not a host name, with or without a port, such as 'example.com:8000'"
    raise ValueError(f"allowed_hosts: {entry!r} {problem}")


# What a refused request is told: fixed texts, never the Host it sent.
_HOST_REFUSED = "the Host header names a host that this site does not serve"
_NO_HOST = "the request has no Host header"


async def refuse_host(scope: Scope, send: Send) -> None:
    """Answer a request whose ``Host`` the check refused: 400 over HTTP, and
    a handshake refused before it is accepted (HTTP 403) for a WebSocket."""
    hosts = [value for name, value in scope.get("headers", ()) if name == b"host"]
    websocket = scope["type"] == "websocket"
    kind = "WebSocket handshake" if websocket else "request"
    path = scope.get("path")
    if hosts:
        shown = ", ".join(host.decode("latin-1") for host in hosts)
        logger.info("%s for %s refused: Host %r is not in allowed_hosts", kind, path, shown)
    else:
        logger.info("%s for %s refused: it has no Host header", kind, path)
    if websocket:
        try:
            await send({"type": "websocket.close", "code": 1000, "reason": ""})
        except OSError:
            pass  # the client left first: refused either way
        except Exception:  # as the other refusals: logged, never raised to the server
            logger.exception("closing the WebSocket with code %s failed", 1000)
        return
    response = error_response(400, _HOST_REFUSED if hosts else _NO_HOST)
    await response.send(send, head=scope.get("method") == "HEAD")
