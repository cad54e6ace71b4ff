"""Cross-origin resource sharing: letting pages of other sites call your HTTP routes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from micropie.middleware import HttpMiddleware
from micropie.request import Request
from micropie.responses import Response, encode_headers

__all__ = ["CORSMiddleware"]

# A serialized origin: scheme://host[:port], nothing after it.
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#@\s]+$")
# An HTTP token: what a method or a header name is made of.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_PLAIN = [("content-type", "text/plain; charset=utf-8")]


_SAFELISTED = frozenset({"GET", "HEAD", "POST"})


class CORSMiddleware(HttpMiddleware):
    """Lets the pages of *allow_origins* call the app's HTTP routes from the browser.

    *allow_origins* lists origins such as ``"https://app.example.com"``
    (scheme, host and port, compared without regard to case or a trailing
    slash), or is ``["*"]`` for every origin. A preflight (an ``OPTIONS``
    request with ``Access-Control-Request-Method``) is answered here, without
    calling the handler: 204 with the ``Access-Control-Allow-*`` headers when
    its origin, method and headers are allowed, 403 with the reason
    otherwise. Other responses get ``Access-Control-Allow-Origin`` when their
    request's origin is allowed, and no CORS header when it is not.

    *allow_methods* and *allow_headers* are what a preflight may ask for
    (``"*"``: anything); *expose_headers* are response headers that the
    page's script may read besides the simple ones; *max_age* is how many
    seconds the browser may remember a preflight's answer. With
    *allow_credentials*, the browser sends cookies and the page may read the
    answer; it cannot go with ``"*"``, which browsers refuse in that case.
    """

    __module__ = "micropie"

    def __init__(
        self,
        allow_origins: Iterable[str],
        *,
        allow_methods: Iterable[str] = ("GET", "HEAD", "POST"),
        allow_headers: Iterable[str] = (),
        expose_headers: Iterable[str] = (),
        allow_credentials: bool = False,
        max_age: int = 600,
    ) -> None:
        origins = _strings("allow_origins", allow_origins, '["https://app.example.com"]')
        methods = _strings("allow_methods", allow_methods, '["GET", "POST"]')
        headers = _strings("allow_headers", allow_headers, '["Content-Type"]')
        exposed = _strings("expose_headers", expose_headers, '["X-Total-Count"]')
        self._any_origin = "*" in origins
        self._origins = frozenset(_origin(o) for o in origins if o != "*")
        if self._any_origin and allow_credentials:
            raise ValueError(
                "CORSMiddleware: allow_credentials cannot go with the origin '*' "
                "(browsers refuse credentialed answers to every origin); list the origins"
            )
        for name in (*methods, *headers, *exposed):
            if name != "*" and not _TOKEN.match(name):
                raise ValueError(f"CORSMiddleware: {name!r} is not a method or header name")
        if type(max_age) is not int or max_age < 0:
            raise ValueError(f"CORSMiddleware: max_age must be an int >= 0, not {max_age!r}")
        self._any_method = "*" in methods
        self._methods = tuple(dict.fromkeys(m.upper() for m in methods if m != "*"))
        self._any_header = "*" in headers
        self._headers = frozenset(h.lower() for h in headers if h != "*")
        self._credentials = allow_credentials
        self._max_age = str(max_age)
        self._exposed = ", ".join(exposed)
        # An answer that names the origin depends on it: caches must know.
        self._vary = not (self._any_origin and not allow_credentials)

    def _allows(self, origin: str) -> bool:
        return self._any_origin or origin.lower().rstrip("/") in self._origins

    async def before_request(self, request: Request) -> Any:
        """Answer a preflight request; let every other request through."""
        if not _is_preflight(request):
            return None
        headers = request.headers
        origin = headers["origin"]
        method = headers["access-control-request-method"].strip()
        asked = [
            h.strip().lower() for h in headers.get("access-control-request-headers", "").split(",")
        ]
        asked = [h for h in asked if h]
        if not self._allows(origin):
            return 403, "CORS preflight refused: the origin is not allowed", list(_PLAIN)
        # GET, HEAD and POST are CORS-safelisted: browsers never need them allowed.
        if not self._any_method and method not in self._methods and method not in _SAFELISTED:
            shown = method if _TOKEN.match(method) else "this method"
            return 403, f"CORS preflight refused: {shown} is not allowed", list(_PLAIN)
        refused = [h for h in asked if not self._any_header and h not in self._headers]
        if refused:
            shown = ", ".join(h for h in refused if _TOKEN.match(h)) or "these headers"
            return 403, f"CORS preflight refused: header {shown} is not allowed", list(_PLAIN)
        answer = self._origin_headers(origin)
        answer.append(
            (
                "access-control-allow-methods",
                method if self._any_method else ", ".join(self._methods),
            )
        )
        if asked:
            answer.append(("access-control-allow-headers", ", ".join(asked)))
        answer.append(("access-control-max-age", self._max_age))
        # A Response, not (204, None, ...): that would add Content-Length,
        # which a 204 must not have.
        return Response(204, None, encode_headers(answer))

    async def after_request(
        self,
        request: Request,
        status_code: int,
        response_body: str | bytes | None,
        extra_headers: list[tuple[str, str]],
    ) -> Any:
        """Add the CORS headers to the response, in place (so streamed ones keep their stream)."""
        if _is_preflight(request):
            return None  # answered by before_request, or by a middleware before this one
        origin = request.headers.get("origin")
        if origin is not None and self._allows(origin):
            extra_headers.extend(self._origin_headers(origin))
            if self._exposed:
                extra_headers.append(("access-control-expose-headers", self._exposed))
        elif self._vary:
            _add_vary(extra_headers)
        return None

    def _origin_headers(self, origin: str) -> list[tuple[str, str]]:
        if not self._vary:
            return [("access-control-allow-origin", "*")]
        headers = [("access-control-allow-origin", origin)]
        if self._credentials:
            headers.append(("access-control-allow-credentials", "true"))
        _add_vary(headers)
        return headers


def _is_preflight(request: Request) -> bool:
    headers = request.headers
    return (
        request.method == "OPTIONS"
        and "access-control-request-method" in headers
        and "origin" in headers
    )


def _add_vary(headers: list[tuple[str, str]]) -> None:
    """Add ``Origin`` to the response's ``Vary`` header, or add the header."""
    for index, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            names = {v.strip().lower() for v in value.split(",")}
            if "origin" not in names and "*" not in names:
                headers[index] = (name, f"{value}, Origin")
            return
    headers.append(("vary", "Origin"))


def _strings(name: str, values: Iterable[str], example: str) -> list[str]:
    if isinstance(values, str):
        raise TypeError(f"CORSMiddleware: {name} takes a list, such as {example}, not {values!r}")
    found = list(values)
    for value in found:
        if not isinstance(value, str):
            raise TypeError(f"CORSMiddleware: {name} holds strings, not {value!r}")
    return found


def _origin(origin: str) -> str:
    normal = origin.strip().lower().rstrip("/")
    if normal == "null":
        raise ValueError(
            "CORSMiddleware: the origin 'null' is that of sandboxed frames and local "
            "files, any of which could then call the app; name real origins"
        )
    if not _ORIGIN.match(normal):
        raise ValueError(
            f"CORSMiddleware: {origin!r} is not an origin: give the scheme, host and "
            "port only, such as 'https://app.example.com' or 'http://localhost:5173'"
        )
    return normal
