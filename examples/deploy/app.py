"""A MicroPie application that takes its settings from the environment.

Every setting is optional:

``MICROPIE_ALLOWED_HOSTS``
    The host names the site answers for, separated by commas:
    ``www.example.com,localhost,127.0.0.1``. A request for any other host
    is refused (400), which stops DNS rebinding. Unset, the site answers
    for every host: set it in production.
``MICROPIE_ALLOWED_ORIGINS``
    Origins besides the site's own whose pages may open its WebSockets,
    separated by commas: ``https://www.example.com,https://admin.example.com``.
``MICROPIE_REDIS_URL``
    A Redis server for the sessions, which every worker then shares:
    ``redis://127.0.0.1:6379/0`` (this needs ``pip install redis``).
``MICROPIE_MAX_BODY_SIZE``
    The largest request body accepted, in bytes.

A value the application cannot use stops it as it starts, with a
``ConfigError`` that names the setting, rather than at some later request.
Serve it with ``uvicorn app:app`` or ``gunicorn app:app -k uvicorn_worker.UvicornWorker``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from micropie import App, WebSocket

DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024
EVERY_HOST = ("*",)  # App's default allowed_hosts, which checks nothing


class ConfigError(ValueError):
    """A setting in the environment has a value that the application cannot use."""


@dataclass(frozen=True)
class Settings:
    """What the application reads from its environment."""

    allowed_hosts: tuple[str, ...] = EVERY_HOST
    allowed_origins: tuple[str, ...] = ()
    redis_url: str | None = None
    max_body_size: int = DEFAULT_MAX_BODY_SIZE


def load_settings(environ: Mapping[str, str]) -> Settings:
    """The settings found in *environ*, such as ``os.environ``.

    Raises :class:`ConfigError` for a value that cannot be used.
    """
    return Settings(
        allowed_hosts=_hosts(environ.get("MICROPIE_ALLOWED_HOSTS", "")),
        allowed_origins=_origins(environ.get("MICROPIE_ALLOWED_ORIGINS", "")),
        redis_url=_redis_url(environ.get("MICROPIE_REDIS_URL", "")),
        max_body_size=_size(environ.get("MICROPIE_MAX_BODY_SIZE", "")),
    )


def _hosts(value: str) -> tuple[str, ...]:
    if not value.strip():
        return EVERY_HOST
    hosts = tuple(host for item in value.split(",") if (host := item.strip()))
    # App's own check, the one make_app's Site applies: an App made only
    # for it is the public way to run it, and no rule is written twice.
    try:
        App(allowed_hosts=hosts)
    except (TypeError, ValueError) as error:
        message = str(error).removeprefix("allowed_hosts: ")
        raise ConfigError(f"MICROPIE_ALLOWED_HOSTS: {message}") from None
    return hosts


def _origins(value: str) -> tuple[str, ...]:
    origins = []
    for item in value.split(","):
        origin = item.strip()
        if not origin:
            continue  # "a,,b" or a trailing comma
        if origin != "*" and not _is_origin(origin):
            raise ConfigError(
                f"MICROPIE_ALLOWED_ORIGINS: {origin!r} is not an origin; write each one "
                "as scheme://host[:port], such as https://www.example.com"
            )
        origins.append(origin)
    return tuple(origins)


def _is_origin(text: str) -> bool:
    """Whether *text* is what a browser sends as ``Origin``: a scheme, a host, maybe a port."""
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and parts.username is None
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
    )


def _redis_url(value: str) -> str | None:
    # The messages never repeat the URL: it may hold a password.
    url = value.strip()
    if not url:
        return None
    parts = urlsplit(url)
    if "://" not in url:
        raise ConfigError(
            "MICROPIE_REDIS_URL must start with redis://, rediss:// (TLS) or unix:// "
            "(it has no scheme: write redis://host:6379/0)"
        )
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            "MICROPIE_REDIS_URL must start with redis://, rediss:// (TLS) or unix://, "
            f"not {parts.scheme}://"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ConfigError("MICROPIE_REDIS_URL has a port that is not a number") from None
    if parts.scheme == "unix" and not parts.path:
        raise ConfigError("MICROPIE_REDIS_URL names no socket: write unix:///path/to/redis.sock")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError("MICROPIE_REDIS_URL names no host: write redis://host:6379/0")
    return url


def _size(value: str) -> int:
    text = value.strip()
    if not text:
        return DEFAULT_MAX_BODY_SIZE
    if not (text.isascii() and text.isdigit()) or int(text) == 0:
        raise ConfigError(
            f"MICROPIE_MAX_BODY_SIZE: {value!r} is not a positive whole number of bytes, "
            "such as 1048576"
        )
    return int(text)


class Site(App):
    """A page, a health check, a session and a WebSocket: enough to see a deployment work."""

    def index(self) -> str:
        return "<!doctype html><title>MicroPie</title><p>It works.</p>"

    def health(self) -> dict[str, str]:
        """For a load balancer or a container platform: 200 while the process serves."""
        return {"status": "ok"}

    def visits(self) -> dict[str, int]:
        """How many times this visitor came, counted in its session."""
        session = self.request.session
        session["visits"] = session.get("visits", 0) + 1
        return {"visits": session["visits"]}

    def client(self) -> dict[str, str | None]:
        """The client's address, as the server reports it."""
        client = self.request.scope.get("client")  # None where the server does not know
        return {"address": client[0] if client else None}

    async def ws_echo(self, ws: WebSocket) -> None:
        await ws.accept()
        # Ends when the client leaves or the server shuts down; a binary
        # message closes the connection with 1003 (unsupported data).
        async for text in ws.iter_text():
            await ws.send_text(text)


def make_app(settings: Settings) -> Site:
    """The application, configured by *settings*."""
    site = Site(
        allowed_hosts=settings.allowed_hosts,
        allowed_origins=settings.allowed_origins,
        max_body_size=settings.max_body_size,
    )
    if settings.redis_url is not None:
        from micropie.redis_sessions import RedisSessionBackend  # needs the redis package

        sessions = RedisSessionBackend(settings.redis_url)
        site.session_backend = sessions
        site.startup_handlers.append(sessions.check)  # Redis unreachable: fail at startup
        site.shutdown_handlers.append(sessions.aclose)
    return site


app = make_app(load_settings(os.environ))
